"""Three banks, three `dvp agent run` processes on the testnets (issue 22 items 1, 2, 4): a
seller bank pinned to two buyer banks (the testnets' ``buyer`` and ``issuer``), who are also
pinned to each other; one listening port, one identity and one journal each.  Swaps between
every pair of them run at once: cross-ledger on evm-a/evm-b and evm-a/btc (in `make test`), on
each platform's base pair (fabric-a/fabric-b, fabric-a/evm-a, elements/evm-a) and single-ledger
(``kind: atomic``) on evm-a, fabric-a and elements (under ``matrix``); every party's balance changes by exactly its
trades, every journal holds only its own swaps, secrets and transactions.  Then two pinned
peers flood the seller while the third settles a swap with it (``matrix``)."""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import signal
import time
from collections import Counter

import pytest

from dvp import errors
from dvp.adapter import Issuing
from dvp.demo import _cross_ledger as demo_cross_ledger
from dvp.demo_agents import run_two_agents
from dvp.journal import Step
from dvp.ledger_set import LedgerSet
from dvp.models import Role, SwapSpec
from dvp.party.messages import Kind, Message
from dvp.party.quotes import QuoteRequest
from dvp.report import fees_paid
from dvp.settings import Settings
from dvp.terms import LegPlan, Proposal
from dvp.testing.scenarios import DEV_POLICY
from dvp_agent.config import PeerSettings, load_config, save_config
from dvp_agent.grpc_channel import GrpcChannel, PeerEndpoint
from dvp_agent.identity import create_identity, load_identity, load_peer_cert

from ..cli_helpers import dvp, one_line_error
from ..scenarios import spec_for
from ..testbed import CROSS_PAIRS, ELEMENTS, ELEMENTS_MARKS, FABRIC_MARKS, FUNDS, Pair, platform_matrix
from .conftest import Agents, make_agents, pin, run_async
from .test_flood import LIMITS, flood_calls, message_rows
from .test_hostile import buyer_agent

pytestmark = [pytest.mark.agent, pytest.mark.timeout(400)]
# How soon a running agent takes a pairing change: it looks at agent.yaml every 0.2 s; a new TLS
# handshake of the peer's then takes the new certificates.
PAIRING_BOUND = 5.0

BANKS = ("seller", "buyer", "issuer")
LINKS = (("seller", "buyer"), ("seller", "issuer"), ("buyer", "issuer"))


def trade(pair: Pair, seller: str, buyer: str, holder: Role, bond: int, cash: int, kind: str | None = None) -> SwapSpec:
    spec = spec_for(pair, kind=kind, secret_holder=holder.value)
    security = spec.trade.security.model_copy(update={"amount": bond})
    money = spec.trade.cash.model_copy(update={"amount": cash})
    return spec.model_copy(
        update={
            "trade": spec.trade.model_copy(
                update={"seller": seller, "buyer": buyer, "security": security, "cash": money}
            )
        }
    )


async def _fund_issuer(run_dir) -> None:
    """The testnets give the issuer coins on btc (and Elements' supply) but no tokens on EVM or
    Fabric: it issues itself its share of whatever it holds less than FUNDS of."""
    async with LedgerSet.from_run_dir(run_dir) as ledger_set:
        sent = []
        for asset in ledger_set.assets:
            adapter = ledger_set.ledgers[asset.ledger]
            if await adapter.balance("issuer", asset.symbol) < FUNDS:
                sent.append((adapter, await adapter.require(Issuing).issue(asset.symbol, "issuer", FUNDS)))
        for adapter, sub in sent:
            await adapter.wait_all(sub)


async def _balances(run_dir) -> dict[tuple[str, str, str], int]:
    async with LedgerSet.from_run_dir(run_dir) as ledger_set:
        return await ledger_set.balances(list(BANKS))


@pytest.fixture
def banks(run_dir, tmp_path) -> Agents:
    run_async(_fund_issuer(run_dir))
    agents = make_agents(run_dir, tmp_path, BANKS, LINKS)
    try:
        yield agents
    finally:
        agents.stop_all()


