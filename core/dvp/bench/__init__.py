"""`dvp bench`: DvP latency, throughput, fees, liquidity and memory per platform and
ledger pair, from the journal; rendered as tables, JSON, PNG and HTML."""

from .metrics import LedgerInfo, summarize, swap_metrics
from .runner import BenchConfig, run_bench

__all__ = ["BenchConfig", "LedgerInfo", "run_bench", "summarize", "swap_metrics"]
