"""Per-party figures of swaps run by two parties' agents, each from its own journal.

Each agent journals only what it did: its own steps and transactions, and every message as
it crossed the channel (``messages`` rows, ``out`` once the peer took it, ``in`` once this
agent took it).  The functions here are pure, so unit tests check them on hand-written rows.

Definitions, per party (wall-clock seconds; both agents share the machine's clock):

- ``latency_seconds``: from the proposal (the earliest journal record of the swap, the
  proposer's) to this party's outcome row; per swap, ``last_step_seconds`` runs to the last
  result row of either journal, as the one-process latency runs to its last step.
- ``steps`` and ``transactions``: its result rows and its final rows (one per transaction).
- ``fees``: per ledger, the fees of its own final rows, in the ledger's unit.
- ``locked_seconds``: per leg this party locked, from its lock being final to the lock's
  claim (a result row in the counterparty's journal) or its own refund being final.
- ``messages_sent`` / ``messages_received``: its ``out`` / ``in`` rows, by kind too;
  ``messages_refused``: messages that reached its agent and were refused (a reordered notice,
  say), which the channel counts as received but the journal has no row of.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..journal import Step
from ..models import SwapSpec
from ..report import timeline
from ..state import Action, LegName, Phase, StepName
from .figures import AgentLocked, AgentParty, AgentSwap, ChannelCheck, Fee, MessageCount, PartyFees, PartySummary
from .metrics import LedgerInfo, stats_of


@dataclass(frozen=True)
class PartyJournal:
    """One party's rows of one swap (None fields: the swap is not in its journal)."""

    party: str
    created: float | None
    finished: float | None  # the outcome row's time (the record's last update once it has an outcome)
    outcome: str | None
    steps: Sequence[Step] = ()
    messages: Sequence[Mapping[str, Any]] = field(default_factory=list)
    refused: int = 0  # messages the channel passed to this party's agent and the agent refused (no journal row)


def _legs_locked(steps: Sequence[Step]) -> dict[LegName, float]:
    out: dict[LegName, float] = {}
    for s in steps:
        if s.phase == Phase.RESULT:
            try:
                name = StepName(s.step)
            except ValueError:
                continue
            if name.action is Action.LOCK and name.leg is not None:
                out[name.leg] = s.wall
    return out


def _ended(steps: Sequence[Step], action: Action, leg: LegName) -> float | None:
    rows = [s.wall for s in steps if s.phase == Phase.RESULT and s.step == StepName.of(action, leg)]
    return rows[-1] if rows else None


def party_swap(
    me: PartyJournal, other: PartyJournal, spec: SwapSpec, proposed: float, ledgers: Mapping[str, LedgerInfo]
) -> AgentParty:
    """One party's figures of one swap, from its journal rows and (for the claim of its own
    lock, which the counterparty makes) the counterparty's."""
    rows = timeline(list(me.steps))
    fees: dict[str, Fee] = {}
    txs: set[tuple[str | None, str]] = set()
    for s in me.steps:
        if s.phase != Phase.FINAL:
            continue
        key = (s.ledger, s.tx_id or f"#{s.seq}")
        if key in txs:  # a transaction journaled final twice (a resume) is paid once
            continue
        txs.add(key)
        fee = s.detail.get("fee")
        if fee is not None and s.detail.get("payer", me.party) == me.party:
            info = ledgers.get(s.ledger or "")
            fees.setdefault(s.ledger or "", Fee(fee=0, unit=info.fee_unit if info else "unknown")).fee += fee
    locked: dict[str, AgentLocked] = {}
    for leg, since in _legs_locked(me.steps).items():
        claimed = _ended(other.steps, Action.CLAIM, leg)
        refunded = _ended(me.steps, Action.REFUND, leg)
        end, by = (claimed, "claim") if claimed is not None else (refunded, "refund")
        if end is None:
            continue
        traded = spec.trade.security if leg is LegName.SECURITY else spec.trade.cash
        locked[leg.value] = AgentLocked(
            ledger=traded.ledger,
            amount=traded.amount,
            seconds=end - since,
            amount_seconds=traded.amount * (end - since),
            ended_by=by,
        )
    sent = [m for m in me.messages if m["direction"] == "out"]
    received = [m for m in me.messages if m["direction"] == "in"]
    by_kind: dict[str, MessageCount] = {}
    for m in sent:
        by_kind.setdefault(m["kind"], MessageCount(sent=0, received=0)).sent += 1
    for m in received:
        by_kind.setdefault(m["kind"], MessageCount(sent=0, received=0)).received += 1
    return AgentParty(
        outcome=me.outcome,
        latency_seconds=(me.finished - proposed) if me.finished is not None and me.outcome else None,
        steps=len(rows),
        transactions=len(txs),
        fees=fees,
        locked=locked,
        locked_seconds=sum(v.seconds for v in locked.values()) if locked else None,
        messages_sent=len(sent),
        messages_received=len(received),
        messages_refused=me.refused,
        messages_by_kind=dict(sorted(by_kind.items())),
    )


