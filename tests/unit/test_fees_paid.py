"""dvp.report.fees_paid: what each party paid in a traded coin, from the journal's final rows."""

from __future__ import annotations

from dvp.journal import Step
from dvp.report import fees_paid
from dvp.state import Phase


def _final(seq: int, tx_id: str, fee: int, unit: str | None) -> Step:
    detail = {"payer": "buyer", "fee": fee, "fee_asset": "BTC", **({"fee_unit": unit} if unit else {})}
    return Step(seq, "s1", "lock", Phase.FINAL, "btc", tx_id, detail, 0.0, None, None)


def test_rows_journaled_before_and_after_fee_units_sum_instead_of_overwriting():
    steps = [_final(1, "aa", 100, None), _final(2, "bb", 200, "sat"), _final(3, "bb", 200, "sat")]
    assert fees_paid(steps) == {("btc", "BTC", "buyer"): 300}  # bb once, aa (no unit) beside it
