"""Benchmark figures computed from journal data only.

Every figure of a swap comes from its journal rows (:class:`dvp.journal.Step`):
wall-clock times, ledger clocks, tx ids, and the fee/payer details of result rows.
The functions here are pure, so unit tests check them on hand-written timelines.

Definitions (all seconds are wall-clock seconds):

- A swap starts when its journal record is created (``created``) and ends at its
  last step's end.  ``total_seconds = sum(step seconds) + orchestration_seconds``:
  each step spans its intent (or, for a step without one, the previous step's end)
  to its result, or, for a step that failed on the ledger (``reverted``), to its last
  transaction's final row (:func:`dvp.report.timeline`); the gaps between steps (ledger
  reads, safety checks, planning) are the orchestration time.
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

from ..journal import Step, SwapRecord
from ..models import SwapSpec
from ..report import timeline
from ..state import Action, LegName, Phase, StepName, expiry_of
from ..steps import fees_journaled
from .figures import (
    Fee,
    FeePerSwap,
    FreeOption,
    LegFigures,
    LockedLeg,
    LockedSummary,
    OptionSummary,
    Overhead,
    PartyCounts,
    PhaseSummary,
    PrincipalRisk,
    Refund,
    RefundSummary,
    RiskSummary,
    RssTrend,
    Stats,
    StepFigures,
    Summary,
    SwapFigures,
    Throughput,
)


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


def actor(step: str, spec: SwapSpec) -> str:
    """The party that performs ``step`` in a swap of ``spec``."""
    trade = spec.trade
    name = _step(step)
    if name is None:
        return "orchestrator"
    if name.leg is not None and name.action in (Action.LOCK, Action.REFUND):
        return trade.party(name.leg.sender)
    if name.leg is not None and name.action in (Action.AUDIT, Action.CLAIM):
        return trade.party(name.leg.sender.other)
    if name is StepName.EXTRACT_SECRET:
        return trade.party(spec.plan.secret_holder.other)
    if name is StepName.PROPOSE:
        return trade.seller
    if name is StepName.SETTLE:
        return trade.buyer
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


def _rows(steps: Iterable[Step], step: str, phase: Phase) -> list[Step]:
    return [s for s in steps if s.step == step and s.phase == phase]


def _results(steps: Sequence[Step], action: Action, leg: LegName) -> list[Step]:
    """The result rows of one leg's ``action``."""
    return _rows(steps, StepName.of(action, leg), Phase.RESULT)


def swap_metrics(record: SwapRecord, steps: Sequence[Step], ledgers: Mapping[str, LedgerInfo]) -> SwapFigures:
    """Every figure of one swap, from its journal record and steps."""
    spec = SwapSpec.model_validate(record.spec)
    steps = list(steps)
    rows = timeline(steps)
    t0 = record.created if record.created is not None else (steps[0].wall if steps else 0.0)
    if steps:
        t0 = min(t0, steps[0].wall)
    phases = _phase_names([r.step for r in rows])
    entries: list[StepFigures] = []
    prev_end = t0
    for r, phase in zip(rows, phases):
        submitted = _rows(steps, r.step, Phase.SUBMITTED)
        finals = [s for s in _rows(steps, r.step, Phase.FINAL) if s.wall <= r.finished]
        fee = r.fee
        info = ledgers.get(r.ledger or "")
        unit = None
        if fee is not None:
            unit = info.fee_unit if info else (finals[-1].detail.get("fee_asset") if finals else None) or "unknown"
        entries.append(
            StepFigures(
                step=r.step,
                phase=phase,
                ledger=r.ledger,
                party=(finals[-1].detail.get("payer") if finals else None) or actor(r.step, spec),
                start=r.started - t0,
                end=r.finished - t0,
                seconds=r.seconds,
                gap_before=r.started - prev_end,
                # From the step's start to its last broadcast: a step retried after a failed
                # attempt (resume) counts the retry here, so submit + finality = seconds.
                submit_seconds=(submitted[-1].wall - r.started) if submitted else None,
                finality_seconds=(r.finished - submitted[-1].wall) if submitted else None,
                tx_id=r.tx_id,
                transactions=r.transactions,
                height=r.height,
                fee=fee,
                fee_unit=unit,
                **({"reverted": r.reverted} if r.reverted else {}),
            )
        )
        prev_end = r.finished
    total = (rows[-1].finished - t0) if rows else 0.0
    step_sum = sum(e.seconds for e in entries)

    parties: dict[str, PartyCounts] = {}
    for e in entries:
        p = parties.setdefault(e.party, PartyCounts(steps=0, transactions=0, messages=0))
        p.steps += 1
        p.transactions += e.transactions
        p.messages += e.transactions
        if _action(e.step) in (Action.LOCK, Action.PROPOSE):
            p.messages += 1  # the off-ledger notice of the lock id / order to the counterparty

    tx_by_ledger: dict[str, int] = defaultdict(int)
    for e in entries:
        if e.transactions and e.ledger is not None:
            tx_by_ledger[e.ledger] += e.transactions
    # Every transaction's fee, one whose step never ended (a reverted claim, a cancel the
    # acceptance beat) included: from the journal's final rows, not the steps' rows.
    fees: dict[str, Fee] = {}
    for (ledger, _, unit, asset), fee in fees_journaled(steps).items():
        info = ledgers.get(ledger)
        fees.setdefault(ledger, Fee(fee=0, unit=info.fee_unit if info else unit or asset or "unknown")).fee += fee

    return SwapFigures(
        swap_id=record.id,
        kind=record.kind,
        outcome=record.outcome,
        security=LegFigures.model_validate(spec.trade.security.model_dump()),
        cash=LegFigures.model_validate(spec.trade.cash.model_dump()),
        started=t0,
        finished=t0 + total,
        total_seconds=total,
        steps_seconds=step_sum,
        orchestration_seconds=total - step_sum,
        finality_seconds=sum(e.finality_seconds or 0.0 for e in entries),
        steps=entries,
        transactions=sum(tx_by_ledger.values()),
        transactions_by_ledger=dict(tx_by_ledger),
        fees=fees,
        parties=parties,
        liquidity=liquidity(record.kind, spec, steps),
        principal_risk=principal_risk(record, steps, ledgers),
        refund=refund_durations(steps),
        free_option=free_option(record.kind, spec, steps),
    )


