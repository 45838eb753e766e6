"""The crash drills of test_crash_resume.py on a PostgreSQL journal (issue 20, item 3): the
CLI SIGKILLed after a journal write, `dvp resume` drives the swap on from the PostgreSQL
journal, every swap ends as planned, value conserved.  `make test` runs evm-a/evm-b at every
third write; every write and evm-a/btc are under the `matrix` marker (`make test-drills`)."""

from __future__ import annotations

import pytest

from dvp.models import Behaviour

from ..scenarios import SETTLED
from ..testbed import CROSS_PAIRS
from .test_crash_resume import test_killed_after_every_journaled_step_then_resumed as drill

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