def agent_swap(
    swap_id: str, spec: SwapSpec, journals: Sequence[PartyJournal], ledgers: Mapping[str, LedgerInfo]
) -> AgentSwap:
    """Both parties' figures of one swap; ``journals`` is the two parties' rows."""
    one, two = journals
    created = [j.created for j in journals if j.created is not None]
    proposed = min(created) if created else 0.0
    results = [s.wall for j in journals for s in j.steps if s.phase == Phase.RESULT]
    return AgentSwap(
        swap_id=swap_id,
        proposed=proposed,
        # As the one-process figure: to the swap's last step, in whichever journal it is.
        last_step_seconds=(max(results) - proposed) if results else None,
        parties={
            one.party: party_swap(one, two, spec, proposed, ledgers),
            two.party: party_swap(two, one, spec, proposed, ledgers),
        },
    )


def summarize_parties(swaps: Sequence[AgentSwap]) -> dict[str, PartySummary]:
    """Per party, over the swaps of one pair: outcomes, latency, steps, fees, locked time and
    the message totals (the figures the channel's own counters are checked against)."""
    parties: dict[str, list[AgentParty]] = defaultdict(list)
    for s in swaps:
        for party, fig in s.parties.items():
            parties[party].append(fig)
    out: dict[str, PartySummary] = {}
    for party, figs in sorted(parties.items()):
        n = len(figs)
        outcomes: dict[str, int] = defaultdict(int)
        totals: dict[str, Fee] = {}
        for f in figs:
            outcomes[f.outcome or "unfinished"] += 1
            for ledger, fee in f.fees.items():
                totals.setdefault(ledger, Fee(fee=0, unit=fee.unit)).fee += fee.fee
        sent = sum(f.messages_sent for f in figs)
        received = sum(f.messages_received for f in figs)
        out[party] = PartySummary(
            swaps=n,
            outcomes=dict(outcomes),
            latency=stats_of(f.latency_seconds for f in figs),
            steps_per_swap=sum(f.steps for f in figs) / n,
            transactions_per_swap=sum(f.transactions for f in figs) / n,
            fees={ledger: PartyFees(fee=t.fee, unit=t.unit, fee_per_swap=t.fee / n) for ledger, t in totals.items()},
            locked_seconds=stats_of(f.locked_seconds for f in figs),
            messages_sent=sent,
            messages_received=received,
            messages_refused=sum(f.messages_refused for f in figs),
            messages_per_swap=(sent + received) / n,
        )
    return out


def check_channel(summary: Mapping[str, PartySummary], counted: Mapping[str, Mapping[str, int]] | None) -> ChannelCheck:
    """The journals' message totals per party against the channel's own counters (messages
    that passed it, per party, over the same swaps): sent as journaled, received as journaled
    plus those the agent refused; ``counted`` None: a channel without counters."""
    if counted is None:
        return ChannelCheck(checked=False, matches=None, mismatches=[])
    mismatches = []
    for party, fig in summary.items():
        channel = counted.get(party, {})
        for what, journaled in (
            ("sent", fig.messages_sent),
            ("received", fig.messages_received + fig.messages_refused),
        ):
            if channel.get(what, 0) != journaled:
                mismatches.append(f"{party} {what}: journal {journaled}, channel {channel.get(what, 0)}")
    return ChannelCheck(checked=True, matches=not mismatches, mismatches=mismatches)
