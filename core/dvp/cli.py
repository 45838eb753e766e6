"""`dvp`: local testnets, swaps, resume and the demo.  Every command enters the async
core through ``asyncio.run``; every DvpError ends as one line and a non-zero exit."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from pydantic import TypeAdapter, ValidationError

from . import errors
from .adapter import Issuing, LedgerAdapter
from .bench.cli import bench, report
from .cli_common import (
    EXIT_INTERRUPTED,
    block_time_option,
    concurrency_option,
    console,
    error_exit,
    fail_cleanly,
    one_line,
    out,
    progress_printer,
    shown_option,
)
from .hashlock import parse_hex32
from .ledger_set import LedgerSet
from .models import Amount, Submission
from .orchestrator import Unfinished
from .runtime import DEFAULT_RUNTIME, RUNTIMES, recorded, select
from .scenario import PLAIN_DECIMAL, first_error, load_scenario, parse_leg, parse_spec
from .settings import Settings
from .topology import default, optional_platforms_note
from .views import balances_table, print_result, status_table

EXIT_NOT_SETTLED = 6  # `dvp swap`: its swap ended other than settled
# A command that drove several swaps (`dvp swap` resumes its journal's unfinished ones beside
# its own; `dvp resume`) exits with the worst of what it did, worst first: a swap left
# unfinished by an error (its code), then a swap that ended other than settled (6), then a
# swap skipped because another process drives it (7), then 0. The README's exit table says so.
EXIT_PRECEDENCE = (1, 2, 3, 4, 5, 8, 9, EXIT_NOT_SETTLED, errors.SwapBusy.exit_code, 0)


def worst_exit(codes: list[int]) -> int:
    """The exit code of a command that drove several swaps, by :data:`EXIT_PRECEDENCE`."""
    return min(codes, key=lambda code: EXIT_PRECEDENCE.index(code) if code in EXIT_PRECEDENCE else -1, default=0)


def _from_env(exc: click.ClickException) -> str:
    """Name the environment variable when a bad value came from one (``DVP_RUNTIME``)."""
    param, ctx = getattr(exc, "param", None), getattr(exc, "ctx", None)
    if param is None or ctx is None or not param.name:
        return ""
    if ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT and param.envvar:
        return f" (from ${param.envvar})"
    return ""


class PlainInt(click.ParamType):  # type: ignore[type-arg]  # generic only in the stubs
    """An amount or timeout as written: plain decimal digits (click's int takes ``1_0``, `` 10``
    and ``010`` as 10)."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        if not isinstance(value, str) or not PLAIN_DECIMAL.fullmatch(value) or len(value) > 80:
            self.fail(f"expected a plain decimal integer, got {str(value)[:40]!r}", param, ctx)
        return int(value)


PLAIN_INT = PlainInt()


