"""An agent's identity: one ECDSA P-256 key and a self-signed X.509 certificate naming its party.

The same key authenticates the agent in mutual TLS and signs every message it sends, so a
peer pins one certificate per counterparty and needs no certificate authority.  Each
organisation makes its own identity (:func:`create_identity`) and hands the other only its
certificate; the key file never leaves its folder and is refused if others can read it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dvp.errors import ConfigError

KEY_FILE = "agent.key"
CERT_FILE = "agent.crt"
# Long enough that organisations are not re-pinning each other's certificates every year.
VALIDITY = datetime.timedelta(days=5 * 365)
_SIGNATURE = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True)
class PeerCert:
    """A counterparty's pinned certificate: it authenticates the peer's TLS and its messages."""

    party: str
    pem: bytes
    cert: x509.Certificate = field(repr=False, compare=False)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, for two organisations to compare over another channel
        before pinning each other's certificate."""
        return self.cert.fingerprint(hashes.SHA256()).hex(":").upper()

    def verify(self, data: bytes, signature: bytes) -> bool:
        key = self.cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # checked when loaded
        try:
            key.verify(signature, data, _SIGNATURE)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Identity:
    """This agent's party, its private key and its certificate."""

    party: str
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    cert_pem: bytes

    @property
    def key_pem(self) -> bytes:
        """The key as gRPC's TLS takes it (unencrypted PKCS#8 PEM): held in memory only."""
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def cert(self) -> PeerCert:
        """Our certificate as a peer pins it."""
        return PeerCert(self.party, self.cert_pem, x509.load_pem_x509_certificate(self.cert_pem))

    def sign(self, data: bytes) -> bytes:
        """An ECDSA-SHA256 signature of ``data``, DER-encoded."""
        return self.key.sign(data, _SIGNATURE)


def create_identity(folder: Path, party: str) -> Identity:
    """A new key and certificate for ``party`` in ``folder`` (``agent.key`` 0600, ``agent.crt`` 0644).

    Refuses to overwrite an existing key: replacing it silently would lock the agent out of
    every counterparty that pinned the old certificate."""
    folder = Path(folder)
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = _self_signed(key, party).public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never overwrite; mode 0600 from the creation on, before the key is in it.
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{key_path}: a key is already there; move it away to make a new identity") from None
    except OSError as exc:
        raise ConfigError(f"{key_path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    tmp = cert_path.with_name(cert_path.name + ".tmp")
    tmp.write_bytes(cert_pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, cert_path)
    return Identity(party, key, cert_pem)


def load_identity(key_path: Path, cert_path: Path) -> Identity:
    """This agent's identity from its key and certificate files; ConfigError names the file and cause."""
    key_path, cert_path = Path(key_path), Path(cert_path)
    try:
        mode = stat.S_IMODE(key_path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{key_path}: cannot read the key: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"{key_path}: mode {mode:04o}, must be 0600 (the key is readable by others)")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"{key_path}: cannot read the key: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key_path}: not an unencrypted PEM private key ({_first_line(exc)})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{key_path}: the key is not an ECDSA P-256 key")
    cert, cert_pem = _read_cert(cert_path)
    party = _party_of(cert, cert_path)
    if cert.public_key() != key.public_key():
        raise ConfigError(f"{cert_path}: the certificate does not match the key {key_path}")
    return Identity(party, key, cert_pem)


def load_peer_cert(path: Path, party: str) -> PeerCert:
    """The certificate to pin for the counterparty ``party``: it must name that party (CN and SAN)."""
    path = Path(path)
    cert, pem = _read_cert(path)
    named = _party_of(cert, path)
    if named != party:
        raise ConfigError(f"{path}: the certificate names {named!r}, not the peer {party!r}")
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        sans = []
    # TLS checks the peer's name against these (gRPC's target name override), not against the CN.
    if party not in sans:
        raise ConfigError(f"{path}: the certificate's subject alternative names do not name {party!r}")
    return PeerCert(party, pem, cert)


def _self_signed(key: ec.EllipticCurvePrivateKey, party: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A minute back: a peer whose clock is slightly behind still accepts it at once.
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(party), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        # Not a CA: a pinned peer certificate must not be able to vouch for any other.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def _read_cert(path: Path) -> tuple[x509.Certificate, bytes]:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the certificate: {exc.strerror}") from None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM certificate ({_first_line(exc)})") from None
    now = datetime.datetime.now(datetime.timezone.utc)
    if cert.not_valid_after_utc < now:
        raise ConfigError(f"{path}: the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if cert.not_valid_before_utc > now:
        raise ConfigError(f"{path}: the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{path}: the certificate's key is not an ECDSA P-256 key")
    return cert, pem


def _party_of(cert: x509.Certificate, path: Path) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise ConfigError(f"{path}: the certificate must have one common name (the party)")
    return names[0].value


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
