"""The channel between the two agents cut (every connection closed) or stalled (every byte
held: a peer whose agent stopped answering) for a while during each wait of both roles,
with either party holding the secret (issue 23, item 4): a swap's drive goes on by the
ledgers whatever the channel does, so both sides end settled or refunded, value conserved,
and no honest side loses its principal.

`make test` runs the issue's case (the seller waiting for the buyer's claim, the channel
stalled) on evm-a/evm-b and evm-a/btc (about 11 s each); the marker ``matrix`` runs every wait, role and mode on the base
pairs (and stalls on the Fabric and Elements base pairs: fabric-a/fabric-b, fabric-a/evm-a,
elements/evm-a)."""

from __future__ import annotations

import pytest

from dvp.models import Role

from ..scenarios import spec_for
from ..testbed import CROSS_PAIRS, PLATFORM_BASE_PAIRS, Pair
from .conftest import Agents
from .test_partition import PLAN, cut_channel, has_result

pytestmark = [pytest.mark.agent, pytest.mark.slow]

# Longer than a send's timeout and a ping's interval: the channel drops connections meanwhile.
LASTS = 8.0
ENDED = (["settled", "settled"], ["refunded", "refunded"], ["refunded", "aborted"], ["aborted", "refunded"])


def waiting(wait: str, holder: Role) -> tuple[str, str]:
    """Whose journal shows the start of ``wait``, and its step: the holder waiting for the
    counter lock, the counterparty waiting for the holder's claim, the holder waiting for the
    counterparty's claim after the reveal."""
    holder_party = holder.value
    counter_party = "buyer" if holder is Role.SELLER else "seller"
    holder_leg, counter_leg = ("security", "cash") if holder is Role.SELLER else ("cash", "security")
    return {
        "holder-waits-for-the-counter-lock": (holder_party, f"lock {holder_leg}"),
        "counter-waits-for-the-claim": (counter_party, f"lock {counter_leg}"),
        "holder-waits-after-the-reveal": (holder_party, f"claim {counter_leg}"),
    }[wait]


WAITS = ["holder-waits-for-the-counter-lock", "counter-waits-for-the-claim", "holder-waits-after-the-reveal"]


def cases():
    issue = (Role.BUYER, "counter-waits-for-the-claim", True)
    base = [
        pytest.param(pair, *issue, id=f"{pair.id}-buyer-holds-counter-waits-for-the-claim-stall")
        for pair in CROSS_PAIRS
    ]
    for pair in CROSS_PAIRS:
        for holder in Role:
            for wait in WAITS:
                for stall in (True, False):
                    if (holder, wait, stall) == issue:
                        continue
                    base.append(
                        pytest.param(
                            pair,
                            holder,
                            wait,
                            stall,
                            marks=pytest.mark.matrix,
                            id=f"{pair.id}-{holder.value}-holds-{wait}-{'stall' if stall else 'close'}",
                        )
                    )
    for pair, marks in PLATFORM_BASE_PAIRS:
        for holder in Role:
            for wait in WAITS:
                base.append(
                    pytest.param(
                        pair,
                        holder,
                        wait,
                        True,
                        marks=[*marks, pytest.mark.matrix],
                        id=f"{pair.id}-{holder.value}-holds-{wait}-stall",
                    )
                )
    return base


@pytest.mark.parametrize(("pair", "holder", "wait", "stall"), cases())
def test_channel_cut_during_a_wait(agents: Agents, pair: Pair, holder: Role, wait: str, stall: bool):
    watch, step = waiting(wait, holder)
    spec = spec_for(pair, secret_holder=holder.value, **PLAN)
    outcomes, details = cut_channel(agents, spec, watch, has_result(step), LASTS, stall=stall)
    assert outcomes in ENDED, (outcomes, details)
