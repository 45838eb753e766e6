"""`dvp report --by-k`: one report over saved runs of different K (swaps in flight), issue 21's
"from one run per K": every run's targets in one markdown table (``targets.md``) and, per pair
present in two runs or more, swaps/s and latency against K (``scaling.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from .. import errors
from .render import _plt, _table, target_met, target_value
from .runner import TARGETS, run_k

MARKDOWN_COLUMNS = ("K", "pair", "target", "figure", "met", "why")


def enough_runs(n: int) -> None:
    """At least two runs, else ConfigError (before any file is read)."""
    if n < 2:
        raise errors.ConfigError(f"results: --by-k needs at least 2 runs (one per K), got {n}")


def check_runs(runs: list[tuple[Path, dict[str, Any]]]) -> None:
    """At least two runs, and no pair at one K in two of them; else ConfigError naming the file."""
    enough_runs(len(runs))
    seen: dict[tuple[int, str], Path] = {}
    for path, run in runs:
        for p in run["pairs"]:
            key = (p["concurrency"], p["id"])
            if key in seen:
                raise errors.ConfigError(
                    f"results: {path}: pair {p['id']} at K={key[0]} is also in {seen[key]} (one run per K and pair)"
                )
            seen[key] = path


def _run_label(path: Path) -> str:
    """A run's short name: its folder's for a results.json (k100/results.json -> k100), else the file's."""
    return path.parent.name if path.name == "results.json" and path.parent.name else path.stem


def target_table(runs: list[tuple[Path, dict[str, Any]]]) -> list[dict[str, str]]:
    """Every run's targets, by K then in each run's order; a run-wide row (memory) names its run
    where two runs have the same K."""
    ks = [run_k(r) for _, r in runs]
    order = sorted(range(len(runs)), key=lambda i: (ks[i] is None, ks[i] or 0, i))
    rows = []
    for i in order:
        path, run = runs[i]
        shared = sum(1 for k in ks if k == ks[i]) > 1
        for t in run["targets"]:
            pair = t["pair"] or (f"all ({_run_label(path)})" if shared else "all")
            rows.append(
                {
                    "K": "-" if t["k"] is None else str(t["k"]),
                    "pair": pair,
                    "target": t["target"],
                    "figure": target_value(t),
                    "met": target_met(t, ("met", "missed", "info")),
                    "why": t["why"] or "",
                }
            )
    return rows


def markdown(rows: list[dict[str, str]]) -> str:
    """One markdown table (pipes in a cell escaped, one line per row)."""

    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")

    lines = ["| " + " | ".join(MARKDOWN_COLUMNS) + " |", "|" + "---|" * len(MARKDOWN_COLUMNS)]
    lines += ["| " + " | ".join(cell(r[c]) for c in MARKDOWN_COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def series(runs: list[tuple[Path, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Per pair in two runs or more, its points by K: swaps/s, the same-client and chain bounds,
    and mean latency over the swap's sequential confirmations (None where not measured)."""
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for _, run in runs:
        for p in run["pairs"]:
            t, c, o = p["throughput"] or {}, p.get("capacity_throughput") or {}, p["overhead"] or {}
            by_pair.setdefault(p["id"], []).append(
                {
                    "k": p["concurrency"],
                    "swaps_per_second": t.get("swaps_per_second") or c.get("swaps_per_second"),
                    "bound": t.get("bound"),
                    "chain_bound": c.get("bound"),
                    "latency_ratio": o.get("ratio"),
                }
            )
    return {pid: sorted(points, key=lambda x: x["k"]) for pid, points in by_pair.items() if len(points) >= 2}


def _line(ax: Any, points: list[dict[str, Any]], key: str, **style: Any) -> None:
    xs = [x["k"] for x in points if x[key] is not None]
    ys = [x[key] for x in points if x[key] is not None]
    if xs:
        ax.plot(xs, ys, **style)


def scaling_chart(runs: list[tuple[Path, dict[str, Any]]], path: Path) -> Path:
    """scaling.png: a row per pair in two runs or more; left, swaps/s against K with the
    same-client and chain-capacity bounds; right, mean latency over sequential confirmations
    against K with the 1.5 x target line.  Log axes for K (and swaps/s)."""
    plt = _plt()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    pairs = series(runs)
    fig, axes = plt.subplots(max(1, len(pairs)), 2, figsize=(11, 1 + 2.6 * max(1, len(pairs))), squeeze=False)
    if not pairs:
        for ax in axes[0]:
            ax.axis("off")
        axes[0][0].text(0.5, 0.5, "no pair is in two runs or more", ha="center", va="center")
    limit = TARGETS["latency_max"]
    for (pid, points), (left, right) in zip(pairs.items(), axes):
        _line(left, points, "swaps_per_second", marker="o", color="tab:blue", label="swaps/s")
        _line(left, points, "bound", marker=".", ls="--", color="tab:orange", label="same-client bound")
        _line(left, points, "chain_bound", marker=".", ls=":", color="tab:green", label="chain-capacity bound")
        left.set_xscale("log")
        left.set_yscale("log")
        left.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))  # labels 1, 2, 3, 5, 10, 20 ...
        left.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        left.yaxis.set_minor_formatter(NullFormatter())
        left.tick_params(axis="y", which="both", labelsize=7)
        left.set_xlabel("K (swaps in flight)")
        left.set_ylabel("swaps/s")
        left.set_title(f"{pid}: swaps/s against K", fontsize=9)
        left.legend(fontsize=6)
        _line(right, points, "latency_ratio", marker="o", color="tab:blue", label="mean latency / confirmations")
        right.axhline(
            limit,
            color="tab:red",
            ls="--",
            lw=1,
            label=f"{limit} x (the target at K={TARGETS['at_scale']:.0f} to {TARGETS['at_large'] - 1:.0f})",
        )
        right.set_xscale("log")
        ratios = [x["latency_ratio"] for x in points if x["latency_ratio"] is not None]
        right.set_ylim(0, 1.15 * max([limit, *ratios]))
        right.set_xlabel("K (swaps in flight)")
        right.set_ylabel("x sequential confirmations")
        right.set_title(f"{pid}: mean latency over the swap's sequential confirmations", fontsize=9)
        right.legend(fontsize=6)
        ks = sorted({x["k"] for x in points})
        for ax in (left, right):
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_by_k(runs: list[tuple[Path, dict[str, Any]]], out: Path) -> tuple[Table, dict[str, Path]]:
    """targets.md and scaling.png in ``out``; the table to print."""
    rows = target_table(runs)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "targets.md"
    md.write_text(markdown(rows))
    png = scaling_chart(runs, out / "scaling.png")
    ks = sorted({r["K"] for r in rows}, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0))
    return _table(f"targets by K ({', '.join(ks)})", rows), {"targets": md, "scaling": png}
