"""The figures of a bench run, typed: the one schema of ``results.json`` (docs/bench-results.md).

`dvp bench` builds its figures as these models and writes their JSON form; `dvp report`
validates a saved ``results.json`` against :class:`BenchResults` before it renders anything,
so a file of another shape, or a field missing or mistyped, is refused in one line naming the
field (exit 2), never a traceback.  A field beyond these is kept and ignored (a newer dvp may
add figures); every field named here is required unless it has a default, and ``null`` where
its type says ``| None``.  Fields are declared in the order ``results.json`` has always
written them.

Seconds are wall-clock seconds, amounts and fees are base units (wei, sat, cents), and the
definitions of the figures are in :mod:`dvp.bench.metrics`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from .. import errors
from ..scenario import first_error, load_json

SCHEMA = "dvp-bench/1"


class Figures(BaseModel):
    """A group of figures: typed on write, validated on read (strict: no text read as a number)."""

    model_config = ConfigDict(extra="allow", strict=True)

    def dump(self) -> dict[str, Any]:
        """The JSON form ``results.json`` holds: every field given, ``null`` kept (a figure not
        measured); a field left at its default is left out, as older runs wrote it."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Stats(Figures):
    """Aggregates of one figure over the swaps (:func:`dvp.bench.metrics.stats`)."""

    n: int
    mean: float
    p50: float
    p95: float
    min: float
    max: float


# -- one swap ----------------------------------------------------------------------------------------


class LegFigures(Figures):
    ledger: str
    asset: str
    amount: int


class StepFigures(Figures):
    """One step of a swap, from its journal rows; ``phase`` is its generic name (lock,
    counter-lock, claim, second claim ...), ``start``/``end`` are seconds from the swap's start.
    ``reverted``: the rule a transaction of the step broke, when the step failed on the ledger
    (no result; it ends at that transaction's final row, whose fee it counts)."""

    step: str
    phase: str
    ledger: str | None
    party: str
    start: float
    end: float
    seconds: float
    gap_before: float
    submit_seconds: float | None
    finality_seconds: float | None
    tx_id: str | None
    transactions: int
    height: int | None
    fee: int | None
    fee_unit: str | None
    reverted: str | None = None


class Fee(Figures):
    fee: int
    unit: str | None


class PartyCounts(Figures):
    steps: int
    transactions: int
    messages: int


class LockedLeg(Figures):
    """Liquidity locked on one leg: lock final to claim or refund final, valued at the trade's price."""

    ledger: str
    asset: str
    amount: int
    seconds: float
    amount_seconds: float
    value: int | None = None  # the leg valued at the trade's price (the cash amount); absent before 2026-12
    value_asset: str | None = None
    value_seconds: float | None = None
    ended_by: str


class PrincipalRisk(Figures):
    holder_leg: str
    ledger: str
    window_seconds: float | None
    second_claim_seconds: float | None
    margin_seconds: float | None
    used_fraction: float | None
    claimed_in_time: bool


class Refund(Figures):
    legs: dict[str, float]
    unwind_seconds: float


class FreeOption(Figures):
    party: str
    seconds: float
    exercised: bool


class SwapFigures(Figures):
    """Every figure of one swap (:func:`dvp.bench.metrics.swap_metrics`)."""

    swap_id: str
    kind: str
    outcome: str | None
    security: LegFigures
    cash: LegFigures
    started: float
    finished: float
    total_seconds: float
    steps_seconds: float
    orchestration_seconds: float
    finality_seconds: float
    steps: list[StepFigures]
    transactions: int
    transactions_by_ledger: dict[str, int]
    fees: dict[str, Fee]
    parties: dict[str, PartyCounts]
    liquidity: dict[str, LockedLeg]
    principal_risk: PrincipalRisk | None
    refund: Refund | None
    free_option: FreeOption | None
    error: str | None = None  # what went wrong while the bench drove it (then resumed), if anything
    recovered: bool = False  # it timed out or failed and was resumed


class NotStarted(Figures):
    """A swap the bench tried that left no journal record."""

    swap_id: str
    outcome: str  # "not started"
    error: str | None


# -- one pair's batch ----------------------------------------------------------------------------------


class PhaseSummary(Figures):
    seconds: Stats | None
    finality_seconds: Stats | None
    submit_seconds: Stats | None
    ledger: str | None


class FeePerSwap(Figures):
    fee_per_swap: float
    unit: str | None


class LockedSummary(Figures):
    ledger: str
    asset: str
    amount_seconds: Stats | None
    value_asset: str | None
    value_seconds: Stats | None
    seconds: Stats | None


