"""The HTLC conformance kit on a geth ledger: the same tests, parametrized by "geth".
No time travel: the refund test waits for geth's own clock."""

from __future__ import annotations

import pytest

from ..conformance.test_htlc_conformance import *  # noqa: F403 - the kit's tests, collected here too

pytestmark = pytest.mark.parametrize("ledger", ["geth"])
