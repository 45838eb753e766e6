"""Offline: node rejections (texts as btcd v0.24.2 phrases them) map onto the dvp error tree."""

from __future__ import annotations

import pytest

from dvp import errors
from dvp_utxo.boundary import utxo_errors
from dvp_utxo.htlc import AuditError, NoFunding
from dvp_utxo.rpc import RpcError, RpcUnavailable
from dvp_utxo.script import ScriptError
from dvp_utxo.tx import TxBuildError

pytestmark = pytest.mark.utxo

EQUALVERIFY = "TX rejected: failed to validate input aa:0 which references output bb:0 - OP_EQUALVERIFY failed (input witness [...])"
NONFINAL = "TX rejected: transaction cc is not standard: transaction is not finalized"
CLTV = "TX rejected: failed to validate input aa:0 ... - locktime requirement not satisfied -- locktime is greater than the transaction locktime: 463 > 454"
NULLFAIL = (
    "TX rejected: failed to validate input aa:0 ... - signature not empty on failed checksig (input witness [...])"
)
SPENT = "TX rejected: orphan transaction dd references outputs of unknown or fully-spent transaction ee"


def raised(what, exc):
    with pytest.raises(errors.DvpError) as info:
        with utxo_errors(what, "btc", tx_id="ff"):
            raise exc
    assert info.value.__cause__ is exc
    return info.value


@pytest.mark.parametrize(
    ("what", "message", "expected"),
    [
        ("claim", EQUALVERIFY, errors.InvalidPreimage),
        ("refund", NONFINAL, errors.LockExpired),
        ("refund", CLTV, errors.LockExpired),
        ("claim", SPENT, errors.LockError),
        ("refund", SPENT, errors.LockError),
        ("claim", NULLFAIL, errors.SubmitError),
        ("lock", SPENT, errors.SubmitError),
    ],
)
def test_node_rejections(what, message, expected):
    err = raised(what, RpcError("sendrawtransaction", -26, message))
    assert type(err) is expected
    if isinstance(err, errors.TransactionError):
        assert err.tx_id == "ff" and err.code == -26


def test_other_failures():
    assert type(raised("balance", RpcUnavailable("getblockcount: refused"))) is errors.LedgerUnavailable
    assert type(raised("read", RpcError("getblock", -5, "Block not found"))) is errors.AdapterError
    assert type(raised("audit", NoFunding("funding", "none"))) is errors.LockNotFound
    assert type(raised("audit", AuditError("amount", "x"))) is errors.AuditFailed
    err = raised("lock", TxBuildError("insufficient funds: need 1 sat", code="insufficient-funds"))
    assert type(err) is errors.SubmitError and err.code == "insufficient-funds"
    assert raised("lock", TxBuildError("insufficient funds, says only the text")).code == "build"  # codes, not words
    assert type(raised("lock", ScriptError("bad"))) is errors.LockError
    assert type(raised("read", NotImplementedError("elements"))) is errors.NotSupportedError
    with pytest.raises(errors.LockExpired):  # dvp errors pass through untouched
        with utxo_errors("x", "btc"):
            raise errors.LockExpired("as is")


# bitcoind names the rule it applied (its reject reason) at the start of the message, under
# JSON-RPC code -26 (policy, consensus) or -25 (inputs missing or spent): those decide.
@pytest.mark.parametrize(
    ("what", "code", "message", "expected"),
    [
        (
            "claim",
            -26,
            "mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)",
            errors.InvalidPreimage,
        ),
        ("refund", -26, "non-final", errors.LockExpired),
        ("claim", -25, "bad-txns-inputs-missingorspent", errors.LockError),
        ("refund", -26, "txn-mempool-conflict", errors.LockError),
        (
            "claim",
            -26,
            "mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)",
            errors.SubmitError,
        ),
        (
            "refund",
            -22,
            "TX decode failed: non-final",
            errors.SubmitError,
        ),  # not a verify error: the words do not count
    ],
)
def test_bitcoind_reject_reasons(what, code, message, expected):
    err = raised(what, RpcError("sendrawtransaction", code, message))
    assert type(err) is expected


@pytest.mark.parametrize(
    "message",
    [
        "too-long-mempool-chain, too many unconfirmed ancestors [limit: 25]",
        "too-long-mempool-chain, too many descendants for tx aa [limit: 25]",
    ],
)
def test_a_refusal_for_the_mempool_chain_limits_is_held_back_not_a_rejection(message):
    """What the node says after the wait for room (the same bytes resent after each block):
    HeldBack, code too-long-mempool-chain, as README says; the transaction may still be taken,
    so a journaled one is not taken as failed (before: SubmitError with code -26)."""
    err = raised("lock", RpcError("sendrawtransaction", -26, message))
    assert type(err) is errors.HeldBack and err.code == "too-long-mempool-chain" and err.tx_id == "ff"
    assert message in str(err)