def free_option(kind: str, spec: SwapSpec, steps: Sequence[Step]) -> FreeOption | None:
    """How long the party locking second could walk away at no cost (rule 10)."""
    if kind != "htlc":
        return None
    first = spec.plan.locks_first
    first_lock = _results(steps, Action.LOCK, LegName.sent_by(first))
    if not first_lock:
        return None
    second_lock = _results(steps, Action.LOCK, LegName.sent_by(first.other))
    end = second_lock[0].wall if second_lock else steps[-1].wall
    return FreeOption(party=spec.trade.party(first.other), seconds=end - first_lock[0].wall, exercised=not second_lock)


def liquidity(kind: str, spec: SwapSpec, steps: Sequence[Step]) -> dict[str, LockedLeg]:
    """Per leg: amount x seconds from the lock being final to its claim or refund being final,
    and the same seconds x the leg's value at the trade's price (the cash amount), so both legs
    of a swap read in one currency x seconds."""
    if kind != "htlc":
        return {}
    cash = spec.trade.cash
    out: dict[str, LockedLeg] = {}
    for leg in LegName:
        locked = _results(steps, Action.LOCK, leg)
        ended = _results(steps, Action.CLAIM, leg) or _results(steps, Action.REFUND, leg)
        if not locked or not ended:
            continue
        seconds = ended[-1].wall - locked[-1].wall
        traded = spec.trade.security if leg is LegName.SECURITY else cash
        out[leg.value] = LockedLeg(
            ledger=traded.ledger,
            asset=traded.asset,
            amount=traded.amount,
            seconds=seconds,
            amount_seconds=traded.amount * seconds,
            value=cash.amount,
            value_asset=cash.asset,
            value_seconds=cash.amount * seconds,
            ended_by=StepName(ended[-1].step).action.value,
        )
    return out


def principal_risk(
    record: SwapRecord, steps: Sequence[Step], ledgers: Mapping[str, LedgerInfo]
) -> PrincipalRisk | None:
    """The window between the secret's reveal and the holder leg's expiry, and how much
    of it the second claim used."""
    if record.kind != "htlc":
        return None
    spec = SwapSpec.model_validate(record.spec)
    holder_leg = LegName.sent_by(spec.plan.secret_holder)
    counter_leg = LegName.CASH if holder_leg is LegName.SECURITY else LegName.SECURITY
    counter_claim = StepName.of(Action.CLAIM, counter_leg)
    reveal_rows = _rows(steps, counter_claim, Phase.SUBMITTED) or _rows(steps, counter_claim, Phase.RESULT)
    expiry = expiry_of(dict(record.data), holder_leg)
    if not reveal_rows or expiry is None:
        return None
    reveal = reveal_rows[0].wall
    ledger = (spec.trade.security if holder_leg is LegName.SECURITY else spec.trade.cash).ledger
    info = ledgers.get(ledger)
    clocked = [s for s in steps if s.ledger == ledger and (s.ledger_time is not None or s.ledger_height is not None)]
    window = None
    if info and clocked:
        row = min(clocked, key=lambda s: abs(s.wall - reveal))
        left = info.seconds_left(row.ledger_height, row.ledger_time, expiry)
        if left is not None:
            window = left - (reveal - row.wall)
    second = _results(steps, Action.CLAIM, holder_leg)
    took = (second[-1].wall - reveal) if second else None
    return PrincipalRisk(
        holder_leg=holder_leg.value,
        ledger=ledger,
        window_seconds=window,
        second_claim_seconds=took,
        margin_seconds=(window - took) if window is not None and took is not None else None,
        used_fraction=(took / window) if window and took is not None else None,
        claimed_in_time=bool(second),
    )