class RiskSummary(Figures):
    window_seconds: Stats | None
    second_claim_seconds: Stats | None
    margin_seconds: Stats | None


class OptionSummary(Figures):
    seconds: Stats | None
    exercised: int


class RefundSummary(Figures):
    unwind_seconds: Stats | None
    legs: dict[str, Stats | None]


class Summary(Figures):
    """Per-pair aggregates of the per-swap figures (:func:`dvp.bench.metrics.summarize`)."""

    swaps: int
    outcomes: dict[str, int]
    latency: Stats | None
    orchestration_seconds: Stats | None
    finality_seconds: Stats | None
    phases: dict[str, PhaseSummary]
    transactions_per_swap: float
    transactions_per_swap_by_ledger: dict[str, float]
    fees: dict[str, FeePerSwap]
    parties: dict[str, dict[str, float]]
    liquidity: dict[str, LockedSummary]
    principal_risk: RiskSummary | None
    free_option: OptionSummary | None
    refund: RefundSummary | None
    elapsed_seconds: float


class Throughput(Figures):
    """Swaps/s against the bound the slower ledger's raw throughput sets (or, for
    ``capacity_throughput``, its chain capacity)."""

    swaps_per_second: float
    bound: float
    limited_by: str
    bounds: dict[str, float]
    ratio: float


class Overhead(Figures):
    """Mean latency against the sum of the swap's baseline confirmations."""

    latency_seconds: float
    confirmations_seconds: float
    ratio: float
    overhead: float


# -- the two parties' agents (dvp bench --agents) --------------------------------------------------------


class AgentLocked(Figures):
    """One leg a party locked: lock final to its claim (in the counterparty's journal) or refund."""

    ledger: str
    amount: int
    seconds: float
    amount_seconds: float
    ended_by: str


class MessageCount(Figures):
    sent: int
    received: int


class AgentParty(Figures):
    """One party's figures of one swap between agents, from its own journal
    (:func:`dvp.bench.parties.party_swap`)."""

    outcome: str | None
    latency_seconds: float | None
    steps: int
    transactions: int
    fees: dict[str, Fee]
    locked: dict[str, AgentLocked]
    locked_seconds: float | None
    messages_sent: int
    messages_received: int
    messages_refused: int
    messages_by_kind: dict[str, MessageCount]


class AgentSwap(Figures):
    """Both parties' figures of one swap (:func:`dvp.bench.parties.agent_swap`)."""

    swap_id: str
    proposed: float
    last_step_seconds: float | None
    parties: dict[str, AgentParty]
    error: str | None = None


class PartyFees(Figures):
    fee: int
    unit: str | None
    fee_per_swap: float


class PartySummary(Figures):
    """One party over a pair's swaps between agents (:func:`dvp.bench.parties.summarize_parties`)."""

    swaps: int
    outcomes: dict[str, int]
    latency: Stats | None
    steps_per_swap: float
    transactions_per_swap: float
    fees: dict[str, PartyFees]
    locked_seconds: Stats | None
    messages_sent: int
    messages_received: int
    messages_refused: int
    messages_per_swap: float


class ChannelCheck(Figures):
    """The journals' message totals against the channel's counters (``matches`` None: not checked)."""

    checked: bool
    matches: bool | None
    mismatches: list[str]


class PairAgents(Figures):
    """A pair's swaps again between the seller bank's agent and its buyer banks' (figures per party)."""

    channel: str | None
    buyers: list[str] | None = None  # the buyer banks the swaps went to (absent in runs before three agents)
    last_step: Stats | None
    summary: dict[str, PartySummary]
    channel_counts: dict[str, dict[str, int]] | None
    channel_check: ChannelCheck
    stuck: list[str]
    refunds: str
    swaps: list[AgentSwap]
    batch_seconds: float
    swaps_per_second: float


def _swap_tag(value: Any) -> str:
    """A swap with steps has its figures; one without left no journal record (the runner's test)."""
    if isinstance(value, BaseModel):
        return type(value).__name__
    return "SwapFigures" if isinstance(value, dict) and "steps" in value else "NotStarted"


AnySwap = Annotated[
    Annotated[SwapFigures, Tag("SwapFigures")] | Annotated[NotStarted, Tag("NotStarted")],
    Discriminator(_swap_tag),
]
TAGS = ("SwapFigures", "NotStarted")


class JournalWrites(Figures):
    """The bench journal's writes and commits over a pair's batch (its group commit)."""

    writes: int
    commits: int
    writes_per_swap: float | None
    commits_per_swap: float | None