class OneLineGroup(click.Group):
    """Usage errors (unknown option, bad flag value) end as one ``error:`` line and exit 2,
    like every other error, instead of click's usage block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        try:
            super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            error_exit(exc.format_message() + _from_env(exc), exc.exit_code)
        except click.Abort:
            error_exit("aborted", EXIT_INTERRUPTED)
        except errors.DvpError as exc:  # raised while parsing options (Settings)
            error_exit(str(exc), exc.exit_code)
        sys.exit(0)


class MainGroup(OneLineGroup):
    """`dvp`: its own commands, and the commands other installed packages add (entry points
    ``dvp.commands``: `dvp agent`, whose channel needs gRPC), loaded when first looked up, so
    that importing this module imports none of them (each imports this module for its helpers)."""

    _plugins_added = False

    def _add_plugin_commands(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        for point in entry_points(group="dvp.commands"):
            try:
                command = point.load()
            except ImportError:  # its extra is not installed: `dvp` works without it
                continue
            if isinstance(command, click.Command):
                self.add_command(command, point.name)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._add_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)


@click.group(cls=MainGroup)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    envvar="DVP_RUN_DIR",
    default=".dvp",
    show_default=True,
    help="Where testnet state, logs and the journal live.",
)
@click.option(
    "--journal",
    envvar="DVP_JOURNAL",
    default=None,
    help="SQLite journal file, or a postgresql:// URL (default: RUN_DIR/journal.sqlite).",
)
@click.option(
    "--runtime",
    type=click.Choice(sorted(RUNTIMES)),
    envvar="DVP_RUNTIME",
    default=DEFAULT_RUNTIME,
    show_default=True,
    help="Run the testnets as local processes or in Docker.",
)
@click.pass_context
def main(ctx: click.Context, run_dir: Path, journal: str | None, runtime: str) -> None:
    """Delivery-versus-payment across real ledgers."""
    try:
        ctx.obj = Settings(run_dir=run_dir, journal=journal, runtime=runtime)
    except ValidationError as exc:
        raise errors.ConfigError(first_error(exc, "settings: ")) from None


@main.command()
@block_time_option()
@click.pass_obj
@fail_cleanly
def up(settings: Settings, block_time: float) -> None:
    """Start the default local testnets (two anvil chains, one btcd; elementsd and Fabric when
    installed) and deploy contracts."""
    runtime = select(settings.runtime, settings.run_dir)
    topology = default(block_time, containers=runtime.name == "docker")
    runtime.up(topology, progress=lambda m: console.print(f"[dim]up[/] {m}"))
    out.print(status_table(runtime.status()))
    for note in optional_platforms_note({spec.name for spec in topology.ledgers}):
        out.print(f"[yellow]{note}[/]")


@main.command()
@click.pass_obj
@fail_cleanly
def down(settings: Settings) -> None:
    """Stop every process `dvp up` started."""
    pids = recorded(settings.run_dir, settings.runtime).down()
    out.print(f"stopped {len(pids)} process(es)" if pids else "nothing running")


@main.command()
@click.pass_obj
@fail_cleanly
def status(settings: Settings) -> None:
    """Show the local testnets."""
    rows = recorded(settings.run_dir, settings.runtime).status()
    if not rows:
        out.print(f"no testnets recorded in {settings.run_dir}")
        return
    out.print(status_table(rows))


@main.command()
@click.argument("ledger")
@click.argument("asset")
@click.argument("party")
@click.argument("amount", type=PLAIN_INT)
@click.pass_obj
@fail_cleanly
def issue(settings: Settings, ledger: str, asset: str, party: str, amount: int) -> None:
    """Issue AMOUNT base units of a test ASSET to PARTY on LEDGER."""
    try:
        TypeAdapter(Amount).validate_python(amount)
    except ValidationError as exc:
        raise errors.ConfigError(first_error(exc, "amount: ")) from None

    async def go() -> str:
        async with LedgerSet.from_run_dir(settings.run_dir) as net:
            adapter = _ledger(net, ledger)
            _asset(net, ledger, asset)
            sub = await adapter.require(Issuing).issue(asset, party, amount)
            await adapter.wait_final(sub.tx_id)
            return str(sub.tx_id)

    out.print(f"issued {amount} {asset} to {party} on {ledger}: {asyncio.run(go())}")


@main.command()
@click.option("--party", "parties", multiple=True, default=("seller", "buyer"), show_default=True)
@click.pass_obj
@fail_cleanly
def balances(settings: Settings, parties: tuple[str, ...]) -> None:
    """Balances of every asset on every ledger."""

    async def go() -> Any:
        async with LedgerSet.from_run_dir(settings.run_dir) as net:
            return await net.balances(list(parties))

    out.print(balances_table(asyncio.run(go())))


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option("--security", help="LEDGER:ASSET:AMOUNT the seller delivers.")
@click.option("--cash", help="LEDGER:ASSET:AMOUNT the buyer pays.")
@click.option(
    "--kind",
    type=click.Choice(["htlc", "atomic"]),
    default=None,
    help="Default: atomic on one ledger, htlc across two.",
)
@click.option("--secret-holder", type=click.Choice(["seller", "buyer"]), default=None)
@click.option("--holder-timeout", type=PLAIN_INT, default=None, help="Seconds until the secret holder's leg expires.")
@click.option("--counter-timeout", type=PLAIN_INT, default=None, help="Seconds until the other leg expires.")
@click.option("--fast-forward", is_flag=True, help="Dev ledgers: advance the clock instead of waiting for expiry.")
@click.option("--json", "as_json", is_flag=True, help="Print the swap report as JSON.")
@click.option("--submit", is_flag=True, help="Check and journal the swap, print its id, and leave it to `dvp worker`.")
@click.pass_obj
@fail_cleanly
def swap(
    settings: Settings,
    scenario: Path | None,
    security: str | None,
    cash: str | None,
    kind: str | None,
    secret_holder: str | None,
    holder_timeout: int | None,
    counter_timeout: int | None,
    fast_forward: bool,
    as_json: bool,
    submit: bool,
) -> None:
    """Run one DvP from a YAML/JSON SCENARIO file or from flags."""
    if scenario is not None:
        spec = load_scenario(scenario)
    else:
        if not (security and cash):
            raise errors.ConfigError("scenario: give a scenario file, or both --security and --cash")
        spec = parse_spec({"trade": {"security": parse_leg(security, "security"), "cash": parse_leg(cash, "cash")}})
    overrides = {k: v for k, v in {"kind": kind}.items() if v}
    plan = {
        k: v
        for k, v in {
            "secret_holder": secret_holder,
            "holder_timeout": holder_timeout,
            "counter_timeout": counter_timeout,
        }.items()
        if v is not None
    }
    if overrides or plan or fast_forward:
        data = spec.model_dump(mode="json")
        data.update(overrides)
        data["plan"].update(plan)
        data["fast_forward"] = fast_forward or spec.fast_forward
        spec = parse_spec(data)

    async def go() -> Any:
        async with LedgerSet.from_run_dir(settings.run_dir).reachable_only() as net:
            orch = net.orchestrator(settings.journal_path, progress_printer())
            if submit:
                return [], await orch.submit(spec)
            orch.validate(spec)
            await orch.check_locks(spec)
            # Swaps a crash left unfinished in this journal are driven on at start, beside the new one.
            pending = orch.journal.swaps(unfinished=True)
            if pending:
                console.print(f"resuming {len(pending)} unfinished swap(s) from {orch.journal.path}")
            resumed, result = await asyncio.gather(orch.resume_each([r.id for r in pending]), orch.run(spec))
            return resumed, result

    resumed, result = asyncio.run(go())
    if isinstance(result, str):  # --submit: queued, its id on stdout
        out.print(result)
        return
    codes = [0 if result.outcome.value == "settled" else EXIT_NOT_SETTLED]
    for earlier in resumed:
        if isinstance(earlier, Unfinished):
            codes.append(_report_unfinished(earlier))
        else:
            print_result(console, earlier, False)
    print_result(out, result, as_json)
    sys.exit(worst_exit(codes))


@main.command()
@click.argument("swap_id", required=False)
@click.pass_obj
@fail_cleanly
def resume(settings: Settings, swap_id: str | None) -> None:
    """Drive every unfinished swap (or SWAP_ID) to settlement or refund."""

    async def go() -> Any:
        async with LedgerSet.from_run_dir(settings.run_dir).reachable_only() as net:
            orch = net.orchestrator(settings.journal_path, progress_printer())
            return await orch.resume_each([swap_id] if swap_id else None)

    results = asyncio.run(go())
    if not results:
        out.print("no unfinished swaps")
    codes = []
    for result in results:
        if isinstance(result, Unfinished):
            codes.append(_report_unfinished(result))
        else:
            print_result(out, result, False)
    sys.exit(worst_exit(codes))


@main.command()
@click.argument("swap_id")
@click.pass_obj
@fail_cleanly
def cancel(settings: Settings, swap_id: str) -> None:
    """The seller withdraws the open order of an unfinished single-ledger SWAP_ID: the order
    is cancelled on the ledger (exit 0), or the buyer's acceptance landed first (settled, exit 6)."""

    async def go() -> Any:
        async with LedgerSet.from_run_dir(settings.run_dir).reachable_only() as net:
            return await net.orchestrator(settings.journal_path, progress_printer()).cancel(swap_id)

    result = asyncio.run(go())
    print_result(out, result, False)
    if result.outcome is None or result.outcome.value != "aborted":
        sys.exit(6)


