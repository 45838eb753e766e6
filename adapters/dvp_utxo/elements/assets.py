"""Elements asset ids, issuance entropy and explicit asset/value encodings.

Asset ids are handled as *display hex* (what ``elementsd`` RPC shows, byte
reversed like txids) at every public boundary, and as 32 internal bytes on the
wire.  The derivation is Elements' own (``issuance.cpp``):

* entropy ``E = fast_merkle_root([sha256d(prevout), contract_hash])``
* asset id ``A = fast_merkle_root([E, 0^32])``
* reissuance token ``T = fast_merkle_root([E, 1^32 or 2^32])`` (explicit / confidential)

where ``fast_merkle_root`` of two leaves is one SHA-256 *compression* of their
64-byte concatenation from the standard initial state, without padding (a
SHA-256 midstate).  ``wallycore`` computes these; the offline tests check it
against Elements Core's published vectors and a pure-Python compression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import wallycore as wally

from ..tx import TxBuildError

ZERO32 = bytes(32)
EXPLICIT_ASSET_PREFIX = 0x01
EXPLICIT_VALUE_PREFIX = 0x01
MAX_MONEY = 21_000_000 * 100_000_000  # Elements caps every explicit amount at MAX_MONEY

# The policy ("bitcoin") asset of a default ``-chain=elementsregtest`` node, as
# ``dumpassetlabels`` shows it.  The launcher reads the node's own value
# (``getsidechaininfo``) rather than trusting this constant.
ELEMENTSREGTEST_POLICY_ASSET = "b2e15d0d7a0c94e4e2ce0fe6e8691b9e451377f6e46e8045a86f7c4b5d4f0f23"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class AssetError(TxBuildError):
    """An asset id, tag or value is malformed, confidential, or out of range."""


def check_asset_id(asset_id: str) -> str:
    if not isinstance(asset_id, str) or not _HEX64.match(asset_id):
        raise AssetError(f"asset id must be 64 lower-case hex digits, got {asset_id!r}")
    return asset_id


def asset_bytes(asset_id: str) -> bytes:
    """Display hex -> the 32 bytes as serialised in a transaction."""
    return bytes.fromhex(check_asset_id(asset_id))[::-1]


def asset_hex(raw: bytes) -> str:
    """32 serialised bytes -> display hex."""
    if len(raw) != 32:
        raise AssetError("an asset id is 32 bytes")
    return bytes(raw)[::-1].hex()


def explicit_asset(asset_id: str) -> bytes:
    """The 33-byte explicit asset tag of an output: ``0x01 || asset``."""
    return bytes([EXPLICIT_ASSET_PREFIX]) + asset_bytes(asset_id)


def explicit_value(amount: int) -> bytes:
    """The 9-byte explicit value commitment: ``0x01 || amount (8 bytes, big-endian)``."""
    if not isinstance(amount, int) or not 0 <= amount <= MAX_MONEY:
        raise AssetError(f"amount must be an integer in 0..{MAX_MONEY}, got {amount!r}")
    return bytes(wally.tx_confidential_value_from_satoshi(amount))


def parse_explicit_asset(tag: bytes) -> str:
    tag = bytes(tag)
    if len(tag) != 33 or tag[0] != EXPLICIT_ASSET_PREFIX:
        kind = "null" if not tag else ("confidential" if tag[0] in (0x0A, 0x0B) else "malformed")
        raise AssetError(f"asset tag is {kind}, not explicit")
    return asset_hex(tag[1:])


def parse_explicit_value(commitment: bytes) -> int:
    commitment = bytes(commitment)
    if len(commitment) != 9 or commitment[0] != EXPLICIT_VALUE_PREFIX:
        kind = "null" if not commitment else ("confidential" if commitment[0] in (0x08, 0x09) else "malformed")
        raise AssetError(f"value is {kind}, not explicit")
    amount = int(wally.tx_confidential_value_to_satoshi(commitment))
    if amount > MAX_MONEY:
        raise AssetError(f"explicit value {amount} exceeds MAX_MONEY")
    return amount


# --- issuance --------------------------------------------------------------------------


def issuance_entropy(prevout_txid: str, prevout_vout: int, contract_hash: bytes = ZERO32) -> bytes:
    """The 32-byte entropy (internal order) of a new issuance from ``prevout``.

    ``prevout_txid`` is display hex; ``contract_hash`` is the 32 bytes as they
    sit in the issuance input's ``assetEntropy`` field (all zero: no contract).
    """
    if len(contract_hash) != 32:
        raise AssetError("contract hash must be 32 bytes")
    txhash = bytes.fromhex(check_asset_id(prevout_txid))[::-1]
    return bytes(wally.tx_elements_issuance_generate_entropy(txhash, prevout_vout, bytes(contract_hash)))


def asset_from_entropy(entropy: bytes) -> str:
    return asset_hex(bytes(wally.tx_elements_issuance_calculate_asset(bytes(entropy))))


def token_from_entropy(entropy: bytes, confidential: bool = False) -> str:
    flags = wally.WALLY_TX_FLAG_BLINDED_INITIAL_ISSUANCE if confidential else 0
    return asset_hex(bytes(wally.tx_elements_issuance_calculate_reissuance_token(bytes(entropy), flags)))


@dataclass(frozen=True)
class IssuedAsset:
    """What an issuance from ``prevout`` creates."""

    asset_id: str  # display hex
    token_id: str  # reissuance token (explicit issuance), display hex
    entropy: bytes  # internal order
    prevout: tuple[str, int]
    contract_hash: bytes = ZERO32

    @classmethod
    def from_prevout(cls, txid: str, vout: int, contract_hash: bytes = ZERO32) -> "IssuedAsset":
        e = issuance_entropy(txid, vout, contract_hash)
        return cls(asset_from_entropy(e), token_from_entropy(e, False), e, (txid, vout), bytes(contract_hash))


__all__ = [
    "ELEMENTSREGTEST_POLICY_ASSET",
    "AssetError",
    "IssuedAsset",
    "asset_bytes",
    "asset_from_entropy",
    "asset_hex",
    "check_asset_id",
    "explicit_asset",
    "explicit_value",
    "issuance_entropy",
    "parse_explicit_asset",
    "parse_explicit_value",
    "token_from_entropy",
]
