"""Where RPC, python-bitcoinlib and builder exceptions become dvp errors.

One context manager, :func:`utxo_errors`, wraps every call the adapter makes to
the node or to the transaction builder.  A rejected transaction is classified by its
JSON-RPC error code first (-25 verify error, -26 rejected by policy or consensus,
-27 already in the chain), then by bitcoind's reject reason, the stable token that
starts its message (``non-final``, ``bad-txns-inputs-missingorspent``,
``mandatory-script-verify-flag-failed``).  btcd reports every rejection as code -25
or -26 with free text and no token: for it, and only as a documented fallback, the
message is matched against the phrases below.

=====================================================  ===========================
node or builder says                                   dvp error
=====================================================  ===========================
unreachable, HTTP 401, garbage                         LedgerUnavailable
claim: ``OP_EQUALVERIFY`` failed                       InvalidPreimage
refund: not final / locktime requirement not satisfied LockExpired (too early)
claim or refund: inputs missing / already spent        LockError (claimed or refunded)
mempool chain limits (``too-long-mempool-chain``)      HeldBack(tx_id, code too-long-mempool-chain)
any other rejection of a transaction                   SubmitError(tx_id, code)
insufficient funds, dust, DvP terms (builder)          SubmitError(code=...)
a script that is not our HTLC                          LockError
audit mismatch / no funding output                     AuditFailed / LockNotFound
a dialect method not implemented                       NotSupportedError
=====================================================  ===========================
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dvp import errors

from .htlc import AuditError, NoFunding, refused_for_chain
from .rpc import RpcError, RpcUnavailable
from .script import ScriptError
from .tx import CHAIN_LIMIT, TxBuildError

# JSON-RPC error codes of sendrawtransaction (bitcoind's rpc/protocol.h; btcd's btcjson).
RPC_VERIFY_ERROR = -25  # bitcoind: inputs missing or spent; btcd: any rule error
RPC_VERIFY_REJECTED = -26  # rejected by policy or consensus (the reason follows)
RPC_VERIFY_ALREADY_IN_CHAIN = -27

# bitcoind's reject reasons (the message's first token) -> what they mean for an HTLC spend.
_SPENT_REASONS = {"bad-txns-inputs-missingorspent", "missing-inputs", "txn-mempool-conflict"}
_EARLY_REASONS = {"non-final", "non-BIP68-final"}
_SCRIPT_REASONS = {"mandatory-script-verify-flag-failed", "non-mandatory-script-verify-flag"}

# Fallback for nodes without reject reasons (btcd): phrases of their messages.
_SPENT = ("fully-spent", "already spent", "missing inputs", "orphan")
_EARLY = ("not finalized", "locktime requirement not satisfied", "unsatisfied locktime", "locktime")


def reject_reason(exc: RpcError) -> str | None:
    """bitcoind's reject reason: the message's first token, if it is one."""
    token = exc.message.split(" ", 1)[0].split("(", 1)[0].rstrip(":,")
    return token if token in _SPENT_REASONS | _EARLY_REASONS | _SCRIPT_REASONS else None


def classify_rejection(what: str, exc: RpcError, tx_id: str | None = None) -> errors.DvpError:
    text = exc.message.lower()
    message = f"{what}: the node rejected the transaction: {exc.message}"
    if refused_for_chain(exc):  # after the wait for room (UtxoLedger.broadcast_raw): it may still be taken
        return errors.HeldBack(f"{message} (not taken for now, not proven dead)", tx_id=tx_id, code=CHAIN_LIMIT)
    claim, refund = what.startswith("claim"), what.startswith("refund")
    reason = reject_reason(exc)
    if exc.code not in (RPC_VERIFY_ERROR, RPC_VERIFY_REJECTED):
        return errors.SubmitError(message, tx_id=tx_id, code=exc.code)
    # A claim's script fails only at the preimage check: the signature is ours and correct.
    script_failed = reason in _SCRIPT_REASONS or (reason is None and "op_equalverify" in text)
    early = reason in _EARLY_REASONS or (reason is None and any(n in text for n in _EARLY))
    spent = reason in _SPENT_REASONS or (reason is None and any(n in text for n in _SPENT))
    if claim and script_failed and "op_equalverify" in text:
        return errors.InvalidPreimage(message)
    if refund and early:
        return errors.LockExpired(f"{what}: the lock height is not reached yet: {exc.message}")
    if (claim or refund) and spent:
        return errors.LockError(f"{what}: the lock was already claimed or refunded: {exc.message}")
    return errors.SubmitError(message, tx_id=tx_id, code=reason or exc.code)


@contextmanager
def utxo_errors(what: str, ledger: str, *, tx_id: str | None = None) -> Iterator[None]:
    try:
        yield
    except errors.DvpError:
        raise
    except RpcUnavailable as exc:
        raise errors.LedgerUnavailable(f"ledger {ledger!r} unreachable during {what}: {exc}") from exc
    except RpcError as exc:
        if exc.method == "sendrawtransaction":
            raise classify_rejection(what, exc, tx_id) from exc
        raise errors.AdapterError(f"ledger {ledger!r}, {what}: {exc}") from exc
    except NoFunding as exc:
        raise errors.LockNotFound(f"{what}: {exc}") from exc
    except AuditError as exc:
        raise errors.AuditFailed(f"{what}: {exc}") from exc
    except TxBuildError as exc:
        raise errors.SubmitError(f"{what} on {ledger!r}: {exc}", tx_id=tx_id, code=exc.code) from exc
    except ScriptError as exc:
        raise errors.LockError(f"{what}: {exc}") from exc
    except NotImplementedError as exc:
        raise errors.NotSupportedError(f"ledger {ledger!r}, {what}: {exc}") from exc
