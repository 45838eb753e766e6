"""Benchmark figures computed from journal data only.

Every figure of a swap comes from its journal rows (:class:`dvp.journal.Step`):
wall-clock times, ledger clocks, tx ids, and the fee/payer details of result rows.
The functions here are pure, so unit tests check them on hand-written timelines.

Definitions (all seconds are wall-clock seconds):

- A swap starts when its journal record is created (``created``) and ends at its
  last result row.  ``total_seconds = sum(step seconds) + orchestration_seconds``:
  each step spans its intent (or, for a step without one, the previous step's end)
  to its result (:func:`dvp.report.timeline`); the gaps between steps (ledger reads,
  safety checks, planning) are the orchestration time.
- A transaction step splits into ``submit_seconds`` (its start to its last submitted
  row: build, sign, broadcast, and any failed attempt before a retry) and
  ``finality_seconds`` (last submitted to result: the wait for finality).
- Messages per party: the transactions it sends (on-ledger messages) plus one
  off-ledger notice per lock or proposal it makes (the lock id and terms its
  counterparty must audit).  The secret never travels off-ledger.
- Liquidity locked, per leg: amount (base units) x seconds from the lock being final
  (its result row) to the claim or refund being final.
- Principal-risk window: from the secret's reveal (the holder's claim being
  submitted) to the expiry of the holder's leg, the leg the counterparty claims
  second, read on that leg's ledger clock; against it, the time the second claim
  actually took (reveal to its result).
- Refund duration, per leg: lock final to refund final; ``unwind_seconds``: from the
  end of the last step before the first refund to the last refund.
- Free option (docs/design.md, rule 10): the party locking second may walk away; its option
  runs from the first lock being final to its own lock being final, or to the swap's
  last row if it never locked (``exercised``: it walked away).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..journal import Step
from ..report import timeline
from ..state import Action, LegName, StepName, expiry_of


@dataclass(frozen=True)
class LedgerInfo:
    """What the figures need to know of a ledger: its kind, fee unit and clock."""

    name: str
    kind: str
    fee_unit: str
    clock: str = "time"  # time | height
    block_interval: float = 1.0
    fee_display_unit: str | None = None  # what reports show fees in (gwei), None: fee_unit
    fee_display_scale: int = 1  # fee_unit per fee_display_unit

    def seconds_left(self, height: int | None, timestamp: float | None, expiry: int) -> float | None:
        if self.clock == "height":
            return None if height is None else (expiry - height) * self.block_interval
        return None if timestamp is None else expiry - timestamp


def _step(name: str) -> StepName | None:
    """The typed step of a journal row (None for a name this version does not know)."""
    try:
        return StepName(name)
    except ValueError:
        return None


def _action(name: str) -> Action | None:
    step = _step(name)
    return step.action if step is not None else None


def _party(trade: Mapping[str, Any], role: str) -> str:
    return str(trade.get(role, role))


def _sender(leg: LegName, trade: Mapping[str, Any]) -> str:
    return _party(trade, "seller" if leg is LegName.SECURITY else "buyer")


def _receiver(leg: LegName, trade: Mapping[str, Any]) -> str:
    return _party(trade, "buyer" if leg is LegName.SECURITY else "seller")


def actor(step: str, spec: Mapping[str, Any]) -> str:
    """The party that performs ``step`` in a swap of ``spec`` (a SwapSpec dump)."""
    trade = spec["trade"]
    name = _step(step)
    if name is None:
        return "orchestrator"
    if name.leg is not None and name.action in (Action.LOCK, Action.REFUND):
        return _sender(name.leg, trade)
    if name.leg is not None and name.action in (Action.AUDIT, Action.CLAIM):
        return _receiver(name.leg, trade)
    if name is StepName.EXTRACT_SECRET:
        holder = (spec.get("plan") or {}).get("secret_holder", "seller")
        return _party(trade, "buyer" if holder == "seller" else "seller")
    if name is StepName.PROPOSE:
        return _party(trade, "seller")
    if name is StepName.SETTLE:
        return _party(trade, "buyer")
    return "orchestrator"


def _phase_names(names: Sequence[str]) -> list[str]:
    """Generic names of the steps in order: lock, audit, counter-lock, counter-audit,
    claim, extract secret, second claim; refunds keep their leg."""
    seen: dict[Action, int] = defaultdict(int)
    second = {Action.LOCK: "counter-lock", Action.AUDIT: "counter-audit", Action.CLAIM: "second claim"}
    out = []
    for name in names:
        step = _step(name)
        if step is None or step.action not in second:
            out.append(name)
            continue
        seen[step.action] += 1
        out.append(step.action.value if seen[step.action] == 1 else second[step.action])
    return out


def _rows(steps: Iterable[Step], step: str, phase: str) -> list[Step]:
    return [s for s in steps if s.step == step and s.phase == phase]


def swap_metrics(
    swap_id: str,
    kind: str,
    spec: Mapping[str, Any],
    data: Mapping[str, Any],
    outcome: str | None,
    created: float | None,
    steps: Sequence[Step],
    ledgers: Mapping[str, LedgerInfo],
) -> dict[str, Any]:
    """Every figure of one swap, from its journal record and steps."""
    steps = list(steps)
    rows = timeline(steps)
    t0 = created if created is not None else (steps[0].wall if steps else 0.0)
    if steps:
        t0 = min(t0, steps[0].wall)
    phases = _phase_names([r.step for r in rows])
    entries: list[dict[str, Any]] = []
    prev_end = t0
    for r, phase in zip(rows, phases):
        submitted = _rows(steps, r.step, "submitted")
        result = next(s for s in steps if s.step == r.step and s.phase == "result" and s.wall == r.finished)
        finals = [s for s in _rows(steps, r.step, "final") if s.wall <= r.finished]
        fee = r.fee
        info = ledgers.get(r.ledger or "")
        unit = None
        if fee is not None:
            unit = info.fee_unit if info else (finals[-1].detail.get("fee_asset") if finals else None) or "unknown"
        entries.append(
            {
                "step": r.step,
                "phase": phase,
                "ledger": r.ledger,
                "party": (finals[-1].detail.get("payer") if finals else None) or actor(r.step, spec),
                "start": r.started - t0,
                "end": r.finished - t0,
                "seconds": r.seconds,
                "gap_before": r.started - prev_end,
                # From the step's start to its last broadcast: a step retried after a failed
                # attempt (resume) counts the retry here, so submit + finality = seconds.
                "submit_seconds": (submitted[-1].wall - r.started) if submitted else None,
                "finality_seconds": (result.wall - submitted[-1].wall) if submitted else None,
                "tx_id": r.tx_id,
                "transactions": r.transactions,
                "height": r.height,
                "fee": fee,
                "fee_unit": unit,
            }
        )
        prev_end = r.finished
    total = (rows[-1].finished - t0) if rows else 0.0
    step_sum = sum(e["seconds"] for e in entries)

    parties: dict[str, dict[str, int]] = defaultdict(lambda: {"steps": 0, "transactions": 0, "messages": 0})
    for e in entries:
        p = parties[e["party"]]
        p["steps"] += 1
        p["transactions"] += e["transactions"]
        p["messages"] += e["transactions"]
        if _action(e["step"]) in (Action.LOCK, Action.PROPOSE):
            p["messages"] += 1  # the off-ledger notice of the lock id / order to the counterparty

    tx_by_ledger: dict[str, int] = defaultdict(int)
    fees: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e["transactions"]:
            tx_by_ledger[e["ledger"]] += e["transactions"]
        if e["fee"] is not None:
            f = fees.setdefault(e["ledger"], {"fee": 0, "unit": e["fee_unit"]})
            f["fee"] += e["fee"]

    out: dict[str, Any] = {
        "swap_id": swap_id,
        "kind": kind,
        "outcome": outcome,
        "security": spec["trade"]["security"],
        "cash": spec["trade"]["cash"],
        "started": t0,
        "finished": t0 + total,
        "total_seconds": total,
        "steps_seconds": step_sum,
        "orchestration_seconds": total - step_sum,
        "finality_seconds": sum(e["finality_seconds"] or 0.0 for e in entries),
        "steps": entries,
        "transactions": sum(tx_by_ledger.values()),
        "transactions_by_ledger": dict(tx_by_ledger),
        "fees": fees,
        "parties": {k: dict(v) for k, v in parties.items()},
        "liquidity": liquidity(kind, spec, steps),
        "principal_risk": principal_risk(kind, spec, data, outcome, steps, ledgers),
        "refund": refund_durations(steps),
        "free_option": free_option(kind, spec, steps),
    }
    return out


def free_option(kind: str, spec: Mapping[str, Any], steps: Sequence[Step]) -> dict[str, Any] | None:
    """How long the party locking second could walk away at no cost (rule 10)."""
    if kind != "htlc":
        return None
    plan = spec.get("plan") or {}
    first = plan.get("first_locker") or plan.get("secret_holder", "seller")
    first_leg, second_leg = (LegName.SECURITY, LegName.CASH) if first == "seller" else (LegName.CASH, LegName.SECURITY)
    first_lock = _rows(steps, StepName.of(Action.LOCK, first_leg), "result")
    if not first_lock:
        return None
    second_lock = _rows(steps, StepName.of(Action.LOCK, second_leg), "result")
    end = second_lock[0].wall if second_lock else steps[-1].wall
    second = "buyer" if first == "seller" else "seller"
    return {
        "party": spec["trade"].get(second, second),
        "seconds": end - first_lock[0].wall,
        "exercised": not second_lock,
    }


def liquidity(kind: str, spec: Mapping[str, Any], steps: Sequence[Step]) -> dict[str, Any]:
    """Per leg: amount x seconds from the lock being final to its claim or refund being final,
    and the same seconds x the leg's value at the trade's price (the cash amount), so both legs
    of a swap read in one currency x seconds."""
    if kind != "htlc":
        return {}
    cash = spec["trade"][LegName.CASH]
    out: dict[str, Any] = {}
    for leg in LegName:
        locked = _rows(steps, StepName.of(Action.LOCK, leg), "result")
        ended = _rows(steps, StepName.of(Action.CLAIM, leg), "result") or _rows(
            steps, StepName.of(Action.REFUND, leg), "result"
        )
        if not locked or not ended:
            continue
        seconds = ended[-1].wall - locked[-1].wall
        amount = spec["trade"][leg]["amount"]
        out[leg] = {
            "ledger": spec["trade"][leg]["ledger"],
            "asset": spec["trade"][leg]["asset"],
            "amount": amount,
            "seconds": seconds,
            "amount_seconds": amount * seconds,
            "value": cash["amount"],
            "value_asset": cash["asset"],
            "value_seconds": cash["amount"] * seconds,
            "ended_by": StepName(ended[-1].step).action.value,
        }
    return out


def principal_risk(
    kind: str,
    spec: Mapping[str, Any],
    data: Mapping[str, Any],
    outcome: str | None,
    steps: Sequence[Step],
    ledgers: Mapping[str, LedgerInfo],
) -> dict[str, Any] | None:
    """The window between the secret's reveal and the holder leg's expiry, and how much
    of it the second claim used."""
    if kind != "htlc":
        return None
    holder = (spec.get("plan") or {}).get("secret_holder", "seller")
    holder_leg = LegName.SECURITY if holder == "seller" else LegName.CASH
    counter_leg = LegName.CASH if holder_leg is LegName.SECURITY else LegName.SECURITY
    counter_claim = StepName.of(Action.CLAIM, counter_leg)
    reveal_rows = _rows(steps, counter_claim, "submitted") or _rows(steps, counter_claim, "result")
    expiry = expiry_of(dict(data), holder_leg)
    if not reveal_rows or expiry is None:
        return None
    reveal = reveal_rows[0].wall
    ledger = spec["trade"][holder_leg]["ledger"]
    info = ledgers.get(ledger)
    clocked = [s for s in steps if s.ledger == ledger and (s.ledger_time is not None or s.ledger_height is not None)]
    window = None
    if info and clocked:
        row = min(clocked, key=lambda s: abs(s.wall - reveal))
        left = info.seconds_left(row.ledger_height, row.ledger_time, expiry)
        if left is not None:
            window = left - (reveal - row.wall)
    second = _rows(steps, StepName.of(Action.CLAIM, holder_leg), "result")
    took = (second[-1].wall - reveal) if second else None
    return {
        "holder_leg": holder_leg.value,
        "ledger": ledger,
        "window_seconds": window,
        "second_claim_seconds": took,
        "margin_seconds": (window - took) if window is not None and took is not None else None,
        "used_fraction": (took / window) if window and took is not None else None,
        "claimed_in_time": bool(second),
    }


def refund_durations(steps: Sequence[Step]) -> dict[str, Any] | None:
    refunds = [s for s in steps if s.phase == "result" and _action(s.step) is Action.REFUND]
    if not refunds:
        return None
    legs: dict[str, float] = {}
    for r in refunds:
        leg = StepName(r.step).leg
        assert leg is not None
        locked = _rows(steps, StepName.of(Action.LOCK, leg), "result")
        if locked:
            legs[leg.value] = r.wall - locked[-1].wall
    first_refund_seq = min(r.seq for r in refunds)
    before = [s for s in steps if s.phase == "result" and s.seq < first_refund_seq]
    start = before[-1].wall if before else steps[0].wall
    return {"legs": legs, "unwind_seconds": refunds[-1].wall - start}


# -- aggregation ----------------------------------------------------------------------------


def stats(values: Iterable[float | None]) -> dict[str, float] | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return {
        "n": len(vals),
        "mean": statistics.fmean(vals),
        "p50": percentile(vals, 50),
        "p95": percentile(vals, 95),
        "min": vals[0],
        "max": vals[-1],
    }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(swaps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-pair aggregates of per-swap figures."""
    n = len(swaps)
    outcomes: dict[str, int] = defaultdict(int)
    for s in swaps:
        outcomes[s["outcome"] or "unfinished"] += 1
    by_phase: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in swaps:
        for e in s["steps"]:
            by_phase[e["phase"]].append(e)
    phases = {
        phase: {
            "seconds": stats(e["seconds"] for e in es),
            "finality_seconds": stats(e["finality_seconds"] for e in es),
            "submit_seconds": stats(e["submit_seconds"] for e in es),
            "ledger": es[0]["ledger"],
        }
        for phase, es in by_phase.items()
    }
    tx_by_ledger: dict[str, float] = defaultdict(float)
    fees: dict[str, dict[str, Any]] = {}
    parties: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    liq: dict[str, dict[str, Any]] = {}
    for s in swaps:
        for ledger, count in s["transactions_by_ledger"].items():
            tx_by_ledger[ledger] += count / n
        for ledger, f in s["fees"].items():
            slot = fees.setdefault(ledger, {"fee_per_swap": 0.0, "unit": f["unit"]})
            slot["fee_per_swap"] += f["fee"] / n
        for party, p in s["parties"].items():
            for k, v in p.items():
                parties[party][k] += v / n
        for leg, l in s["liquidity"].items():
            slot = liq.setdefault(
                leg,
                {
                    "ledger": l["ledger"],
                    "asset": l["asset"],
                    "value_asset": l.get("value_asset"),
                    "amount_seconds": [],
                    "value_seconds": [],
                    "seconds": [],
                },
            )
            slot["amount_seconds"].append(l["amount_seconds"])
            slot["value_seconds"].append(l.get("value_seconds"))
            slot["seconds"].append(l["seconds"])
    risks = [s["principal_risk"] for s in swaps if s.get("principal_risk")]
    options = [s["free_option"] for s in swaps if s.get("free_option")]
    refunds = [s["refund"] for s in swaps if s.get("refund")]
    return {
        "swaps": n,
        "outcomes": dict(outcomes),
        "latency": stats(s["total_seconds"] for s in swaps),
        "orchestration_seconds": stats(s["orchestration_seconds"] for s in swaps),
        "finality_seconds": stats(s["finality_seconds"] for s in swaps),
        "phases": phases,
        "transactions_per_swap": sum(tx_by_ledger.values()),
        "transactions_per_swap_by_ledger": dict(tx_by_ledger),
        "fees": fees,
        "parties": {k: dict(v) for k, v in parties.items()},
        "liquidity": {
            leg: {
                "ledger": v["ledger"],
                "asset": v["asset"],
                "amount_seconds": stats(v["amount_seconds"]),
                "value_asset": v["value_asset"],
                "value_seconds": stats(v["value_seconds"]),
                "seconds": stats(v["seconds"]),
            }
            for leg, v in liq.items()
        },
        "principal_risk": {
            "window_seconds": stats(r["window_seconds"] for r in risks),
            "second_claim_seconds": stats(r["second_claim_seconds"] for r in risks),
            "margin_seconds": stats(r["margin_seconds"] for r in risks),
        }
        if risks
        else None,
        "free_option": {
            "seconds": stats(o["seconds"] for o in options),
            "exercised": sum(1 for o in options if o["exercised"]),
        }
        if options
        else None,
        "refund": {
            "unwind_seconds": stats(r["unwind_seconds"] for r in refunds),
            "legs": {leg: stats(r["legs"].get(leg) for r in refunds) for leg in LegName},
        }
        if refunds
        else None,
        "elapsed_seconds": (max(s["finished"] for s in swaps) - min(s["started"] for s in swaps)) if swaps else 0.0,
    }


