"""`dvp demo`: the main job, on the default local testnets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rich.console import Console

from .adapter import Issuing
from .demo_agents import AgentRun, agents_installed, all_steps, run_two_agents
from .errors import DvpError
from .ledger_set import LedgerSet
from .models import HtlcPlan, Leg, SwapSpec, Trade
from .orchestrator import Outcome
from .report import balances_json, conservation, fees_paid, machine, swap_report
from .runtime import select
from .runtime.base import Runtime
from .settings import Settings
from .topology import default, optional_platforms_note
from .views import balances_table, steps_table

PARTIES = ["seller", "buyer"]


def _single_ledger(ledger: str) -> SwapSpec:
    return SwapSpec(
        trade=Trade(
            security=Leg(ledger=ledger, asset="BOND", amount=100),
            cash=Leg(ledger=ledger, asset="EUR", amount=1_000_000),
        )
    )


def _cross_ledger(security: str, cash: str, cash_asset: str = "EUR", cash_amount: int = 1_000_000) -> SwapSpec:
    return SwapSpec(
        trade=Trade(
            security=Leg(ledger=security, asset="BOND", amount=100),
            cash=Leg(ledger=cash, asset=cash_asset, amount=cash_amount),
        ),
        plan=HtlcPlan(holder_timeout=300, counter_timeout=150, reaction_window=30),
    )


def demo_swaps(ledgers: set[str] | None = None) -> list[tuple[str, SwapSpec]]:
    """The demo's swaps; the Elements and Fabric ones when the topology has those ledgers."""
    swaps = [
        ("single-ledger DvP on evm-a", _single_ledger("evm-a")),
        ("cross-ledger HTLC DvP: BOND on evm-a against EUR on evm-b", _cross_ledger("evm-a", "evm-b")),
        (
            "cross-ledger HTLC DvP: BOND on evm-a against BTC on btc (UTXO, P2WSH script)",
            _cross_ledger("evm-a", "btc", "BTC", 2_500_000),
        ),
    ]
    if ledgers and "elements" in ledgers:
        swaps += [
            (
                "single-ledger DvP on elements: issued BOND against issued EUR in one transaction",
                _single_ledger("elements"),
            ),
            (
                "cross-ledger HTLC DvP: BOND on elements (P2WSH script) against EUR on evm-b",
                _cross_ledger("elements", "evm-b"),
            ),
        ]
    if ledgers and {"fabric-a", "fabric-b"} <= ledgers:
        swaps += [
            (
                "single-ledger DvP on fabric-a: the Fabric chaincode moves both legs in one transaction",
                _single_ledger("fabric-a"),
            ),
            (
                "cross-ledger HTLC DvP: BOND on fabric-a (Fabric chaincode) against EUR on evm-b",
                _cross_ledger("fabric-a", "evm-b"),
            ),
        ]
    return swaps


TWO_AGENTS_TITLE = "two banks, two processes: the seller's and the buyer's agents, each with only its own keys"


def _two_agents(settings: Settings, out: Console, console: Console, ledgers: set[str]) -> list[AgentRun]:
    """The cross-ledger EVM swap again, run by two `dvp agent` processes; both parties' views."""
    if not agents_installed():
        out.print("[yellow]two-agent run skipped: `dvp agent` is not installed (pip install 'dvp[agent]')[/]")
        return []
    with console.status(TWO_AGENTS_TITLE) as status:
        runs = run_two_agents(
            settings, _cross_ledger("evm-a", "evm-b"), lambda m: status.update(f"{TWO_AGENTS_TITLE}: {m}")
        )
    out.print(f"[bold]{TWO_AGENTS_TITLE}[/]")
    for run in runs:
        out.print(steps_table(run.result, title=f"{run.party}'s agent"))
        out.print(f"[dim]{run.party}: {run.sent} messages sent, {run.received} received over the mutual-TLS channel[/]")
    return runs


async def _issue(net: LedgerSet) -> None:
    sends = []
    for asset in net.assets:
        adapter = net.ledgers[asset.ledger]
        party, amount = ("seller", 1_000) if asset.kind.value == "security" else ("buyer", 10_000_000)
        sends.append((adapter, await adapter.require(Issuing).issue(asset.symbol, party, amount)))
    for adapter, sub in sends:
        await adapter.wait_final(sub.tx_id)


def run_demo(
    settings: Settings, out: Console, console: Console, *, keep: bool, report: Path | None, block_time: float
) -> Path:
    runtime = select(settings.runtime, settings.run_dir)
    started = runtime.state() is None
    if started:
        with console.status(
            "starting two anvil chains, a btcd regtest chain (and elementsd, Fabric if installed)"
        ) as status:
            runtime.up(default(block_time, containers=runtime.name == "docker"), progress=lambda m: status.update(m))
    try:
        return asyncio.run(_demo(settings, runtime, out, console, report))
    finally:
        if started and not keep:
            runtime.down()
            console.print("[dim]testnets stopped (use --keep to leave them running)[/]")


async def _demo(settings: Settings, runtime: Runtime, out: Console, console: Console, report: Path | None) -> Path:
    net = LedgerSet.from_run_dir(settings.run_dir)
    results = []
    async with net:
        with console.status("issuing test assets"):
            await _issue(net)
        before = await net.balances(PARTIES)
        for note in optional_platforms_note(set(net.ledgers)):
            out.print(f"[yellow]{note}[/]")
        orch = net.orchestrator(settings.journal_path)
        for title, spec in demo_swaps(set(net.ledgers)):
            with console.status(title) as status:
                orch.progress = lambda swap_id, message: status.update(f"{title}: {message}")  # noqa: B023 - this swap's run only
                result = await orch.run(spec)
            out.print(steps_table(result))
            results.append((title, result))
        agent_runs = _two_agents(settings, out, console, set(net.ledgers))
        after = await net.balances(PARTIES)
    out.print(balances_table(after, before, title="final balances"))
    steps = [s for _, r in results for s in r.steps] + all_steps(agent_runs)
    drift = {f"{l}/{a}": d for (l, a), d in conservation(before, after, fees_paid(steps)).items() if d}
    tracked = {(l, a) for l, a, _ in before}  # a coin that only pays fees (Elements' LBTC) is not traded
    traded_fees = {k: f for k, f in fees_paid(steps).items() if k[:2] in tracked}
    paid = {f"{l}/{a}/{p}": f for (l, a, p), f in traded_fees.items()}
    if paid:
        out.print(f"fees paid in traded coins (counted in the check): {paid}")
    out.print("[green]balances conserved on every ledger[/]" if not drift else f"[red]balances changed: {drift}[/]")
    unsettled = [t for t, r in results if r.outcome is not Outcome.SETTLED]
    unsettled += [f"{a.party}'s agent" for a in agent_runs if a.result.outcome is not Outcome.SETTLED]
    path = report or settings.reports_dir / "demo.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "machine": machine(),
                "ledgers": runtime.status(),
                "swaps": [{"title": t, **swap_report(r)} for t, r in results],
                "two_agents": [
                    {
                        "party": a.party,
                        "messages_sent": a.sent,
                        "messages_received": a.received,
                        **swap_report(a.result),
                    }
                    for a in agent_runs
                ],
                "balances_before": balances_json(before),
                "balances_after": balances_json(after),
                "fees_in_traded_assets": [
                    {"ledger": l, "asset": a, "party": p, "fee": f} for (l, a, p), f in traded_fees.items()
                ],
                "conserved": not drift,
            },
            indent=1,
        )
    )
    if drift or unsettled:
        raise DvpError(f"demo: not every swap settled ({', '.join(unsettled) or 'balances not conserved'})")
    return path