def refund_durations(steps: Sequence[Step]) -> Refund | None:
    refunds = [s for s in steps if s.phase == Phase.RESULT and _action(s.step) is Action.REFUND]
    if not refunds:
        return None
    legs: dict[str, float] = {}
    for r in refunds:
        leg = StepName(r.step).leg
        assert leg is not None
        locked = _results(steps, Action.LOCK, leg)
        if locked:
            legs[leg.value] = r.wall - locked[-1].wall
    first_refund_seq = min(r.seq for r in refunds)
    before = [s for s in steps if s.phase == Phase.RESULT and s.seq < first_refund_seq]
    start = before[-1].wall if before else steps[0].wall
    return Refund(legs=legs, unwind_seconds=refunds[-1].wall - start)


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


def stats_of(values: Iterable[float | None]) -> Stats | None:
    """:func:`stats`, typed."""
    found = stats(values)
    return Stats.model_validate(found) if found else None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(swaps: Sequence[SwapFigures]) -> Summary:
    """Per-pair aggregates of per-swap figures."""
    n = len(swaps)
    outcomes: dict[str, int] = defaultdict(int)
    for s in swaps:
        outcomes[s.outcome or "unfinished"] += 1
    by_phase: dict[str, list[StepFigures]] = defaultdict(list)
    for s in swaps:
        for e in s.steps:
            by_phase[e.phase].append(e)
    phases = {
        phase: PhaseSummary(
            seconds=stats_of(e.seconds for e in es),
            finality_seconds=stats_of(e.finality_seconds for e in es),
            submit_seconds=stats_of(e.submit_seconds for e in es),
            ledger=es[0].ledger,
        )
        for phase, es in by_phase.items()
    }
    tx_by_ledger: dict[str, float] = defaultdict(float)
    fees: dict[str, FeePerSwap] = {}
    parties: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    liq: dict[str, list[LockedLeg]] = defaultdict(list)
    for s in swaps:
        for ledger, count in s.transactions_by_ledger.items():
            tx_by_ledger[ledger] += count / n
        for ledger, f in s.fees.items():
            fees.setdefault(ledger, FeePerSwap(fee_per_swap=0.0, unit=f.unit)).fee_per_swap += f.fee / n
        for party, p in s.parties.items():
            for k, v in p.model_dump().items():
                parties[party][k] += v / n
        for leg, locked in s.liquidity.items():
            liq[leg].append(locked)
    risks = [s.principal_risk for s in swaps if s.principal_risk]
    options = [s.free_option for s in swaps if s.free_option]
    refunds = [s.refund for s in swaps if s.refund]
    return Summary(
        swaps=n,
        outcomes=dict(outcomes),
        latency=stats_of(s.total_seconds for s in swaps),
        orchestration_seconds=stats_of(s.orchestration_seconds for s in swaps),
        finality_seconds=stats_of(s.finality_seconds for s in swaps),
        phases=phases,
        transactions_per_swap=sum(tx_by_ledger.values()),
        transactions_per_swap_by_ledger=dict(tx_by_ledger),
        fees=fees,
        parties={k: dict(v) for k, v in parties.items()},
        liquidity={
            leg: LockedSummary(
                ledger=ls[0].ledger,
                asset=ls[0].asset,
                amount_seconds=stats_of(l.amount_seconds for l in ls),
                value_asset=ls[0].value_asset,
                value_seconds=stats_of(l.value_seconds for l in ls),
                seconds=stats_of(l.seconds for l in ls),
            )
            for leg, ls in liq.items()
        },
        principal_risk=RiskSummary(
            window_seconds=stats_of(r.window_seconds for r in risks),
            second_claim_seconds=stats_of(r.second_claim_seconds for r in risks),
            margin_seconds=stats_of(r.margin_seconds for r in risks),
        )
        if risks
        else None,
        free_option=OptionSummary(
            seconds=stats_of(o.seconds for o in options), exercised=sum(1 for o in options if o.exercised)
        )
        if options
        else None,
        refund=RefundSummary(
            unwind_seconds=stats_of(r.unwind_seconds for r in refunds),
            legs={leg.value: stats_of(r.legs.get(leg) for r in refunds) for leg in LegName},
        )
        if refunds
        else None,
        elapsed_seconds=(max(s.finished for s in swaps) - min(s.started for s in swaps)) if swaps else 0.0,
    )


