"""Models, the hash rule, the timeout rule, the registry and the journal."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from pydantic import ValidationError

from dvp import errors
from dvp.adapter import LedgerAdapter
from dvp.hashlock import hashlock_of, new_secret, parse_hex32
from dvp.journal import Journal
from dvp.models import Finality, HtlcPlan, HtlcTerms
from dvp.registry import check_class
from dvp.scenario import parse_spec
from dvp.timeouts import budget, check_plan


def test_secret_is_32_random_bytes_and_hash_is_sha256_of_the_raw_bytes():
    secret = new_secret()
    assert len(secret) == 32 and secret != new_secret()
    assert hashlock_of(secret) == hashlib.sha256(secret).digest()
    with pytest.raises(errors.InvalidPreimage, match="exactly 32 bytes, got 33"):
        hashlock_of(secret + b"\x00")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("zz" * 32, "preimage: malformed hex"),
        ("ab" * 33, "preimage: must be exactly 32 bytes, got 33"),
        ("abc", "malformed hex"),
    ],
)
def test_hex_input_errors_name_the_field(value, message):
    with pytest.raises(errors.ConfigError, match=message):
        parse_hex32(value, "preimage")


def test_hex32_accepts_prefix_and_case():
    assert parse_hex32("0x" + "AB" * 32, "x") == bytes([0xAB]) * 32


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "trade": {
                    "security": {"ledger": "a", "asset": "B", "amount": 0},
                    "cash": {"ledger": "b", "asset": "E", "amount": 1},
                }
            },
            "trade.security.amount: Input should be greater than 0",
        ),
        (
            {
                "trade": {
                    "security": {"ledger": "a", "asset": "B", "amount": 1},
                    "cash": {"ledger": "b", "asset": "E", "amount": -5},
                }
            },
            "trade.cash.amount: Input should be greater than 0",
        ),
        (
            {
                "trade": {
                    "seller": "x",
                    "buyer": "x",
                    "security": {"ledger": "a", "asset": "B", "amount": 1},
                    "cash": {"ledger": "b", "asset": "E", "amount": 1},
                }
            },
            "seller and buyer must be different",
        ),
        (
            {
                "trade": {
                    "security": {"ledger": "a", "asset": "B", "amount": 1},
                    "cash": {"ledger": "b", "asset": "E", "amount": 1},
                },
                "plan": {"secret_holder": "bank"},
            },
            "plan.secret_holder",
        ),
        ([], "expected a mapping"),
    ],
)
def test_scenario_errors_are_one_line_naming_the_field(data, message):
    with pytest.raises(errors.ConfigError) as info:
        parse_spec(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_terms_reject_bad_hashlock():
    with pytest.raises(ValidationError, match="hashlock"):
        HtlcTerms(sender="s", recipient="r", asset="A", amount=1, hashlock="00" * 31, expiry=1, nonce="00" * 32)


FAST = Finality(confirmations=1, block_interval=1, expected_seconds=2, clock_skew=1)
SLOW = Finality(confirmations=6, block_interval=600, expected_seconds=3600, clock_skew=7200)


def test_timeout_gap_covers_finality_skew_and_reaction_window():
    b = budget(HtlcPlan(reaction_window=30), FAST, SLOW)
    assert b.gap_required == 2 + 3600 + 1 + 7200 + 30
    assert b.claim_margin == 3600 + 7200


def test_unsafe_plan_is_refused_with_the_numbers():
    with pytest.raises(errors.UnsafeTimeouts) as info:
        check_plan(HtlcPlan(holder_timeout=600, counter_timeout=300, reaction_window=30), FAST, SLOW)
    assert "300s gap" in str(info.value) and "10833s needed" in str(info.value)
    check_plan(HtlcPlan(holder_timeout=60, counter_timeout=30, reaction_window=5), FAST, FAST)


def test_registry_refuses_an_adapter_with_abstract_methods():
    class Half(LedgerAdapter):
        kind = "half"

        async def connect(self): ...

    with pytest.raises(errors.ConfigError, match="Half does not implement .*aclose"):
        check_class(Half, LedgerAdapter, "dvp.adapters:half")
    with pytest.raises(errors.ConfigError, match="is not a LedgerAdapter"):
        check_class(dict, LedgerAdapter, "dvp.adapters:dict")


def test_unknown_adapter_kind_is_a_config_error():
    from dvp.registry import adapter_class

    with pytest.raises(errors.ConfigError, match="no dvp.adapters entry point named 'nope'"):
        adapter_class("nope")


def test_journal_round_trip_and_unfinished(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.create("s1", "htlc", {"k": 1}, {"secret": "aa"})
    j.record("s1", "lock cash", "intent", ledger="b")
    j.update_data("s1", lock_cash="0x01")
    assert [s.id for s in j.swaps(unfinished=True)] == ["s1"]
    j.finish("s1", "settled", "ok")
    assert j.swaps(unfinished=True) == [] and j.get("s1").data == {"secret": "aa", "lock_cash": "0x01"}
    assert [(s.step, s.phase, s.ledger) for s in j.steps("s1")] == [("lock cash", "intent", "b")]
    assert oct((tmp_path / "j.sqlite").stat().st_mode & 0o777) == "0o600"


def test_crash_hook_kills_after_the_nth_write_and_keeps_what_was_committed(tmp_path):
    code = (
        "from dvp.journal import Journal\n"
        "from dvp.testing.crash import install\n"
        "install(2)\n"
        f"j = Journal({str(tmp_path / 'j.sqlite')!r})\n"
        "j.create('s', 'htlc', {}, {})\n"
        "j.record('s', 'a', 'intent')\n"
        "j.record('s', 'a', 'result')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env={"PATH": ""}, timeout=60)
    assert run.returncode == -9
    steps = Journal(tmp_path / "j.sqlite").steps("s")
    assert [(s.step, s.phase) for s in steps] == [("a", "intent")]
