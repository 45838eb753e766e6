"""Rich tables for the terminal."""

from __future__ import annotations

import json
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .orchestrator import SwapResult
from .report import Balances, fee_lines, swap_report, timeline

_OUTCOME_STYLE = {"settled": "green", "refunded": "yellow", "aborted": "yellow", "principal_loss": "red"}


def status_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="local testnets")
    for col in ("ledger", "kind", "endpoint", "pids", "alive"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["ledger"],
            r["kind"],
            r["endpoint"],
            " ".join(map(str, r["pids"])),
            "[green]yes[/]" if r["alive"] else "[red]no[/]",
        )
    return table


def steps_table(result: SwapResult, title: str | None = None) -> Table:
    outcome = result.outcome.value if result.outcome else "unfinished"
    style = _OUTCOME_STYLE.get(outcome, "white")
    heading = f"{result.kind} swap {result.swap_id}: [{style}]{outcome}[/]"
    caption = "\n".join([result.detail, *fee_lines(result.steps)])
    table = Table(title=f"{title}: {heading}" if title else heading, caption=caption)
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("step", "left"),
        ("ledger", "left"),
        ("seconds", "right"),
        ("block", "right"),
        ("tx", "left"),
    )
    for col, just in columns:
        table.add_column(col, justify=just)
    rows = timeline(result.steps)
    for r in rows:
        step = f"{r.step} [red](reverted: {escape(r.reverted)})[/]" if r.reverted else r.step
        table.add_row(step, r.ledger or "", f"{r.seconds:.2f}", str(r.height or ""), (r.tx_id or "")[:18])
    if rows:
        table.add_row("[bold]total[/]", "", f"[bold]{rows[-1].finished - result.steps[0].wall:.2f}[/]", "", "")
    return table


def print_result(console: Console, result: SwapResult, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(swap_report(result)))
    else:
        console.print(steps_table(result))


def balances_table(balances: Balances, before: Balances | None = None, title: str = "balances") -> Table:
    table = Table(title=title)
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("ledger", "left"),
        ("asset", "left"),
        ("party", "left"),
        ("balance", "right"),
    )
    for col, just in columns:
        table.add_column(col, justify=just)
    if before is not None:
        table.add_column("change", justify="right")
    for (ledger, asset, party), value in sorted(balances.items()):
        row = [ledger, asset, party, f"{value:,}"]
        if before is not None:
            delta = value - before.get((ledger, asset, party), 0)
            row.append(f"[green]+{delta:,}[/]" if delta > 0 else f"[red]{delta:,}[/]" if delta < 0 else "0")
        table.add_row(*row)
    return table
