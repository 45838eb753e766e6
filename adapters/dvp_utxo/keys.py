"""Framework-held keys: compressed secp256k1 keys, WIF, P2WPKH scripts.

The adapter never asks a node wallet to sign: every key lives here, in the
adapter's config (``SecretStr`` WIF), and signs locally with python-bitcoinlib.
Dev keys for local ledgers are derived deterministically from the ledger name
and the party name, so a relaunched regtest chain has the same parties.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import bitcoin
from bitcoin.core import Hash160
from bitcoin.core.key import CPubKey
from bitcoin.core.script import OP_0, CScript
from bitcoin.wallet import CBitcoinSecret, CKey, P2WPKHBitcoinAddress

# The chain names nodes report (getblockchaininfo "chain") -> python-bitcoinlib's params.
NETWORKS = {
    "regtest": "regtest",
    "elementsregtest": "regtest",  # Elements: the same WIF prefix (239); its addresses are encoded elsewhere
    "test": "testnet",
    "testnet": "testnet",
    "main": "mainnet",
    "mainnet": "mainnet",
}
# python-bitcoinlib keeps the network in process-global state (bitcoin.SelectParams), read
# only where keys and addresses are encoded.  Those encodings run under this lock with the
# caller's network selected, so two ledgers on different networks share one process safely.
_PARAMS_LOCK = threading.RLock()


@contextmanager
def network_params(network: str) -> Iterator[None]:
    """python-bitcoinlib's global params set to ``network`` for the block, then restored."""
    if network not in NETWORKS:
        raise ValueError(f"network: unsupported {network!r}; supported: {sorted(NETWORKS)}")
    with _PARAMS_LOCK:
        before = bitcoin.params, bitcoin.core.coreparams
        bitcoin.SelectParams(NETWORKS[network])
        try:
            yield
        finally:
            bitcoin.params, bitcoin.core.coreparams = before


# secp256k1 group order: a valid secret is 1 <= k < N.
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def check_network(network: str) -> None:
    if network not in NETWORKS:
        raise ValueError(f"network: unsupported {network!r}; supported: {sorted(NETWORKS)}")


# The process default, for code that encodes nothing network-specific (transactions, scripts).
bitcoin.SelectParams("regtest")


@dataclass(frozen=True)
class Key:
    """A private key the framework holds for one party.

    Its python-bitcoinlib key, public key and scripts are derived once and kept: each
    derivation goes through OpenSSL (the public key) or pure-Python RIPEMD-160 (the
    script), and every payment and lock asked for them again (a fifth of the process's
    CPU at 100 swaps in flight, docs/profile/btc-k100-before.txt)."""

    secret: bytes

    @functools.cached_property
    def ckey(self) -> CKey:
        return CKey(self.secret, compressed=True)

    @functools.cached_property
    def pubkey(self) -> bytes:
        return bytes(self.ckey.pub)

    @property
    def wif(self) -> str:
        """The regtest WIF (dev chains' state files)."""
        with network_params("regtest"):
            return str(CBitcoinSecret.from_secret_bytes(self.secret, compressed=True))

    @functools.cached_property
    def script_pubkey(self) -> bytes:
        return p2wpkh_script(self.pubkey)

    @property
    def address(self) -> str:
        """The regtest P2WPKH address (dev chains); :func:`p2wpkh_address` for another network."""
        return p2wpkh_address(self.pubkey)

    def sign(self, digest: bytes) -> bytes:
        """DER signature (low-S) over a 32-byte sighash, without the hashtype byte."""
        signature: bytes = self.ckey.sign(digest)
        return signature

    @classmethod
    def from_wif(cls, wif: str, network: str = "regtest") -> "Key":
        with network_params(network):
            try:
                s = CBitcoinSecret(wif)
            except Exception as exc:
                raise ValueError(f"not a WIF private key of network {network!r} ({exc})") from None
        if not s.is_compressed:
            raise ValueError("only compressed keys are supported (segwit)")
        return cls(bytes(s)[:32])

    @classmethod
    def from_hex(cls, text: str) -> "Key":
        raw = bytes.fromhex(text.removeprefix("0x"))
        if len(raw) != 32:
            raise ValueError("a hex private key must be 32 bytes")
        return cls(raw)

    @classmethod
    def parse(cls, text: str, network: str = "regtest") -> "Key":
        """WIF (of ``network``) or 64 hex digits."""
        t = text.strip()
        if len(t.removeprefix("0x")) == 64:
            return cls.from_hex(t)
        return cls.from_wif(t, network)

    @classmethod
    def dev(cls, ledger: str, party: str) -> "Key":
        """Deterministic development key; never for value outside a local dev chain."""
        counter = 0
        while True:
            seed = hashlib.sha256(f"dvp-utxo-dev/{ledger}/{party}/{counter}".encode()).digest()
            if 0 < int.from_bytes(seed, "big") < _N:
                return cls(seed)
            counter += 1  # pragma: no cover - astronomically unlikely

    def __repr__(self) -> str:  # never print the secret
        return f"Key(pubkey={self.pubkey.hex()})"


@dataclass(frozen=True)
class StandIn(Key):
    """A party known by its public key only, standing in where a spend of its coins is sized
    and checked but never sent (``check_lock`` of a counterparty's lock): it signs with a
    throwaway secret, so what it builds has the right size and is never valid."""

    public: bytes = b""

    @property
    def pubkey(self) -> bytes:
        return self.public

    @classmethod
    def of(cls, pubkey: bytes) -> "StandIn":
        return cls(cls.dev("stand-in", pubkey.hex()).secret, check_pubkey(pubkey))

    def __repr__(self) -> str:
        return f"StandIn(pubkey={self.public.hex()})"


def check_pubkey(pub: bytes) -> bytes:
    if len(pub) != 33 or pub[0] not in (2, 3) or not CPubKey(pub).is_fullyvalid:
        raise ValueError(f"not a valid compressed public key: {pub.hex()}")
    return pub


@functools.lru_cache(maxsize=4096)
def pubkey_hash(pubkey: bytes) -> bytes:
    """HASH160 of a public key (python-bitcoinlib's RIPEMD-160 is pure Python: kept per key)."""
    digest: bytes = Hash160(pubkey)
    return digest


def p2wpkh_script(pubkey: bytes) -> bytes:
    return bytes(CScript([OP_0, pubkey_hash(pubkey)]))


def p2wpkh_address(pubkey: bytes, network: str = "regtest") -> str:
    with network_params(network):
        return str(P2WPKHBitcoinAddress.from_scriptPubKey(CScript(p2wpkh_script(pubkey))))


def address_of_script(script_pubkey: bytes, network: str = "regtest") -> str:
    from bitcoin.wallet import CBitcoinAddress

    with network_params(network):
        return str(CBitcoinAddress.from_scriptPubKey(CScript(script_pubkey)))