# The ledger pairs of the three links (seller-buyer, seller-issuer, buyer-issuer), and the kind.
THREE_BANK_CASES = [
    pytest.param((CROSS_PAIRS[0], CROSS_PAIRS[1], CROSS_PAIRS[0]), None, id="evm-a-evm-b+evm-a-btc"),
    *platform_matrix(None),
    pytest.param(Pair("evm-a", "evm-a"), "atomic", id="atomic-evm-a", marks=pytest.mark.matrix),
    pytest.param(
        Pair("fabric-a", "fabric-a"), "atomic", id="atomic-fabric-a", marks=[*FABRIC_MARKS, pytest.mark.matrix]
    ),
    pytest.param(
        Pair("elements", "elements"), "atomic", id="atomic-elements", marks=[*ELEMENTS_MARKS, pytest.mark.matrix]
    ),
]


def network_trades(pairs: Pair | tuple[Pair, Pair, Pair], kind: str | None) -> dict[str, tuple[str, SwapSpec]]:
    """Link name -> (its proposer, its trade): the seller bank with each buyer bank, the buyer
    banks with each other; each link its own amounts, secret holder and proposer."""
    links = pairs if isinstance(pairs, tuple) else (pairs, pairs, pairs)
    made = {}
    for (name, proposer, holder, bond, cash), pair in zip(
        (
            ("seller-buyer", "seller", Role.SELLER, 7, 70_000),
            ("seller-issuer", "issuer", Role.BUYER, 5, 50_000),
            ("buyer-issuer", "buyer", Role.SELLER, 3, 30_000),
        ),
        links,
        strict=True,
    ):
        seller, buyer = name.split("-")
        made[name] = (proposer, trade(pair, seller, buyer, holder, bond, cash, kind=kind))
    return made


@pytest.mark.parametrize("pairs, kind", THREE_BANK_CASES)
def test_three_banks_settle_concurrent_swaps_between_every_pair(banks: Agents, pairs, kind):
    trades = network_trades(pairs, kind)
    before = run_async(_balances(banks.run_dir))
    # `dvp agent init` wrote a policy that sends at most what the party held then, asset by asset.
    for bank in BANKS:
        written = banks.init_policies[bank].max_send
        assert {"evm-a:BOND", "evm-b:EUR", "btc:BTC"} <= set(written), written
        assert all(n == before[(*key.split(":"), bank)] for key, n in written.items()), (bank, written)
    # Listed peers: one line each, with the certificate's fingerprint.
    listed = dvp(["agent", "peers", str(banks.folders["seller"])], banks.env)
    assert listed.returncode == 0, listed.stderr
    fingerprint = load_peer_cert(banks.folders["seller"] / "peers" / "issuer.crt", "issuer").fingerprint
    assert [line.split("\t")[:3] for line in listed.stdout.splitlines()] == [
        [
            "buyer",
            f"127.0.0.1:{banks.ports['buyer']}",
            load_peer_cert(banks.folders["buyer"] / "agent.crt", "buyer").fingerprint,
        ],
        ["issuer", f"127.0.0.1:{banks.ports['issuer']}", fingerprint],
    ]
    proposals: dict[str, list[str]] = {b: [] for b in BANKS}
    for name, (proposer, spec) in trades.items():
        proposals[proposer] += ["--propose", str(banks.scenario(spec, f"{name}.yaml"))]
    started = time.monotonic()
    for bank in BANKS:
        banks.start(bank, *proposals[bank], "--max-seconds", "300").ready()
    # Each proposer's journal names its swap first; then every side's journal ends it.
    ids = {}
    for name, (proposer, _spec) in trades.items():
        ids[name] = _swap_of(banks, proposer, name, trades)
    for name, swap_id in ids.items():
        proposer = trades[name][0]  # first: a proposal rejected ends there, and the peer has no swap
        for bank in sorted(name.split("-"), key=lambda b: b != proposer):
            record = banks.outcome(bank, swap_id, timeout=240)
            assert record.outcome == "settled", (name, bank, record.detail)
    took = time.monotonic() - started
    after = run_async(_balances(banks.run_dir))
    steps: list[Step] = [s for bank in BANKS for swap_id in ids.values() for s in _steps(banks, bank, swap_id)]
    fees = fees_paid(steps)
    expected: Counter[tuple[str, str, str]] = Counter()
    for _proposer, spec in trades.values():
        t = spec.trade
        expected[(t.security.ledger, t.security.asset, t.seller)] -= t.security.amount
        expected[(t.security.ledger, t.security.asset, t.buyer)] += t.security.amount
        expected[(t.cash.ledger, t.cash.asset, t.buyer)] -= t.cash.amount
        expected[(t.cash.ledger, t.cash.asset, t.seller)] += t.cash.amount
    changed = {k: after[k] - before[k] + fees.get(k, 0) for k in after if after[k] - before[k] + fees.get(k, 0)}
    assert changed == {k: v for k, v in expected.items() if v}, (changed, expected)
    # Every journal: its own swaps only, the secret only where its party holds it, its own locks only.
    for bank in BANKS:
        mine = {name: swap_id for name, swap_id in ids.items() if bank in name.split("-")}
        assert sorted(banks.swap_ids(bank)) == sorted(mine.values()), bank
        for name, swap_id in mine.items():
            spec = trades[name][1]
            role = Role.SELLER if spec.trade.seller == bank else Role.BUYER
            record = banks.record(bank, swap_id)
            assert record.data["side"]["peer"] == (spec.trade.buyer if role is Role.SELLER else spec.trade.seller)
            htlc = spec.resolved_kind == "htlc"
            assert bool(record.data.get("secret")) == (htlc and spec.plan.secret_holder is role), (bank, name)
            assert _own_steps(banks, bank, swap_id, htlc) == _expected_steps(spec, role), (bank, name)
            assert {m["peer"] for m in banks.messages(bank, swap_id)} == {
                spec.trade.buyer if role is Role.SELLER else spec.trade.seller
            }
    print(f"three banks ({kind or 'htlc'}): {len(ids)} concurrent swaps settled in {took:.1f}s")
    banks.stop_all()
    # Unpair: refused while a swap with the peer is unfinished (none is now), then the peer is gone.
    done = dvp(["agent", "unpair", str(banks.folders["seller"]), "--peer", "issuer"], banks.env)
    assert done.returncode == 0, done.stderr
    assert [p.party for p in load_config(banks.folders["seller"]).peers] == ["buyer"]
    assert not (banks.folders["seller"] / "peers" / "issuer.crt").exists()


