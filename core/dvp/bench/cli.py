"""The click commands `dvp bench` and `dvp report`; :mod:`dvp.cli` adds them to its group."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import errors
from ..cli_common import (
    FiniteSeconds,
    block_time_option,
    concurrency_option,
    console,
    fail_cleanly,
    out,
    out_dir_option,
    shown_option,
)
from ..lease import is_url
from ..ledger_set import LedgerSet
from ..runtime import select
from ..settings import Settings
from ..topology import default, with_ledgers


@click.command()
@shown_option("--swaps", click.IntRange(1, 10_000), 5, "Swaps per pair.")
@concurrency_option(1, "Swaps in flight at once.")
@click.option(
    "--pairs",
    default=None,
    help="Comma-separated SECURITY_LEDGER/CASH_LEDGER (or one ledger for single-ledger DvP); default: every pair.",
)
@shown_option(
    "--refunds",
    click.IntRange(0, 100),
    2,
    "Refund swaps per cross-ledger pair (holder never claims, fast-forward).",
)
@out_dir_option("Output directory (default: reports/bench).")
@block_time_option("Block interval if bench starts the testnets itself.")
@shown_option("--swap-timeout", FiniteSeconds(1, 86_400), 900.0, "Bound on each swap, in seconds.")
@shown_option(
    "--throughput-txs",
    click.IntRange(1, 10_000),
    30,
    "Plain transfers per ledger for the raw throughput baseline (at least 3 x concurrency, that many in flight).",
)
@shown_option(
    "--baseline-samples",
    click.IntRange(1, 100),
    10,
    "Plain issues per ledger, one after another, whose median time to finality is the confirmation "
    "baseline every 'x conf' divides by (with 3, one issue sent just before a block read 0.30 s for 1 s blocks).",
)
@click.option(
    "--with",
    "extra_kinds",
    multiple=True,
    metavar="KIND",
    help="Also start a ledger of this kind (e.g. geth, a second EVM client) if bench starts the testnets itself.",
)
@click.option(
    "--agents",
    type=click.IntRange(2, 3),
    is_flag=False,
    flag_value=2,
    default=None,
    metavar="[2|3]",
    help="Also run each cross-ledger pair's swaps between agents (own keys, journals and channel), figures "
    "per party: 2 (the default), the seller's and the buyer's; 3, the seller bank's with two buyer banks "
    "at once. No refund swaps between agents.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=0,
    help="Drive the swaps with this many `dvp worker` processes sharing the journal named by --journal "
    "(a postgresql:// URL of a journal used for nothing else), the concurrency split between them; "
    "0 (default): in this process, on a fresh SQLite journal.",
)
@click.option(
    "--party-pairs",
    type=click.IntRange(1, 4),
    default=1,
    show_default=True,
    help="Spread the swaps over this many seller/buyer pairs (seller/buyer, seller-2/buyer-2, ...: the EVM "
    "testnets' extra dev accounts), so workers hold different accounts; more than 1 needs EVM ledgers only.",
)
@click.pass_obj
@fail_cleanly
def bench(
    settings: Settings,
    swaps: int,
    concurrency: int,
    pairs: str | None,
    refunds: int,
    out_dir: Path | None,
    block_time: float,
    swap_timeout: float,
    throughput_txs: int,
    baseline_samples: int,
    extra_kinds: tuple[str, ...],
    agents: int | None,
    workers: int,
    party_pairs: int,
) -> None:
    """Measure DvP per platform and ledger pair against raw ledger baselines."""
    from .figures import load_results
    from .render import missed, render_all, tables, write_json
    from .runner import BenchConfig, run_bench

    if workers and agents:
        raise errors.ConfigError("workers: --workers and --agents do not combine (the agents keep their own journals)")
    if workers and not is_url(settings.journal or ""):
        raise errors.ConfigError(
            "workers: --workers needs a PostgreSQL journal (--journal postgresql://...), which the worker processes share"
        )
    out_dir = out_dir or settings.reports_dir / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(
        swaps=swaps,
        concurrency=concurrency,
        refunds=refunds,
        swap_timeout=swap_timeout,
        pairs=[p.strip() for p in pairs.split(",") if p.strip()] if pairs else None,
        throughput_txs=throughput_txs,
        baseline_samples=baseline_samples,
        block_time=block_time,
        agents=agents or 0,
        workers=workers,
        party_pairs=party_pairs,
    )
    runtime = select(settings.runtime, settings.run_dir)
    started = runtime.state() is None
    if started:
        with console.status("starting the default testnets") as status:
            runtime.up(with_ledgers(default(block_time), extra_kinds, block_time), progress=lambda m: status.update(m))
    journal: Path | str = out_dir / "bench-journal.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{journal}{suffix}").unlink(missing_ok=True)
    worker_env = None
    if workers:
        journal = str(settings.journal)
        worker_env = {**os.environ, "DVP_RUN_DIR": str(Path(settings.run_dir).resolve()), "DVP_JOURNAL": journal}
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("planning", total=None)

            def on_event(kind: str, info: dict[str, Any]) -> None:
                if kind == "plan":
                    n = len(info["pairs"])
                    cross = sum(1 for p in info["pairs"] if "/" in p)
                    progress.update(
                        task,
                        total=n * info["swaps"] + cross * info["refunds"] + len(info["agent_pairs"]) * info["swaps"],
                        completed=0,
                    )
                    console.print(f"[dim]pairs:[/] {', '.join(info['pairs'])}")
                elif kind == "phase":
                    progress.update(task, description=info["name"])
                elif kind == "baseline":
                    console.print(f"[dim]baseline measured on[/] {info['ledger']}")
                elif kind in ("pair", "refunds", "agents"):
                    label = {"refunds": "refund swaps", "agents": "swaps between agents"}.get(kind, "swaps")
                    progress.update(task, description=f"{info['pair']}: {label}")
                elif kind == "swap":
                    progress.advance(task)
                    if info["error"]:
                        console.print(f"[yellow]{info['swap_id']}[/] {info['error']}")

            async def go() -> Any:
                async with LedgerSet.from_run_dir(settings.run_dir) as net:
                    return await run_bench(
                        net, cfg, journal, on_event, runtime.state() if agents else None, worker_env=worker_env
                    )

            run = asyncio.run(go())
    finally:
        if started:
            runtime.down()
            console.print("[dim]testnets stopped[/]")
    path = write_json(run, out_dir / "results.json")
    paths = render_all(run, out_dir)
    for table in tables(run):
        out.print(table)
    for line in missed(run):
        out.print(f"[yellow]missed[/] {line}")
    for kind, note in run.get("not_measured", {}).items():
        out.print(f"{kind}: {note}")
    if (run.get("agents") or {}).get("note"):
        out.print(f"agents: {run['agents']['note']}")
    out.print(f"results: {path}\nreport: {paths['html']}\nchart: {paths['bench']}")
    try:  # what it wrote follows the schema `dvp report` reads (docs/bench-results.md)
        load_results(path)
    except errors.ConfigError as exc:
        raise RuntimeError(f"dvp bench wrote a results.json that dvp report refuses: {exc}") from None


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@out_dir_option("Where to write HTML and PNG (default: beside the first RESULTS file).")
@click.option(
    "--by-k",
    is_flag=True,
    help="One report over runs of different K (any number, at least 2): targets.md (every run's targets, "
    "by K) and scaling.png (swaps/s and latency against K, per pair in two runs or more).",
)
@fail_cleanly
def report(results: tuple[Path, ...], out_dir: Path | None, by_k: bool) -> None:
    """Re-render a saved bench run (RESULTS.json), compare two (A.json B.json), or report runs of
    every K together (--by-k A.json B.json C.json ...)."""
    from .render import compare_table, missed, render_all, tables, write_compare

    if len(results) > 2 and not by_k:
        raise errors.ConfigError(
            f"results: give one run to render or two to compare (or --by-k for runs of several K), got {len(results)}"
        )
    from .figures import load_results
    from .runner import platforms_table, targets

    if by_k:
        from .by_k import enough_runs

        enough_runs(len(results))  # before reading anything
    runs = []
    for path in results:
        data = load_results(path)
        # Targets and the platform table are derived from the stored figures: recompute them
        data["platforms"] = platforms_table(data)
        data["targets"] = targets(data)
        runs.append(data)
    out_dir = out_dir or results[0].parent
    if by_k:
        from .by_k import check_runs, write_by_k

        paired = list(zip(results, runs))
        check_runs(paired)
        table, paths = write_by_k(paired, out_dir)
        out.print(table)
        out.print(f"targets: {paths['targets']}\nscaling: {paths['scaling']}")
    elif len(runs) == 1:
        for table in tables(runs[0]):
            out.print(table)
        for line in missed(runs[0]):
            out.print(f"[yellow]missed[/] {line}")
        paths = render_all(runs[0], out_dir)
        out.print(f"report: {paths['html']}")
    else:
        names = (str(results[0]), str(results[1]))
        out.print(compare_table(runs[0], runs[1], names))
        paths = write_compare(runs[0], runs[1], names, out_dir)
        out.print(f"comparison: {paths['html']}")
