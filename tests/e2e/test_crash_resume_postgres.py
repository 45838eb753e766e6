"""The crash drills of test_crash_resume.py on a PostgreSQL journal (issue 20, item 3): the
CLI SIGKILLed after a journal write or at a send boundary, `dvp resume` drives the swap on
from the PostgreSQL journal, every swap ends as planned, value conserved, and (boundary
drills) no transaction sent twice, counted on the ledgers.  `make test` runs one cheap drill
per platform: evm-a/evm-b at every sixth write; evm-a/btc, elements/evm-a and fabric-a/evm-a
killed once right after a broadcast whose `submitted` row is not written.  The rest is under
the `matrix` marker (`make test-drills`)."""

from __future__ import annotations

import pytest

from dvp.models import Behaviour

from ..scenarios import SETTLED
from ..testbed import CROSS_PAIRS, ELEMENTS_MARKS, FABRIC_MARKS, Pair
from .test_crash_resume import test_killed_after_every_journaled_step_then_resumed as drill
from .test_crash_resume import test_killed_at_a_send_boundary_then_resumed as boundary_drill

MATRIX = [pytest.mark.matrix]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pair", "every"),
    [
        pytest.param(CROSS_PAIRS[0], 6, id=f"htlc-settle-{CROSS_PAIRS[0].id}-every-6th"),
        pytest.param(CROSS_PAIRS[0], 3, id=f"htlc-settle-{CROSS_PAIRS[0].id}-every-3rd", marks=MATRIX),
        pytest.param(CROSS_PAIRS[0], 1, id=f"htlc-settle-{CROSS_PAIRS[0].id}", marks=MATRIX),
        pytest.param(CROSS_PAIRS[1], 3, id=f"htlc-settle-{CROSS_PAIRS[1].id}-every-3rd", marks=MATRIX),
    ],
)
async def test_killed_after_journaled_steps_then_resumed_on_postgres(
    ledger_set, tmp_path, cli_env, pg_url, pair, every
):
    await drill(ledger_set, tmp_path, {**cli_env, "DVP_JOURNAL": pg_url}, pg_url, pair, Behaviour(), SETTLED, every)


# (pair, kill points, marks): one kill per platform in `make test` (right after the first
# broadcast, before its `submitted` row: the window issue 20 found), more under `matrix`.
_PLATFORMS = [
    (CROSS_PAIRS[1], []),  # evm-a/btc
    (Pair("elements", "evm-a"), ELEMENTS_MARKS),
    (Pair("fabric-a", "evm-a"), FABRIC_MARKS),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pair", "points"),
    [
        *(pytest.param(p, ("broadcast:1",), id=f"htlc-{p.id}-broadcast-1", marks=marks) for p, marks in _PLATFORMS),
        *(
            pytest.param(
                p, ("journaled:2", "between:1", "broadcast:3"), id=f"htlc-{p.id}-3-points", marks=MATRIX + marks
            )
            for p, marks in [(CROSS_PAIRS[0], []), *_PLATFORMS]
        ),
    ],
)
async def test_killed_at_a_send_boundary_then_resumed_on_postgres(ledger_set, tmp_path, cli_env, pg_url, pair, points):
    await boundary_drill(ledger_set, tmp_path, {**cli_env, "DVP_JOURNAL": pg_url}, pg_url, pair, points)
