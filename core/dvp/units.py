"""Amounts in messages, each with its real unit: one formatter for every adapter.

The mechanism is here and knows no platform: a :class:`Quantity` is a whole number and the
name of what it counts, and :func:`funds_short` is the one refusal text for a lock its sender
cannot pay. What a ledger counts an asset in is the adapter's knowledge
(:meth:`dvp.adapter.LedgerAdapter.unit_of`: sat for a Bitcoin chain's coin, wei for an EVM
chain's fees, an issued asset's base units, sat of the policy asset for Elements' fees).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quantity:
    value: int
    unit: str  # what one counts: "sat", "wei", "BOND" (its base units, as a trade counts them)

    def __str__(self) -> str:
        return f"{self.value} {self.unit}"


def funds_short(
    party: str,
    ledger: str,
    have: Quantity,
    need: Quantity,
    *,
    fee: Quantity | None = None,
    purpose: str = "",
    up_to: bool = False,
    note: str = "",
) -> str:
    """``'buyer' holds 48446 sat on btc, needs 200000 sat plus a fee of up to 306 sat``:
    ``purpose`` names what the funds are for (" for fees"), ``up_to`` marks ``need`` as an upper
    bound (a fee estimate), ``note`` adds a last word in brackets."""
    text = f"{party!r} holds {have} on {ledger}{purpose}, needs {'up to ' if up_to else ''}{need}"
    if fee is not None:
        text += f" plus a fee of up to {fee}"
    return f"{text} ({note})" if note else text