class PairResult(Figures):
    """One ledger pair's batch: its swaps, their summary, and the refund swaps."""

    id: str
    kind: str  # atomic (one ledger) | htlc (two)
    security: str
    cash: str
    platforms: list[str]
    concurrency: int
    batch_seconds: float
    journal: JournalWrites | None = None  # absent before the group commit (2026-12)
    summary: Summary
    throughput: Throughput | None
    # the same swaps against the chains' capacity; None unless every ledger of the pair has one
    capacity_throughput: Throughput | None = None
    overhead: Overhead | None
    refund_summary: Summary | None
    stuck: list[str]
    swaps: list[AnySwap]
    refunds: list[AnySwap]
    agents: PairAgents | None = None


# -- the run -----------------------------------------------------------------------------------------------


class LedgerFigures(Figures):
    """What the figures know of a ledger (:class:`dvp.bench.metrics.LedgerInfo`) and its DvP."""

    name: str
    kind: str
    fee_unit: str
    clock: str
    block_interval: float
    fee_display_unit: str | None
    fee_display_scale: int
    confirmations: int
    single_ledger_dvp: str


class AssetFigures(Figures):
    kind: str
    decimals: int


class RawThroughput(Figures):
    """A ledger's raw transfers, K in flight; a platform's own baseline adds its fields."""

    transactions: int
    in_flight: int
    seconds: float
    tps: float


class Capacity(RawThroughput):
    """The chain's capacity: transfers prepared before the clock starts, sent with no
    per-call client work (EVM, btcd, Elements: raw, in JSON-RPC batches; Fabric: endorsed and
    signed envelopes on one orderer Broadcast stream), K in flight, mined (Fabric: committed
    VALID) per block."""

    per_block_max: int
    method: str
    blocks: int | None = None  # blocks that held ours (Fabric)


class Baseline(Figures):
    asset: str
    confirmation_samples: list[float]
    confirmation: Stats
    throughput: RawThroughput
    capacity: Capacity | None = None  # None: the platform has no capacity measure


class RssTrend(Figures):
    slope_kib_per_swap: float
    growth_kib: float
    allowed_kib: float
    flat: bool
    first_kib: int
    last_kib: int
    max_kib: int


class Memory(Figures):
    peak_rss_kib: int
    samples: list[tuple[int, int]]  # (finished swaps, RSS KiB)
    swaps: int
    trend: RssTrend | None


class AgentsRun(Figures):
    channel: str | None
    note: str | None = None
    folder: str | None = None
    journals: dict[str, str] | None = None
    refunds: str | None = None
    parties: list[str] | None = None  # the agents, the seller bank first (absent in runs before three agents)
    limits: dict[str, int] | None = None  # each agent's limits per peer in the run (dvp.party.limits.Limits)


class BenchResults(Figures):
    """A whole ``results.json``.  ``platforms`` and ``targets`` are derived from the rest
    (:func:`dvp.bench.runner.platforms_table`, :func:`dvp.bench.runner.targets`): `dvp report`
    recomputes them, so a file without them still renders."""

    schema_: str = Field(alias="schema", pattern=f"^{SCHEMA}$")
    machine: dict[str, Any]
    config: dict[str, Any]
    started: float
    finished: float
    wall_seconds: float
    ledgers: dict[str, LedgerFigures]
    assets: dict[str, AssetFigures]
    baselines: dict[str, Baseline]
    pairs: list[PairResult]
    memory: Memory
    not_measured: dict[str, str]
    agents: AgentsRun | None
    platforms: list[dict[str, Any]] | None = None
    targets: list[dict[str, Any]] | None = None


def load_results(path: Path) -> dict[str, Any]:
    """A saved ``results.json``, validated against :class:`BenchResults`: its JSON as written
    (what the renderer reads), or :class:`dvp.errors.ConfigError` naming the first field that
    does not fit, as ``results.json: pairs.0.summary.latency.mean: ...``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(f"results.json: cannot read {path}: {exc}") from None
    data = load_json(text, f"results.json: {path}")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = repr(data.get("schema"))[:60] if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise errors.ConfigError(f"results.json: schema: expected {SCHEMA!r}, got {got}: {path} is not a dvp bench run")
    try:
        BenchResults.model_validate_json(text)  # JSON mode: arrays read as the tuples they were written from
    except ValidationError as exc:
        raise errors.ConfigError(f"{first_error(exc, 'results.json: ', TAGS)} ({path})") from None
    return data


if __name__ == "__main__":  # docs/bench-results.schema.json: `python -m dvp.bench.figures`
    print(json.dumps(BenchResults.model_json_schema(by_alias=True), indent=1))