@main.command()
@concurrency_option(16, "Swaps driven at once by this worker.")
@shown_option("--poll", click.FloatRange(0.1, 60), 1.0, "Seconds between looks for unfinished swaps.")
@click.option(
    "--exit-when-idle",
    type=click.FloatRange(0),
    default=None,
    help="Exit once no unfinished swap has been seen for this many seconds (default: run for good).",
)
@shown_option(
    "--reconnect",
    click.FloatRange(0, 3600),
    60.0,
    "Seconds to keep trying to reopen a lost journal before exiting 9.",
)
@click.pass_obj
@fail_cleanly
def worker(settings: Settings, concurrency: int, poll: float, exit_when_idle: float | None, reconnect: float) -> None:
    """Drive the journal's unfinished swaps, and new ones as they are submitted (many workers may share one journal)."""
    from .orchestrator import SwapResult
    from .worker import run_worker

    def report(item: SwapResult | Unfinished) -> None:
        if isinstance(item, Unfinished):
            _report_unfinished(item)
        else:
            print_result(out, item, False)

    async def go() -> int:
        async with LedgerSet.from_run_dir(settings.run_dir).reachable_only() as net:
            return await run_worker(
                lambda: net.orchestrator(settings.journal_path, progress_printer()),
                report,
                reconnect=reconnect,
                say=lambda m: click.echo(one_line(m), err=True),
                concurrency=concurrency,
                poll=poll,
                idle_exit=exit_when_idle,
            )

    console.print(f"worker: {asyncio.run(go())} swap(s) driven to an outcome")


