"""Client identities: an X.509 certificate with its MSP id, and an ECDSA P-256 signer.

Fabric's MSP rejects high-S ECDSA signatures (both (r, s) and (r, n - s) verify, so a
signature could otherwise be altered without the key); the signer always emits low S.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.msp import identities_pb2

from dvp.errors import ConfigError

# Order of the P-256 group.
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True)
class Identity:
    """Who signs: an MSP id and the PEM of its certificate, as Fabric serialises them."""

    msp_id: str
    credentials: bytes

    @cached_property
    def serialized(self) -> bytes:
        message: bytes = identities_pb2.SerializedIdentity(
            mspid=self.msp_id, id_bytes=self.credentials
        ).SerializeToString()
        return message


class Signer:
    """Signs SHA-256 digests with a P-256 private key; signatures are DER with low S."""

    def __init__(self, key: ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(f"fabric identity: key curve {key.curve.name} is not P-256")
        self._key = key

    @classmethod
    def from_pem(cls, pem: bytes) -> Signer:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError("fabric identity: private key is not an EC key")
        return cls(key)

    def sign(self, message: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(message, ec.ECDSA(hashes.SHA256())))
        if s > _P256_N // 2:
            s = _P256_N - s
        return encode_dss_signature(r, s)


def load_msp(
    msp_id: str, msp_dir: str | Path, cert: str | Path | None = None, key: str | Path | None = None
) -> tuple[Identity, Signer]:
    """An identity and signer from an MSP folder (``signcerts/``, ``keystore/``) or explicit files."""
    msp = Path(msp_dir)
    cert_path = Path(cert) if cert else _only(msp / "signcerts", "certificate")
    key_path = Path(key) if key else _only(msp / "keystore", "private key")
    try:
        return Identity(msp_id, cert_path.read_bytes()), Signer.from_pem(key_path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"fabric identity {msp_id}: cannot read {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"fabric identity {msp_id}: {key_path}: {exc}") from None


def _only(folder: Path, what: str) -> Path:
    files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    if len(files) != 1:
        raise ConfigError(f"fabric identity: expected one {what} in {folder}, found {len(files)}")
    return files[0]