def throughput(summary: Summary) -> float | None:
    """Swaps finished per second over the batch's elapsed time."""
    elapsed = summary.elapsed_seconds or 0.0
    return summary.swaps / elapsed if elapsed > 0 else None


def one_process_rate(pair: Mapping[str, Any]) -> float | None:
    """A pair's swaps/s in one process, from its ``results.json`` entry: its swaps over its
    batch's seconds (None when the batch was not timed); the agents' rows and targets compare
    their swaps/s with it."""
    seconds = pair.get("batch_seconds")
    return len(pair["swaps"]) / seconds if seconds else None


def overhead_ratio(summary: Summary, confirmation: Mapping[str, float]) -> Overhead | None:
    """Mean DvP latency over the sum of the underlying confirmations: one baseline
    confirmation per transaction the swap sends, on that transaction's ledger."""
    lat = summary.latency
    if not lat:
        return None
    base = sum(
        count * confirmation[ledger]
        for ledger, count in summary.transactions_per_swap_by_ledger.items()
        if ledger in confirmation
    )
    if base <= 0:
        return None
    ratio = lat.mean / base
    return Overhead(latency_seconds=lat.mean, confirmations_seconds=base, ratio=ratio, overhead=ratio - 1)


def throughput_ratio(summary: Summary, raw_tps: Mapping[str, float]) -> Throughput | None:
    """Swap throughput over the bound the slower ledger sets: its raw transfer
    throughput divided by the transactions one swap sends on it."""
    tps = throughput(summary)
    bounds = {
        ledger: raw_tps[ledger] / count
        for ledger, count in summary.transactions_per_swap_by_ledger.items()
        if count > 0 and raw_tps.get(ledger)
    }
    if tps is None or not bounds:
        return None
    slower = min(bounds, key=lambda ledger: bounds[ledger])
    return Throughput(
        swaps_per_second=tps, bound=bounds[slower], limited_by=slower, bounds=bounds, ratio=tps / bounds[slower]
    )


def rss_trend(
    samples: Sequence[tuple[int, int]],
    *,
    segments: Sequence[int] = (),
    tolerance: float = 0.05,
    floor_kib: int = 8192,
) -> RssTrend | None:
    """(finished swaps, RSS KiB) samples -> least-squares slope and whether RSS stays flat.

    Flat when the fitted growth over the second half of the run (after warm-up) is at
    most ``tolerance`` of the RSS there, or ``floor_kib``, whichever is larger.  With
    ``segments`` (the finished count at which each pair's batch ended) each pair is judged on
    its own and the one that grew most is reported: a run of several pairs grows in a step
    as each pair starts (its ledgers' clients, contracts, connections), not with its swaps."""
    if len(samples) < 2:
        return None
    parts, start = [], 0
    for end in segments:
        part = [s for s in samples if start < s[0] <= end]
        if len(part) >= 2:
            parts.append(part)
        start = end
    trends = [_trend(part, tolerance, floor_kib) for part in parts] or [_trend(samples, tolerance, floor_kib)]
    worst = max(trends, key=lambda t: t.growth_kib - t.allowed_kib)
    return worst.model_copy(
        update={"first_kib": samples[0][1], "last_kib": samples[-1][1], "max_kib": max(y for _, y in samples)}
    )


def rss_steps(samples: Sequence[tuple[int, int]], segments: Sequence[int]) -> int | None:
    """RSS added between pairs (KiB): each pair's first sample over the previous pair's last,
    summed; None for a run of one pair (nothing between)."""
    if len(segments) < 2 or not samples:
        return None
    by_x = dict(samples)
    added = 0
    for end in segments[:-1]:
        before, after = by_x.get(end), by_x.get(end + 1)
        if before is not None and after is not None:
            added += max(0, after - before)
    return added


def _trend(samples: Sequence[tuple[int, int]], tolerance: float, floor_kib: int) -> RssTrend:
    half = samples[len(samples) // 2 :] if len(samples) >= 4 else list(samples)
    xs = [float(x) for x, _ in half]
    ys = [float(y) for _, y in half]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
    growth = slope * (xs[-1] - xs[0])
    allowed = max(tolerance * my, floor_kib)
    return RssTrend(
        slope_kib_per_swap=slope,
        growth_kib=growth,
        allowed_kib=allowed,
        flat=growth <= allowed,
        first_kib=samples[0][1],
        last_kib=samples[-1][1],
        max_kib=max(y for _, y in samples),
    )
