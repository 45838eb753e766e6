"""Turning a swap's journal into a timeline, balance checks and a JSON report."""

from __future__ import annotations

import platform
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .journal import Step
from .orchestrator import SwapResult
from .state import HtlcSwapState, Phase, state_of
from .steps import fees_journaled

Balances = dict[tuple[str, str, str], int]


@dataclass(frozen=True)
class StepTiming:
    step: str
    ledger: str | None
    started: float
    finished: float
    tx_id: str | None
    height: int | None
    fee: int | None  # every transaction of the step (an approve and its lock), in the ledger's fee unit
    transactions: int = 0
    reverted: str | None = None  # the rule a transaction broke, when the step failed on the ledger (no result)

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def timeline(steps: list[Step]) -> list[StepTiming]:
    """One row per step: from its intent (or the previous step's end) to its result, every
    transaction of its attempts counted (a failed one before a retry too).  A step that failed
    on the ledger and has no result (a claim that lost a race, an approve that reverted) ends at
    its last transaction's final row, with ``reverted`` set: its fees are paid all the same."""
    rows: list[StepTiming] = []
    started: dict[str, float] = {}
    fees: dict[str, int | None] = {}
    txs: dict[str, int] = defaultdict(int)
    broke: dict[str, tuple[str, str | None]] = {}  # step -> the rule its reverted transaction broke, that tx
    # Each step's last final or result row: neither a skipped row nor a resume's intent that sent
    # nothing (its send failed before broadcasting) after a reverted attempt ends the step.
    last = {s.step: i for i, s in enumerate(steps) if s.phase in (Phase.FINAL, Phase.RESULT)}
    previous_end = steps[0].wall if steps else 0.0
    for i, s in enumerate(steps):
        if s.phase == Phase.INTENT:
            started.setdefault(s.step, s.wall)
        elif s.phase == Phase.FINAL:
            txs[s.step] += 1
            if s.detail.get("fee") is not None:
                fees[s.step] = (fees.get(s.step) or 0) + s.detail["fee"]
            if s.detail.get("reverted"):
                broke.setdefault(s.step, (str(s.detail["reverted"]), s.tx_id))
        ended = s.phase == Phase.RESULT
        if ended or (s.phase == Phase.FINAL and s.step in broke and i == last[s.step]):
            rule, reverted_tx = broke.pop(s.step, (None, None))
            rows.append(
                StepTiming(
                    s.step,
                    s.ledger,
                    started.pop(s.step, previous_end),
                    s.wall,
                    s.tx_id if ended else reverted_tx,
                    s.ledger_height,
                    fees.pop(s.step, None),
                    txs.pop(s.step, 0),
                    None if ended else rule,
                )
            )
            previous_end = s.wall
    return rows


def fees_paid(steps: list[Step]) -> Balances:
    """(ledger, asset, party) -> fees paid in a traded asset (UTXO coins), from the journal."""
    paid: Balances = {}
    for (ledger, payer, _unit, asset), fee in fees_journaled(steps).items():
        if asset:  # rows of one payer and asset may differ by unit (none before units were journaled)
            paid[(ledger, asset, payer)] = paid.get((ledger, asset, payer), 0) + fee
    return paid


def fees_report(steps: list[Step]) -> list[dict[str, Any]]:
    """The swap's fees per ledger and payer, each transaction once, a reverted one included."""
    return [
        {"ledger": ledger, "payer": payer, "fee": fee, "unit": unit, "asset": asset}
        for (ledger, payer, unit, asset), fee in fees_journaled(steps).items()
    ]


def reverted(steps: list[Step]) -> list[Step]:
    """The transactions the ledger mined but reverted (each once): their fee was paid."""
    found: dict[tuple[str | None, str | None], Step] = {}
    for s in steps:
        if s.phase == Phase.FINAL and s.detail.get("reverted"):
            found.setdefault((s.ledger, s.tx_id), s)
    return list(found.values())


def fee_lines(steps: list[Step]) -> list[str]:
    """``fees: 63162 wei paid by buyer on evm-a`` per payer, then each reverted transaction."""
    paid = [
        " ".join(str(x) for x in (f"{fee:,}", unit, f"({asset})" if asset else None) if x)
        + f" paid by {payer} on {ledger}"
        for (ledger, payer, unit, asset), fee in fees_journaled(steps).items()
    ]
    lines = [f"fees: {'; '.join(paid)}"] if paid else []
    for s in reverted(steps):
        lines.append(
            f"reverted on {s.ledger}: {s.step} tx {s.tx_id} ({s.detail['reverted']}), "
            f"fee {s.detail.get('fee', 0):,} {s.detail.get('fee_unit') or ''} paid by {s.detail.get('payer')}".replace(
                "  ", " "
            )
        )
    return lines


def conservation(before: Balances, after: Balances, fees: Balances | None = None) -> dict[tuple[str, str], int]:
    """Per (ledger, asset), the change in the parties' total once the fees they paid in that
    asset are added back: all zeros when nothing was created or lost.  Fees in an asset the
    balances do not track (a coin that only pays fees, as Elements' policy asset) are left out."""
    delta: dict[tuple[str, str], int] = defaultdict(int)
    for (ledger, asset, party), value in after.items():
        delta[(ledger, asset)] += value - before.get((ledger, asset, party), 0)
    for (ledger, asset, _party), fee in (fees or {}).items():
        if (ledger, asset) in delta:
            delta[(ledger, asset)] += fee
    return dict(delta)


def swap_report(result: SwapResult) -> dict[str, Any]:
    rows = timeline(result.steps)
    return {
        "swap_id": result.swap_id,
        "kind": result.kind,
        "outcome": result.outcome.value if result.outcome else None,
        "detail": result.detail,
        "trade": result.spec.trade.model_dump(mode="json"),
        "plan": result.spec.plan.model_dump(mode="json") if result.kind == "htlc" else None,
        "lock_ids": _lock_ids(result),
        "seconds": round(rows[-1].finished - result.steps[0].wall, 3) if rows else 0.0,
        "transactions": sum(r.transactions for r in rows),
        "fees": fees_report(result.steps),
        "reverted": [
            {
                "step": s.step,
                "ledger": s.ledger,
                "tx_id": s.tx_id,
                "rule": s.detail["reverted"],
                "fee": s.detail.get("fee"),
            }
            for s in reverted(result.steps)
        ],
        "steps": [
            {
                "step": r.step,
                "ledger": r.ledger,
                "seconds": round(r.seconds, 3),
                "tx_id": r.tx_id,
                "height": r.height,
                "fee": r.fee,
                "transactions": r.transactions,
                "reverted": r.reverted,
            }
            for r in rows
        ],
    }


def _lock_ids(result: SwapResult) -> dict[str, str]:
    state = state_of(result.kind, result.data)
    if isinstance(state, HtlcSwapState):
        return state.lock_ids()
    return {"order_id": state.order_id} if state.order_id else {}


def machine() -> dict[str, Any]:
    import os

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def balances_json(balances: Balances) -> list[dict[str, Any]]:
    return [{"ledger": l, "asset": a, "party": p, "balance": v} for (l, a, p), v in sorted(balances.items())]
