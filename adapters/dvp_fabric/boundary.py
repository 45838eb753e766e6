"""Where Gateway errors become dvp errors: the chaincode's stable error codes
("DVP_LOCK_EXPIRED: ...") choose the class, the phase error keeps tx id and peer code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from dvp import errors

from . import gateway

_CODE = re.compile(r"\b(DVP_[A-Z_]+): ?([^\n]*)")

_LOCK_ERRORS: dict[str, type[errors.LockError]] = {
    "DVP_LOCK_NOT_FOUND": errors.LockNotFound,
    "DVP_LOCK_EXPIRED": errors.LockExpired,
    "DVP_LOCK_NOT_EXPIRED": errors.LockExpired,
    "DVP_INVALID_PREIMAGE": errors.InvalidPreimage,
    "DVP_LOCK_NOT_ACTIVE": errors.LockError,
    "DVP_LOCK_EXISTS": errors.LockError,
}


_LOCK_OPERATIONS = ("lock", "claim", "refund")


def chaincode_code(exc: gateway.GatewayError) -> tuple[str, str] | None:
    """The chaincode's (code, message) from the first peer detail (or the status text) carrying one."""
    for text in [*exc.peer_messages, str(exc)]:
        m = _CODE.search(text)
        if m:
            return m.group(1), m.group(2).strip()
    return None


def translate(exc: gateway.GatewayError, what: str) -> errors.DvpError:
    """The dvp error for a failed Gateway call: a LockError for an HTLC rule, else the phase error."""
    found = chaincode_code(exc)
    if found is None:
        return exc
    code, message = found
    cls = _LOCK_ERRORS.get(code)
    if code == "DVP_BAD_ARGUMENT" and "expiry" in message and "not after" in message:
        cls = errors.LockExpired
    if code == "DVP_UNAUTHORIZED" and what.split()[0] in _LOCK_OPERATIONS:  # a refund by another party
        cls = errors.LockError
    if cls is None:  # the phase error, with only what the chaincode said
        return type(exc)(
            f"{what}: the chaincode refused it at {exc.phase}: {code}: {message} (tx {exc.tx_id})",
            tx_id=exc.tx_id,
            code=code,
            details=exc.details,
        )
    return cls(f"{what}: {message} ({code}, tx {exc.tx_id})", tx_id=exc.tx_id, code=code)


@contextmanager
def gateway_errors(what: str) -> Iterator[None]:
    try:
        yield
    except gateway.GatewayCommitError:
        raise
    except gateway.GatewayError as exc:
        err = translate(exc, what)
        if err is exc:
            raise
        raise err from exc
