"""The agent's metrics in the Prometheus text format, on 127.0.0.1 only (``metrics:`` in
``agent.yaml``; off unless set).

Every scrape reads the journal read-only (:mod:`.ops`), so the figures are the journal's and a
restarted agent does not start again from zero; only ``dvp_agent_refusals_total`` (messages
and proposals refused over the agent's limits, never journaled) counts from the process's
start.  The names and labels are listed in the README ("Monitoring an agent").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from pydantic import AfterValidator

from dvp.cli_common import console
from dvp.errors import ConfigError
from dvp.models import Frozen

from . import ops

if TYPE_CHECKING:
    from dvp.party.agent import Agent


# Step latency buckets, seconds: a lock on a dev chain takes under one, a claim waiting on
# the other side's finality up to minutes.
BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# (peer, reason) -> count, for the process's lifetime
Refusals = Callable[[], Iterable[tuple[str, str, int]]]


def _loopback(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not IP:PORT (port 0: any free port)")
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address: the metrics are served on 127.0.0.1 only")
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return value


class MetricsSettings(Frozen):
    listen: Annotated[str, AfterValidator(_loopback)] = "127.0.0.1:0"  # port 0: a free port, printed at start


class JournalCollector(Collector):
    def __init__(self, journal: Path, party: str, refusals: Refusals | None = None):
        self.journal, self.party, self.refusals = journal, party, refusals

    def collect(self) -> Iterator[Any]:
        with ops.read_only(self.journal, check=False) as db:  # the agent's own journal, open in this process
            outcomes = ops.outcomes(db)
            messages = ops.message_counts(db)
            latencies = ops.latencies(db)
            swaps = ops.open_swaps(db)
            contact = ops.last_contact(db)
        finished = CounterMetricFamily(
            "dvp_agent_swaps_finished",
            "Swaps this party's journal holds as ended, by outcome (from the journal)",
            labels=["outcome"],
        )
        for outcome, n in sorted(outcomes.items()):
            if outcome != ops.UNFINISHED:
                finished.add_metric([outcome], n)
        yield finished
        yield GaugeMetricFamily(
            "dvp_agent_swaps_unfinished",
            "Swaps without an outcome yet (being driven, or left to the next start)",
            value=outcomes.get(ops.UNFINISHED, 0),
        )
        yield _histogram(latencies)
        sent = CounterMetricFamily(
            "dvp_agent_messages",
            "Messages journaled as sent to (out) or taken from (in) a peer, by kind",
            labels=["peer", "direction", "kind"],
        )
        for (peer, direction, kind), n in sorted(messages.items()):
            sent.add_metric([peer, direction, kind], n)
        yield sent
        refused = CounterMetricFamily(
            "dvp_agent_refusals",
            "Messages and proposals refused or rejected, by reason "
            "(the limit's name, or 'rejected' for a proposal the checks or policy "
            "refused); counted since this process started",
            labels=["peer", "reason"],
        )
        for peer, reason, n in sorted(self.refusals() if self.refusals else ()):
            refused.add_metric([peer, reason], n)
        yield refused
        locked = GaugeMetricFamily(
            "dvp_agent_locked_amount",
            "What this party has locked now in unfinished swaps, in the asset's base units",
            labels=["ledger", "asset"],
        )
        for (ledger, asset), amount in sorted(ops.locked_value(swaps).items()):
            locked.add_metric([ledger, asset], amount)
        yield locked
        last = GaugeMetricFamily(
            "dvp_agent_peer_last_contact_seconds",
            "Unix time of the last message journaled as taken from the peer",
            labels=["peer"],
        )
        for peer, wall in sorted(contact.items()):
            last.add_metric([peer], wall)
        yield last


def _histogram(latencies: list[ops.Latency]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "dvp_agent_step_seconds",
        "Time from a step's intent to its result as journaled, by step and ledger",
        labels=["step", "ledger"],
    )
    by_label: dict[tuple[str, str], list[float]] = {}
    for item in latencies:
        by_label.setdefault((item.step, item.ledger), []).append(item.seconds)
    for (step, ledger), values in sorted(by_label.items()):
        buckets = [(str(b), float(sum(1 for v in values if v <= b))) for b in BUCKETS]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([step, ledger], buckets, sum(values))
    return family


class MetricsServer:
    """The endpoint, in a thread of the agent's process; :meth:`close` stops it."""

    def __init__(self, settings: MetricsSettings, collector: JournalCollector):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        host, _, port = settings.listen.rpartition(":")
        try:
            self.server, self.thread = start_http_server(int(port), addr=host, registry=registry)
        except OSError as exc:
            raise ConfigError(f"metrics.listen: cannot serve on {settings.listen}: {exc.strerror or exc}") from None
        self.url = f"http://{host}:{self.server.server_port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(settings: MetricsSettings | None, journal: Path, party: Agent) -> MetricsServer | None:
    """The endpoint of ``settings`` (an agent config's ``metrics``) for the running agent
    ``party`` whose journal is ``journal`` (None when off); says where."""
    if settings is None:
        return None
    channel: dict[tuple[str, str], int] = getattr(party.channel, "refused", {})

    def refusals() -> list[tuple[str, str, int]]:
        counted = {
            (peer, reason): n
            for peer, admission in party.admissions.items()
            for reason, n in list(admission.refused.items())
        }
        for key, n in list(channel.items()):
            counted[key] = counted.get(key, 0) + n
        return [(peer, reason, n) for (peer, reason), n in counted.items()]

    server = MetricsServer(settings, JournalCollector(journal, party.party, refusals))
    console.print(f"[dim]{party.party}[/] metrics on {server.url}")
    return server
