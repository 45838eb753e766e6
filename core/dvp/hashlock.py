"""The one hash rule: SHA-256 over exactly 32 raw bytes (docs/design.md, rules 1 and 2)."""

from __future__ import annotations

import hashlib
import re
import secrets

from .errors import ConfigError, InvalidPreimage

PREIMAGE_SIZE = 32
_HEX = re.compile(r"^[0-9a-f]*$")


def new_secret() -> bytes:
    return secrets.token_bytes(PREIMAGE_SIZE)


def hashlock_of(preimage: bytes) -> bytes:
    if len(preimage) != PREIMAGE_SIZE:
        raise InvalidPreimage(f"preimage: must be exactly {PREIMAGE_SIZE} bytes, got {len(preimage)}")
    return hashlib.sha256(preimage).digest()


def matches(preimage: bytes, hashlock: bytes) -> bool:
    return len(preimage) == PREIMAGE_SIZE and hashlib.sha256(preimage).digest() == hashlock


def normalise_hex32(value: str) -> str:
    """Accept 64 hex digits with or without 0x; return lower-case without prefix."""
    if not isinstance(value, str):
        raise ValueError("expected a hex string")
    text = value.lower().removeprefix("0x")
    if not _HEX.match(text) or len(text) % 2:
        raise ValueError("malformed hex")
    if len(text) != 2 * PREIMAGE_SIZE:
        raise ValueError(f"must be exactly {PREIMAGE_SIZE} bytes, got {len(text) // 2}")
    return text


def parse_hex32(value: str, field: str) -> bytes:
    """Parse user input, naming the field when it is wrong."""
    try:
        return bytes.fromhex(normalise_hex32(value))
    except ValueError as exc:
        raise ConfigError(f"{field}: {exc}") from None
