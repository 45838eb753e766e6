"""A message on the wire: its canonical JSON and the sender's signature of exactly those bytes.

``{"message": "<canonical JSON of the Message>", "signature": "<base64 ECDSA-SHA256 DER>"}``

The message travels as a string so the receiver verifies the very bytes that were signed and
never re-serialises before checking.  Replay and ordering are the agent's to check against its
journal (:mod:`dvp.party.agent`); this module checks who signed the message and whom it is for.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import ValidationError

from dvp.errors import MessageRefused
from dvp.party.messages import MAX_MESSAGE_BYTES, Message
from dvp.scenario import first_error

from .identity import Identity, PeerCert


class NotAuthentic(MessageRefused):
    """The message is not the authenticated peer's own: bad signature, or another sender named."""


def canonical(message: Message) -> bytes:
    """The bytes a party signs: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        message.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def seal(message: Message, identity: Identity) -> bytes:
    """``message`` signed by ``identity``, ready for the wire; refuses one over MAX_MESSAGE_BYTES."""
    body = canonical(message)
    data = json.dumps(
        {"message": body.decode(), "signature": base64.b64encode(identity.sign(body)).decode()},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageRefused(f"{message.kind} message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return data


def unseal(data: bytes, *, peer: PeerCert, me: str) -> Message:
    """The message in ``data`` if ``peer`` signed it, names ``peer`` as its sender and ``me`` as its
    recipient; MessageRefused (NotAuthentic for signature and sender) with a one-line reason."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageRefused(f"message of {len(data)} bytes from {peer.party!r} exceeds {MAX_MESSAGE_BYTES}")
    body, signature = _envelope(data, peer.party)
    if not peer.verify(body, signature):
        raise NotAuthentic(f"signature of message from {peer.party!r} does not verify with {peer.party}'s certificate")
    try:
        message = Message.model_validate_json(body)
    except ValidationError as exc:
        raise MessageRefused(f"message from {peer.party!r} is not a valid message: {first_error(exc)}") from None
    if message.sender != peer.party:
        raise NotAuthentic(f"message names sender {message.sender!r} but comes from {peer.party!r}")
    if message.recipient != me:
        raise MessageRefused(f"message from {peer.party!r} is for {message.recipient!r}, not {me!r}")
    return message


def _envelope(data: bytes, party: str) -> tuple[bytes, bytes]:
    try:
        outer: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageRefused(f"message from {party!r} is not JSON ({exc})") from None
    if not isinstance(outer, dict) or set(outer) != {"message", "signature"}:
        raise MessageRefused(f"message from {party!r} is not an envelope of 'message' and 'signature'")
    body, signature = outer["message"], outer["signature"]
    if not isinstance(body, str) or not isinstance(signature, str):
        raise MessageRefused(f"message from {party!r}: 'message' and 'signature' must be strings")
    try:
        raw = body.encode()
    except UnicodeEncodeError:  # a lone surrogate escaped in the JSON
        raise MessageRefused(f"message from {party!r} is not valid UTF-8 text") from None
    try:
        return raw, base64.b64decode(signature, validate=True)
    except binascii.Error as exc:
        raise MessageRefused(f"message from {party!r}: signature is not base64 ({exc})") from None
