"""`results.json` has one schema (dvp.bench.figures, docs/bench-results.md): `dvp report` reads
a run saved by an earlier dvp, and refuses a file of another shape, or with a field missing or
mistyped, in one line naming the field (exit 2), never a traceback."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from dvp.bench.figures import BenchResults, load_results
from tests.unit.test_bad_input import one_line, run

# Written by `dvp bench` on main of 2026-12-06 (before the figures were typed), on this machine:
# --swaps 1 --refunds 1 --pairs evm-a,evm-a/evm-b,evm-a/btc --agents; figures as written, JSON compacted.
SAVED = Path(__file__).parent / "data" / "bench-results-2026-12-06.json"
SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "bench-results.schema.json"


def saved() -> dict[str, Any]:
    return json.loads(SAVED.read_text())


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_a_run_saved_before_the_figures_were_typed_still_loads_and_renders(tmp_path):
    data = load_results(SAVED)
    run_ = BenchResults.model_validate_json(SAVED.read_text())
    kinds = {p.kind for p in run_.pairs}
    assert kinds == {"atomic", "htlc"} and any(p.refunds for p in run_.pairs) and any(p.agents for p in run_.pairs)
    assert data == saved()  # what the renderer reads is the file as written
    result = run(["report", str(SAVED), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.html").exists() and (tmp_path / "bench.png").exists()


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is KeyError:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value


@pytest.mark.parametrize(
    ("path", "value", "said"),
    [
        ("pairs.0.summary.latency.mean", "fast", "pairs.0.summary.latency.mean: Input should be a valid number"),
        ("pairs.1.swaps.0.total_seconds", KeyError, "pairs.1.swaps.0.total_seconds: Field required"),
        ("pairs.1.swaps.0.steps.0.transactions", 1.5, "pairs.1.swaps.0.steps.0.transactions: "),
        ("pairs.1.swaps.0.steps.0.transactions", True, "pairs.1.swaps.0.steps.0.transactions: "),
        ("baselines.evm-a.throughput.tps", None, "baselines.evm-a.throughput.tps: "),
        ("memory.samples", [[1]], "memory.samples.0.1: Field required"),
        ("ledgers.btc", "btc", "ledgers.btc: "),
        ("pairs", {}, "pairs: "),
        ("pairs.0.summary", KeyError, "pairs.0.summary: Field required"),
    ],
)
def test_a_field_missing_or_mistyped_is_named_in_one_line(tmp_path, path, value, said):
    data = saved()
    _set(data, path, value)
    line = one_line(run(["report", str(write(tmp_path, data))]), 2, f"error: results.json: {said}")
    assert str(tmp_path) in line
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "results.json: schema: expected 'dvp-bench/1', got a JSON list"),
        ('{"schema": "dvp-bench/2"}', "results.json: schema: expected 'dvp-bench/1', got 'dvp-bench/2'"),
        ('{"pairs": []}', "results.json: schema: expected 'dvp-bench/1', got None"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_a_file_of_another_shape_is_refused_in_one_line(tmp_path, content, said):
    one_line(run(["report", str(write(tmp_path, content))]), 2, said)


def test_a_second_run_of_another_shape_is_refused_before_anything_is_written(tmp_path):
    bad = copy.deepcopy(saved())
    del bad["memory"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(bad))
    one_line(run(["report", str(SAVED), str(other), "--out", str(tmp_path)]), 2, "results.json: memory: Field required")
    assert not list(tmp_path.glob("compare.*"))


def test_figures_beyond_the_schema_are_kept_for_a_newer_dvp(tmp_path):
    data = saved()
    data["pairs"][0]["chain_capacity"] = {"tps": 300.0}
    assert load_results(write(tmp_path, data))["pairs"][0]["chain_capacity"] == {"tps": 300.0}


def test_the_written_schema_is_the_models_schema():
    """docs/bench-results.schema.json is generated from dvp.bench.figures: regenerate it with
    `python -m dvp.bench.figures > docs/bench-results.schema.json` when a figure changes."""
    assert json.loads(SCHEMA_FILE.read_text()) == BenchResults.model_json_schema(by_alias=True)


def test_deep_nesting_is_refused_even_where_a_library_raised_the_recursion_limit(tmp_path):
    """py_ecc (loaded with web3) sets the limit to 100000; json's C scanner would then overflow
    the C stack (a segfault) on deep input instead of raising RecursionError."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        one_line(run(["report", str(write(tmp_path, "[" * 200_000))]), 2, "results.json: ")
        assert sys.getrecursionlimit() == 100_000
    finally:
        sys.setrecursionlimit(old)
