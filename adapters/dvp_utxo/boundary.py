"""Where RPC, python-bitcoinlib and builder exceptions become dvp errors.

One context manager, :func:`utxo_errors`, wraps every call the adapter makes to
the node or to the transaction builder.  The node's rejection text decides the
class (btcd and bitcoind phrase the same script failures alike enough):

=====================================================  ===========================
node or builder says                                   dvp error
=====================================================  ===========================
unreachable, HTTP 401, garbage                         LedgerUnavailable
claim: ``OP_EQUALVERIFY`` failed                       InvalidPreimage
refund: not final / locktime requirement not satisfied LockExpired (too early)
claim or refund: inputs missing / already spent        LockError (claimed or refunded)
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

from .htlc import AuditError, NoFunding
from .rpc import RpcError, RpcUnavailable
from .script import ScriptError
from .tx import TxBuildError

_SPENT = ("fully-spent", "already spent", "missing inputs", "missing-inputs", "bad-txns-inputs-missingorspent", "orphan")
_EARLY = ("not finalized", "non-final", "locktime requirement not satisfied", "unsatisfied locktime", "locktime")


def classify_rejection(what: str, exc: RpcError, tx_id: str | None = None) -> errors.DvpError:
    text = exc.message.lower()
    message = f"{what}: the node rejected the transaction: {exc.message}"
    if what.startswith("claim") and "op_equalverify" in text:
        return errors.InvalidPreimage(message)
    if what.startswith("refund") and any(n in text for n in _EARLY):
        return errors.LockExpired(f"{what}: the lock height is not reached yet: {exc.message}")
    if (what.startswith("claim") or what.startswith("refund")) and any(n in text for n in _SPENT):
        return errors.LockError(f"{what}: the lock was already claimed or refunded: {exc.message}")
    return errors.SubmitError(message, tx_id=tx_id, code=exc.code)


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
        code = "insufficient-funds" if "insufficient" in str(exc) else "dust" if "dust" in str(exc) else "build"
        raise errors.SubmitError(f"{what} on {ledger!r}: {exc}", tx_id=tx_id, code=code) from exc
    except ScriptError as exc:
        raise errors.LockError(f"{what}: {exc}") from exc
    except NotImplementedError as exc:
        raise errors.NotSupportedError(f"ledger {ledger!r}, {what}: {exc}") from exc