def _report_unfinished(item: Unfinished) -> int:
    """One line for a swap left unfinished (it continues with `dvp resume`); its exit code."""
    message = str(item.error) or type(item.error).__name__
    if item.swap_id not in message:
        message = f"swap {item.swap_id}: {message}; it continues with `dvp resume`"
    click.echo(f"error: {one_line(message)}", err=True)
    return item.error.exit_code


@main.command()
@click.argument("swap_id", required=False)
@click.pass_obj
@fail_cleanly
def history(settings: Settings, swap_id: str | None) -> None:
    """Swaps in the journal, or one swap's timeline."""
    from .journal import Journal
    from .models import SwapSpec
    from .orchestrator import Outcome, SwapResult

    journal = Journal(settings.journal_path)
    found = [journal.get(swap_id)] if swap_id else journal.swaps()
    records = [r for r in found if r is not None]
    if swap_id and not records:
        raise errors.UnknownSwap(f"swap_id: no swap {swap_id!r} in {journal.path}")
    for r in records:
        result = SwapResult(
            r.id,
            r.kind,
            Outcome(r.outcome) if r.outcome else None,
            r.detail or "unfinished",
            SwapSpec.model_validate(r.spec),
            r.data,
            journal.steps(r.id),
        )
        print_result(out, result, False)


@main.command()
@click.argument("ledger")
@click.argument("lock_id")
@click.argument("preimage")
@click.option("--as", "party", required=True, help="Party that submits the claim.")
@click.pass_obj
@fail_cleanly
def claim(settings: Settings, ledger: str, lock_id: str, preimage: str, party: str) -> None:
    """Claim LOCK_ID on LEDGER with a 32-byte hex PREIMAGE."""
    secret = parse_hex32(preimage, "preimage")
    tx_id = _send_final(settings, ledger, lambda adapter: adapter.claim(lock_id, secret, submitter=party))
    out.print(f"claimed {lock_id}: {tx_id}")


@main.command()
@click.argument("ledger")
@click.argument("lock_id")
@click.option("--as", "party", required=True, help="The lock's sender.")
@click.pass_obj
@fail_cleanly
def refund(settings: Settings, ledger: str, lock_id: str, party: str) -> None:
    """Refund LOCK_ID on LEDGER to its sender (only after expiry)."""
    tx_id = _send_final(settings, ledger, lambda adapter: adapter.refund(lock_id, submitter=party))
    out.print(f"refunded {lock_id}: {tx_id}")


@main.command()
@click.argument("ledger")
@click.argument("lock_id")
@click.pass_obj
@fail_cleanly
def inspect(settings: Settings, ledger: str, lock_id: str) -> None:
    """Show a lock as its ledger sees it."""

    async def go() -> Any:
        async with LedgerSet.from_run_dir(settings.run_dir) as net:
            return await _ledger(net, ledger).get_lock(lock_id)

    state = asyncio.run(go())
    if state is None:
        raise errors.LockNotFound(f"lock_id: no lock {lock_id} on {ledger}")
    out.print_json(state.model_dump_json())


@main.command()
@click.option("--keep", is_flag=True, help="Leave the testnets running afterwards.")
@click.option("--report", type=click.Path(path_type=Path), default=None, help="JSON report path.")
@block_time_option()
@click.pass_obj
@fail_cleanly
def demo(settings: Settings, keep: bool, report: Path | None, block_time: float) -> None:
    """Bring up the testnets, issue assets, run a single-ledger and a cross-ledger DvP."""
    from .demo import run_demo

    path = run_demo(settings, out, console, keep=keep, report=report, block_time=block_time)
    out.print(f"report written to {path}")


def _send_final(settings: Settings, ledger: str, send: Callable[[LedgerAdapter], Awaitable[Submission]]) -> str:
    """``send`` on LEDGER's adapter (a claim, a refund), waited for until final; its transaction id."""

    async def go() -> str:
        async with LedgerSet.from_run_dir(settings.run_dir) as net:
            adapter = _ledger(net, ledger)
            sub = await send(adapter)
            await adapter.wait_final(sub.tx_id)
            return sub.tx_id

    return asyncio.run(go())


def _ledger(net: LedgerSet, name: str) -> LedgerAdapter:
    if name not in net.ledgers:
        raise errors.ConfigError(f"ledger: unknown ledger {name!r} (known: {', '.join(sorted(net.ledgers))})")
    return net.ledgers[name]


def _asset(net: LedgerSet, ledger: str, symbol: str) -> None:
    if not any(a.ledger == ledger and a.symbol == symbol for a in net.assets):
        raise errors.ConfigError(f"asset: unknown asset {symbol!r} on ledger {ledger!r}")


main.add_command(bench)
main.add_command(report)

if __name__ == "__main__":
    main()