def _expected_steps(spec: SwapSpec, role: Role) -> set[str]:
    """The steps only ``role``'s party takes: its own lock (HTLC), or its side of the order
    (atomic; on Elements the buyer's half crosses as a PSET and the seller sends the one transaction)."""
    seller = role is Role.SELLER
    if spec.resolved_kind == "htlc":
        return {"lock security"} if seller else {"lock cash"}
    if spec.trade.cash.ledger == ELEMENTS.name:
        return {"propose", "settle"} if seller else set()
    return {"propose"} if seller else {"settle"}


def _own_steps(banks: Agents, bank: str, swap_id: str, htlc: bool) -> set[str]:
    """The lock steps (HTLC), or the order's propose/settle done (atomic), in ``bank``'s journal."""
    mine = ("lock security", "lock cash") if htlc else ("propose", "settle")
    return {s.step for s in _steps(banks, bank, swap_id) if s.step in mine and (htlc or s.phase == "result")}


def _swap_of(banks: Agents, proposer: str, name: str, trades) -> str:
    """The swap id the proposer's journal gave ``name``'s trade (matched by its parties and legs)."""
    spec = trades[name][1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if banks.journal(proposer).exists():
            for record in banks.read(proposer, lambda j: j.swaps()):
                if SwapSpec.model_validate(record.spec).trade == spec.trade:
                    return record.id
        time.sleep(0.2)
    raise AssertionError(f"{proposer}'s journal has no swap for {name}")


def _steps(banks: Agents, bank: str, swap_id: str) -> list[Step]:
    return banks.read(bank, lambda j: j.steps(swap_id))


def test_unpair_is_refused_while_a_swap_with_the_peer_is_unfinished(banks: Agents):
    """The buyer bank never runs: the seller's proposal to it stays unanswered, unfinished."""
    spec = trade(CROSS_PAIRS[0], "seller", "buyer", Role.SELLER, 1, 1000)
    seller = banks.start("seller", "--propose", str(banks.scenario(spec)), "--max-seconds", "20").ready()
    swap_id = banks.first_swap("seller", 30)
    seller.stop()
    assert banks.record("seller", swap_id).outcome is None
    done = dvp(["agent", "unpair", str(banks.folders["seller"]), "--peer", "buyer"], banks.env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"error: peer: 1 swap(s) with 'buyer' unfinished ({swap_id}); unpair it once they have ended"
    )
    assert [p.party for p in load_config(banks.folders["seller"]).peers] == ["buyer", "issuer"]
    done = dvp(["agent", "unpair", str(banks.folders["seller"]), "--peer", "nobody"], banks.env)
    assert done.returncode == 2 and "'nobody' is not pinned (pinned: buyer, issuer)" in done.stderr


def test_a_running_agent_takes_pairing_changes(agents: Agents, tmp_path):
    """`dvp agent pair` and `unpair` while the seller's agent runs: carol (a new bank) is let in
    within PAIRING_BOUND and shut out again as soon after; a peer the seller has an unfinished
    swap with (the buyer, whose agent never runs) is kept when agent.yaml drops it by hand."""
    seller_folder = agents.folders["seller"]
    carol = create_identity(tmp_path / "carol", "carol")
    spec = spec_for(CROSS_PAIRS[0], secret_holder=Role.SELLER.value)
    seller = agents.start("seller", "--propose", str(agents.scenario(spec)), "--max-seconds", "120").ready()
    swap_id = agents.first_swap("seller", 30)
    endpoint = PeerEndpoint(
        f"127.0.0.1:{agents.ports['seller']}", load_peer_cert(seller_folder / "agent.crt", "seller")
    )

    async def carol_says(channel: GrpcChannel | None = None) -> str:
        """What carol's ping (for no swap) gets: let in, the seller's agent refuses it for that;
        on a channel of her own each time, or on ``channel`` (its connection kept)."""
        own = channel or GrpcChannel(carol, "127.0.0.1:0", {"seller": endpoint})
        ping = Message(kind=Kind.PING, swap_id="none", sender="carol", recipient="seller", seq=time.time_ns())
        try:
            await own.send(ping, timeout=2)
            return "answered"
        except errors.MessageRefused as exc:
            if "client certificate is not a pinned peer's" in str(exc):
                return "shut out"  # on a connection made before
            return "let in" if "ping for unknown swap none" in str(exc) else f"refused: {exc}"
        except errors.PeerUnreachable:
            return "shut out"  # the TLS handshake refused her certificate, or her connection was closed
        finally:
            if channel is None:
                await own.aclose()

    def until(wanted: str) -> float:
        started = time.monotonic()
        while (said := run_async(carol_says())) != wanted:
            assert time.monotonic() - started < PAIRING_BOUND, (wanted, said, seller.output()[-2000:])
        return time.monotonic() - started

    async def unpaired_while_connected() -> tuple[str, float]:
        """carol let in on a connection she keeps, then unpaired: shut out on it too (how soon)."""
        held = GrpcChannel(carol, "127.0.0.1:0", {"seller": endpoint})
        try:
            assert await carol_says(held) == "let in"
            done = await asyncio.to_thread(dvp, ["agent", "unpair", str(seller_folder), "--peer", "carol"], agents.env)
            assert done.returncode == 0, done.stderr
            started = time.monotonic()
            while (said := await carol_says(held)) == "let in" and time.monotonic() - started < PAIRING_BOUND:
                await asyncio.sleep(0.05)
            return said, time.monotonic() - started
        finally:
            await held.aclose()

    try:
        assert run_async(carol_says()) == "shut out"
        pin(agents.env, seller_folder, "carol", "127.0.0.1:1", tmp_path / "carol" / "agent.crt")
        let_in = until("let in")
        said, shut_out = run_async(unpaired_while_connected())
        assert said == "shut out", said
        assert run_async(carol_says()) == "shut out"
        print(f"pairing taken by the running agent: carol let in after {let_in:.2f}s, shut out {shut_out:.2f}s")
        # agent.yaml with carol and without the buyer, by hand (unpair refuses): the buyer's
        # unfinished swap keeps it pinned.
        config = load_config(seller_folder)
        only_carol = PeerSettings(party="carol", endpoint="127.0.0.1:1", cert=tmp_path / "carol" / "agent.crt")
        save_config(seller_folder, config.model_copy(update={"peers": [only_carol]}))
        until("let in")
        said = " ".join(seller.output().split())  # as printed, without the console's line breaks
        assert "pairing taken from agent.yaml, peers carol, buyer; kept buyer (unfinished swaps with them)" in said, (
            said
        )
        # SIGHUP: agent.yaml read again at once, changed or not.
        taken = seller.output().count("pairing taken")
        seller.proc.send_signal(signal.SIGHUP)
        for _ in range(50):  # bounded: 10 s
            if seller.output().count("pairing taken") > taken:
                break
            time.sleep(0.2)
        assert seller.output().count("pairing taken") == taken + 1, seller.output()[-2000:]
        # A file it cannot take: the pairing stays as it was, and it says why in one line.
        (seller_folder / "agent.yaml").write_text("peers: [")
        for _ in range(50):  # bounded: 10 s
            if "pairing not taken" in seller.output():
                break
            time.sleep(0.2)
        said = " ".join(seller.output().split())
        assert "error: " in said and "agent.yaml: pairing not taken: " in said and "still serving carol, buyer" in said
        assert run_async(carol_says()) == "let in"
        assert agents.record("seller", swap_id).outcome is None
    finally:
        seller.stop()


# -- two flooding peers and an honest one -------------------------------------------------------

FLOODERS = ("issuer", "mallory")  # pinned peers of the seller: certificates only, they flood
FLOOD_SECONDS = 10.0
IN_FLIGHT = 16  # per flooder, under limits.concurrent_calls (32)
# What the honest swaps themselves journal and log on the seller's side, with room to spare.
HONEST_ROWS = 80
HONEST_LINES = 80


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _settle_seconds(agents: Agents, swap_id: str, timeout: float) -> float:
    """From the seller's proposal to the seller's outcome, by its journal; it must be settled."""
    record = agents.outcome("seller", swap_id, timeout=timeout)
    assert record.outcome == "settled", record.detail
    return record.updated - record.created


async def _flood(flooder: str, folder, endpoint: str, seller_cert, swap_id: str, spec: SwapSpec) -> Counter[str]:
    """``flooder`` (a pinned peer of the seller) sends for FLOOD_SECONDS, IN_FLIGHT at once:
    proposals under fresh ids, and pings and notices naming the honest peer's swap."""
    identity = load_identity(folder / "agent.key", folder / "agent.crt")
    channel = GrpcChannel(identity, "127.0.0.1:0", {"seller": PeerEndpoint(endpoint, seller_cert)})
    seq = itertools.count(time.time_ns())
    trade_of = spec.trade.model_copy(update={"buyer": flooder})
    fake = Proposal(
        swap_id="x",
        proposer=flooder,
        spec=spec.model_copy(update={"trade": trade_of}),
        security=LegPlan(expiry=1, nonce="00" * 32),
        cash=LegPlan(expiry=1, nonce="11" * 32),
    )

    def message(n: int) -> Message:
        kind, sid, body = Kind.PING, swap_id, {}
        if n % 3 == 0:
            sid = f"flood-{secrets.token_hex(6)}"
            kind, body = Kind.PROPOSE, fake.model_copy(update={"swap_id": sid}).model_dump(mode="json")
        elif n % 3 == 1:
            kind, body = Kind.LOCKED, {"leg": "cash", "lock_id": "0x" + secrets.token_hex(32)}
        return Message(kind=kind, swap_id=sid, sender=flooder, recipient="seller", seq=next(seq), body=body)

    try:
        outcomes, sent = await flood_calls(channel, message, time.monotonic() + FLOOD_SECONDS, IN_FLIGHT)
    finally:
        await channel.aclose()
    outcomes["sent"] = sent
    return outcomes


@pytest.mark.matrix
def test_two_flooding_peers_do_not_slow_the_honest_peers_swap(run_dir, tmp_path):
    """The seller's agent has three pinned peers: the buyer (honest, a `dvp agent` process) and
    two that flood it. The buyer's swap settles in about the time it takes alone; the seller's
    journal, log and memory stay within their stated bounds."""
    agents = make_agents(run_dir, tmp_path, ("seller", "buyer"), (("seller", "buyer"),))
    seller_folder = agents.folders["seller"]
    try:
        for flooder in FLOODERS:
            create_identity(tmp_path / flooder, flooder)
            pin(agents.env, seller_folder, flooder, "127.0.0.1:1", tmp_path / flooder / "agent.crt")
        save_config(seller_folder, load_config(seller_folder).model_copy(update={"limits": LIMITS}))
        spec = spec_for(CROSS_PAIRS[0], secret_holder=Role.SELLER.value)
        agents.start("buyer").ready()
        seller = agents.start("seller", "--propose", str(agents.scenario(spec)), "--max-seconds", "300").ready()
        alone_id = agents.first_swap("seller", 60)
        alone = _settle_seconds(agents, alone_id, 120)
        rss_before = _rss_kib(seller.proc.pid)
        lines_before = len(seller.output().splitlines())
        seller_cert = load_peer_cert(seller_folder / "agent.crt", "seller")
        endpoint = f"127.0.0.1:{agents.ports['seller']}"

        async def flooded() -> tuple[list[Counter[str]], str, float]:
            floods = [
                asyncio.create_task(_flood(f, tmp_path / f, endpoint, seller_cert, alone_id, spec)) for f in FLOODERS
            ]
            await asyncio.sleep(1.0)  # the flood is on: the honest peer's next swap starts under it
            proposed = await asyncio.to_thread(
                dvp, ["agent", "propose", str(agents.scenario(spec, "again.yaml")), str(seller_folder)], agents.env
            )
            assert proposed.returncode == 0, proposed.stderr
            swap_id = proposed.stdout.split("proposed swap ")[1].split(";")[0]
            took = await asyncio.to_thread(_settle_seconds, agents, swap_id, 180)
            return list(await asyncio.gather(*floods)), swap_id, took

        outcomes, flooded_id, under_flood = run_async(flooded())
        rss_after = _rss_kib(seller.proc.pid)
        seller.stop()
        log = seller.output()
        lines = len(log.splitlines()) - lines_before
        rows = message_rows(agents)
        print(
            f"two flooders, {FLOOD_SECONDS:.0f}s each at {IN_FLIGHT} in flight: {[dict(o) for o in outcomes]}; "
            f"honest swap alone {alone:.1f}s, under the flood {under_flood:.1f}s; seller RSS {rss_before} -> "
            f"{rss_after} KiB; message rows {dict(rows)}; log +{lines} lines"
        )
        for flood in outcomes:
            assert flood["refused:not_its_swap"] > 0 and flood["accept"] == 0, flood  # bound to its peer
            assert flood["reject"] > 0, flood  # fresh proposals rejected (policy or limits), never accepted
            assert sum(n for k, n in flood.items() if k not in ("sent", "unreachable")) > 300, flood  # a real flood
        # The honest swap: settled, in about the time it took alone.
        assert under_flood <= 2 * alone + 5, (alone, under_flood)
        # Journal: the honest swaps only, their rows within their own bound; nothing of the flooders'.
        assert sorted(agents.swap_ids("seller")) == sorted([alone_id, flooded_id])
        assert all(n <= 2 * LIMITS.messages_per_swap + HONEST_ROWS for n in rows.values()), rows
        assert set(rows) == {alone_id, flooded_id}, rows
        assert {m["peer"] for sid in rows for m in agents.messages("seller", sid)} == {"buyer"}
        # Log: each flooder's lines rate-limited on their own; memory: a bounded growth.
        minutes = 1 + (FLOOD_SECONDS + 60) / 60
        assert lines <= len(FLOODERS) * LIMITS.log_lines_per_minute * minutes + HONEST_LINES, lines
        assert rss_after - rss_before < 64 * 1024, (rss_before, rss_after)
    finally:
        agents.stop_all()


def _quoting(banks: Agents, peers: tuple[str, ...], prices: dict[str, int], quote_seconds: int = 30) -> None:
    """The seller bank quotes ``peers`` at ``prices`` (its policy for each), each quote firm ``quote_seconds``."""
    folder = banks.folders["seller"]
    priced = DEV_POLICY.model_copy(update={"prices": prices, "quote_seconds": quote_seconds})
    config = load_config(folder)
    update = [p.model_copy(update={"policy": priced}) if p.party in peers else p for p in config.peers]
    save_config(folder, config.model_copy(update={"peers": update}))


def _moved(banks: Agents, before, swap_ids: list[str]) -> dict[tuple[str, str, str], int]:
    """Every balance that changed since ``before``, the fees each party journaled for ``swap_ids`` added back."""
    after = run_async(_balances(banks.run_dir))
    fees = fees_paid([s for bank in BANKS for sid in swap_ids for s in _steps(banks, bank, sid)])
    return {k: after[k] - before[k] + fees.get(k, 0) for k in after if after[k] - before[k] + fees.get(k, 0)}


def test_a_quote_over_the_channel_then_the_proposal_on_it_settles(banks: Agents):
    """The issuer bank (in this process) asks the seller bank's running agent for 3 BOND against
    its BTC; the seller quotes by its policy's price, the issuer proposes on the quote, both settle."""
    _quoting(banks, ("issuer",), {"evm-a:BOND/btc:BTC": 10_000})
    before = run_async(_balances(banks.run_dir))
    banks.start("seller", "--max-seconds", "200").ready()

    async def trade_on_quote() -> tuple[str, SwapSpec, object]:
        async with buyer_agent(banks, party="issuer") as (issuer, _net):
            request = QuoteRequest(security="evm-a:BOND", cash=["evm-b:EUR", "btc:BTC"], amount=3, side="buy")
            quote_id, quoted = await issuer.request_quote("seller", request)
            swap_id = await issuer.propose(quoted, swap_id=quote_id)
            return swap_id, quoted, await asyncio.wait_for(issuer.tasks[swap_id], 180)

    swap_id, quoted, result = run_async(trade_on_quote())
    assert result.outcome.value == "settled", result.detail
    assert (quoted.trade.cash.ledger, quoted.trade.cash.amount) == ("btc", 30_000)  # the first it prices
    assert banks.outcome("seller", swap_id, timeout=60).outcome == "settled"
    assert _moved(banks, before, [swap_id]) == {
        ("evm-a", "BOND", "seller"): -3,
        ("evm-a", "BOND", "issuer"): 3,
        ("btc", "BTC", "seller"): 30_000,
        ("btc", "BTC", "issuer"): -30_000,
    }


def _ask_quote(banks: Agents, party: str, *args: str):
    return dvp(["agent", "quote", str(banks.folders[party]), "--peer", "seller", *args], banks.env)


def test_dvp_agent_quote_then_propose_on_it_settles_and_off_quote_proposals_are_refused(banks: Agents):
    """`dvp agent quote` has the buyer bank's running agent ask the seller bank's for 4 BOND
    against evm-b EUR; `dvp agent propose --quote ID` trades on it, under the quote's id.
    Meanwhile the issuer bank (in this process), quoted firm for 2 s only: its own agent refuses
    to propose on an expired quote, nothing journaled; proposing on it anyway, or on other terms
    under a live quote's id, is rejected by the seller's agent, which journals neither.  Bad
    input to the commands: one line each."""
    _quoting(banks, ("buyer",), {"evm-a:BOND/evm-b:EUR": 2_500})
    _quoting(banks, ("issuer",), {"evm-a:BOND/evm-b:EUR": 2_500}, quote_seconds=2)
    before = run_async(_balances(banks.run_dir))
    banks.start("seller", "--max-seconds", "200").ready()
    banks.start("buyer", "--max-seconds", "200").ready()
    asked = _ask_quote(banks, "buyer", "--security", "evm-a:BOND", "--amount", "4", "--side", "buy",
                       "--cash", "btc:BTC", "--cash", "evm-b:EUR")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    quote_id = re.fullmatch(r"quote (\w+) from seller: .*", asked.stdout.strip()).group(1)
    assert (
        "seller sells 4 BOND on evm-a to buyer for 10000 EUR on evm-b (price 2500 a unit); firm until "
    ) in asked.stdout, asked.stdout
    assert f"dvp agent propose --quote {quote_id} " in asked.stdout
    proposed = dvp(["agent", "propose", "--quote", quote_id, str(banks.folders["buyer"])], banks.env)
    assert proposed.returncode == 0, proposed.stderr
    assert f"proposed swap {quote_id};" in proposed.stdout, proposed.stdout

    async def off_the_quote() -> dict[str, object]:
        request = QuoteRequest(security="evm-a:BOND", cash=["evm-b:EUR"], amount=2, side="buy")
        async with buyer_agent(banks, party="issuer") as (issuer, _net):
            expired_id, quoted = await issuer.request_quote("seller", request)
            await asyncio.sleep(2.5)
            with pytest.raises(errors.ConfigError, match=f"quote: {expired_id} from 'seller' expired"):
                await issuer.propose_on_quote(expired_id)
            assert issuer.journal.get(expired_id) is None
            await issuer.propose(quoted, swap_id=expired_id)  # its own agent's check skipped
            other_id, quoted = await issuer.request_quote("seller", request)
            cheaper = quoted.trade.cash.model_copy(update={"amount": quoted.trade.cash.amount - 1})
            await issuer.propose(quoted.model_copy(update={"trade": quoted.trade.model_copy(update={"cash": cheaper})}),
                                 swap_id=other_id)  # fmt: skip
            results = await asyncio.wait_for(asyncio.gather(issuer.tasks[expired_id], issuer.tasks[other_id]), 60)
            return {expired_id: results[0], other_id: results[1]}

    (expired_id, expired), (other_id, other) = run_async(off_the_quote()).items()
    assert expired.outcome.value == "aborted" and "the quote it takes up has expired" in expired.detail, expired
    assert other.outcome.value == "aborted" and "the proposal is not on the quoted terms" in other.detail, other
    for bank in ("buyer", "seller"):
        record = banks.outcome(bank, quote_id, timeout=120)
        assert record.outcome == "settled", (bank, record.detail)
    assert sorted(banks.swap_ids("seller")) == [quote_id]  # nothing of the issuer's refused proposals
    assert _moved(banks, before, [quote_id]) == {
        ("evm-a", "BOND", "seller"): -4,
        ("evm-a", "BOND", "buyer"): 4,
        ("evm-b", "EUR", "seller"): 10_000,
        ("evm-b", "EUR", "buyer"): -10_000,
    }
    # Bad input, one line each: a quote proposed on already, the request's fields, a peer not
    # pinned, a pair the seller does not price (its REJECT: exit 8), no scenario and no quote.
    again = dvp(["agent", "propose", "--quote", quote_id, str(banks.folders["buyer"])], banks.env)
    one_line_error(again, 2, f"quote: no quote '{quote_id}' held by 'buyer'")
    ask = ("--security", "evm-a:BOND", "--amount", "2", "--side", "buy", "--cash", "evm-b:EUR")
    one_line_error(_ask_quote(banks, "buyer", *ask[:2], "--amount", "2x", *ask[4:]), 2, "amount: expected a whole")
    one_line_error(_ask_quote(banks, "buyer", "--security", "BOND", *ask[2:]), 2, "security: String should match")
    one_line_error(
        dvp(["agent", "quote", str(banks.folders["buyer"]), "--peer", "nobody", *ask], banks.env),
        2,
        "peer: 'nobody' is not pinned",
    )
    one_line_error(
        _ask_quote(banks, "buyer", *ask[:6], "--cash", "btc:BTC"),
        8,
        "seller gave no quote: no quote: no price for evm-a:BOND against btc:BTC",
    )
    one_line_error(dvp(["agent", "propose", "--party", "buyer"], banks.env), 2, "scenario: give a scenario file")


def test_the_demo_agents_trade_under_the_policy_dvp_agent_init_writes(run_dir):
    """`make demo`'s two agents, as it sets them up (no dev policy: what `dvp agent init` wrote,
    a policy that lists the party's holdings), settle the demo's cross-ledger swap."""
    settings = Settings(run_dir=run_dir)
    runs = run_two_agents(settings, demo_cross_ledger("evm-a", "evm-b"), lambda message: None)
    assert [(r.party, r.result.outcome.value) for r in runs] == [("seller", "settled"), ("buyer", "settled")], [
        r.result.detail for r in runs
    ]
    for party in ("seller", "buyer"):
        policy = load_config(run_dir / "demo-agents" / party).policy
        assert "*" not in policy.max_send and not policy.fast_forward and policy.reaction_window == 30