def throughput(summary: Mapping[str, Any]) -> float | None:
    """Swaps finished per second over the batch's elapsed time."""
    elapsed = summary.get("elapsed_seconds") or 0.0
    return summary["swaps"] / elapsed if elapsed > 0 else None


def overhead_ratio(summary: Mapping[str, Any], confirmation: Mapping[str, float]) -> dict[str, Any] | None:
    """Mean DvP latency over the sum of the underlying confirmations: one baseline
    confirmation per transaction the swap sends, on that transaction's ledger."""
    lat = summary.get("latency")
    if not lat:
        return None
    base = sum(
        count * confirmation[ledger]
        for ledger, count in summary["transactions_per_swap_by_ledger"].items()
        if ledger in confirmation
    )
    if base <= 0:
        return None
    ratio = lat["mean"] / base
    return {"latency_seconds": lat["mean"], "confirmations_seconds": base, "ratio": ratio, "overhead": ratio - 1}


def throughput_ratio(summary: Mapping[str, Any], raw_tps: Mapping[str, float]) -> dict[str, Any] | None:
    """Swap throughput over the bound the slower ledger sets: its raw transfer
    throughput divided by the transactions one swap sends on it."""
    tps = throughput(summary)
    bounds = {
        ledger: raw_tps[ledger] / count
        for ledger, count in summary["transactions_per_swap_by_ledger"].items()
        if count > 0 and raw_tps.get(ledger)
    }
    if tps is None or not bounds:
        return None
    slower = min(bounds, key=lambda ledger: bounds[ledger])
    return {
        "swaps_per_second": tps,
        "bound": bounds[slower],
        "limited_by": slower,
        "bounds": bounds,
        "ratio": tps / bounds[slower],
    }


def rss_trend(
    samples: Sequence[tuple[int, int]], *, tolerance: float = 0.05, floor_kib: int = 8192
) -> dict[str, Any] | None:
    """(finished swaps, RSS KiB) samples -> least-squares slope and whether RSS stays flat.

    Flat when the fitted growth over the second half of the run (after warm-up) is at
    most ``tolerance`` of the RSS there, or ``floor_kib``, whichever is larger."""
    if len(samples) < 2:
        return None
    half = samples[len(samples) // 2 :] if len(samples) >= 4 else list(samples)
    xs = [float(x) for x, _ in half]
    ys = [float(y) for _, y in half]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
    growth = slope * (xs[-1] - xs[0])
    allowed = max(tolerance * my, floor_kib)
    return {
        "slope_kib_per_swap": slope,
        "growth_kib": growth,
        "allowed_kib": allowed,
        "flat": growth <= allowed,
        "first_kib": samples[0][1],
        "last_kib": samples[-1][1],
        "max_kib": max(y for _, y in samples),
    }
