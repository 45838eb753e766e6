"""`dvp bench` on the session testbed: a small run (2 swaps per pair, concurrency 2)
produces JSON, HTML and PNG that are complete and consistent with each other and with
the bench journal.  No timing thresholds."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dvp.journal import Journal

from ..testbed import FABRIC

DVP = str(Path(sys.executable).parent / "dvp")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SWAPS, K, REFUNDS = 2, 2, 1
# Every kind of pair once: Fabric's refunds wait for real expiry, so not every Fabric pair.
PAIRS = ["evm-a", "evm-b", "evm-a/evm-b", "evm-a/btc", "evm-b/btc", *(["fabric-a", "fabric-a/evm-b"] if FABRIC else [])]


def dvp(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([DVP, *args], env=env, capture_output=True, text=True, timeout=480)


@pytest.fixture(scope="module")
def bench_out(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "DVP_RUN_DIR": str(run_dir), "COLUMNS": "200"}
    result = dvp(
        [
            "bench",
            "--swaps",
            str(SWAPS),
            "--concurrency",
            str(K),
            "--refunds",
            str(REFUNDS),
            "--pairs",
            ",".join(PAIRS),
            "--throughput-txs",
            "6",
            "--baseline-samples",
            "2",
            "--swap-timeout",
            "120",
            "--out",
            str(out),
        ],
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if not FABRIC:  # a platform installed but without a ledger in this run is named with its reason
        assert "fabric: not measured: " in result.stdout
    # the testnets were already up: bench must leave them running
    assert (Path(run_dir) / "state.json").exists()
    return out


@pytest.fixture(scope="module")
def run(bench_out) -> dict:
    return json.loads((bench_out / "results.json").read_text())


def test_every_pair_of_the_testbed_is_measured(run):
    ids = {p["id"] for p in run["pairs"]}
    assert set(PAIRS) == ids
    assert run["schema"] == "dvp-bench/1"
    for key in ("platform", "python", "cpus", "at"):
        assert run["machine"][key]
    assert run["config"]["swaps"] == SWAPS and run["config"]["concurrency"] == K
    measured = {run["ledgers"][n]["kind"] for n in run["baselines"]}
    assert {"ethereum", "utxo"} <= measured
    assert {r["platform"] for r in run["platforms"]} == measured | set(run["not_measured"])
    fabric = next(r for r in run["platforms"] if r["platform"] == "fabric")
    if FABRIC:  # its baseline reports the batch timeout and both Gateway clients on the same network
        assert fabric["fee_unit"] == "none" and "orderer BatchTimeout 100 ms" in fabric["note"]
        clients = run["baselines"]["fabric-a"]["throughput"]["clients"]
        assert clients["python_tps"] > 0 and clients["node_tps"] > 0 and "ratio" in fabric["note"]
    else:
        assert "fabric" in run["not_measured"] and run["not_measured"]["fabric"].startswith("not measured: ")
        assert fabric["note"] == run["not_measured"]["fabric"]


def test_every_swap_ends_settled_or_refunded(run):
    for p in run["pairs"]:
        assert p["stuck"] == []
        assert len(p["swaps"]) == SWAPS == p["summary"]["swaps"]
        assert p["summary"]["outcomes"] == {"settled": SWAPS}
        if p["kind"] == "htlc":
            assert [s["outcome"] for s in p["refunds"]] == ["refunded"] * REFUNDS
            assert p["refund_summary"]["refund"]["unwind_seconds"]["n"] == REFUNDS
        else:
            assert p["refunds"] == []


def test_figures_are_internally_consistent(run):
    for p in run["pairs"]:
        swaps = p["swaps"] + p["refunds"]
        for s in swaps:
            steps = s["steps"]
            assert s["total_seconds"] == pytest.approx(sum(e["seconds"] for e in steps) + s["orchestration_seconds"])
            assert s["total_seconds"] == pytest.approx(sum(e["seconds"] + e["gap_before"] for e in steps))
            assert s["total_seconds"] == pytest.approx(steps[-1]["end"])
            # A step may send several transactions (an ERC-20 approve, then the lock).
            assert (
                s["transactions"] == sum(e["transactions"] for e in steps) == sum(s["transactions_by_ledger"].values())
            )
            assert s["transactions"] >= sum(1 for e in steps if e["tx_id"])
            assert s["transactions"] == sum(v["transactions"] for v in s["parties"].values())
            assert sum(v["steps"] for v in s["parties"].values()) == len(steps)
            for ledger, fee in s["fees"].items():
                assert fee["fee"] == sum(e["fee"] or 0 for e in steps if e["ledger"] == ledger)
                assert fee["unit"] == run["ledgers"][ledger]["fee_unit"] and fee["unit"] in ("wei", "sat", "none")
            for e in steps:
                if e["finality_seconds"] is not None:
                    assert e["submit_seconds"] + e["finality_seconds"] == pytest.approx(e["seconds"])
        s = p["summary"]
        totals = [x["total_seconds"] for x in p["swaps"]]
        assert s["latency"]["n"] == len(totals)
        assert s["latency"]["mean"] == pytest.approx(sum(totals) / len(totals))
        assert s["transactions_per_swap"] == pytest.approx(sum(x["transactions"] for x in p["swaps"]) / len(p["swaps"]))
        t = p["throughput"]
        assert t["ratio"] == pytest.approx(t["swaps_per_second"] / t["bound"])
        assert t["bound"] == min(t["bounds"].values())
        assert p["overhead"]["ratio"] == pytest.approx(s["latency"]["mean"] / p["overhead"]["confirmations_seconds"])
        if p["kind"] == "htlc":
            happy = p["swaps"][0]
            assert [e["phase"] for e in happy["steps"]] == [
                "lock",
                "audit",
                "counter-lock",
                "counter-audit",
                "claim",
                "extract secret",
                "second claim",
            ]
            assert set(happy["liquidity"]) == {"security", "cash"}
            assert happy["principal_risk"]["window_seconds"] > happy["principal_risk"]["second_claim_seconds"] > 0
        else:
            assert [e["phase"] for e in p["swaps"][0]["steps"]] == ["propose", "settle"]
    mem = run["memory"]
    assert mem["swaps"] == len(mem["samples"]) == SWAPS * len(run["pairs"])
    assert mem["peak_rss_kib"] >= max(kib for _, kib in mem["samples"]) > 0
    for b in run["baselines"].values():
        assert len(b["confirmation_samples"]) == b["confirmation"]["n"] == 2
        assert b["throughput"]["tps"] == pytest.approx(b["throughput"]["transactions"] / b["throughput"]["seconds"])
    # the chain's own capacity (pre-signed; raw JSON-RPC batches on EVM and btcd, envelopes to the orderer on Fabric): every one mined
    capacity = {l for l, b in run["baselines"].items() if b["capacity"]}
    assert capacity == {
        l for l in run["baselines"] if run["ledgers"][l]["kind"] in ("ethereum", "geth", "utxo", "fabric")
    }
    for l in capacity:
        c = run["baselines"][l]["capacity"]
        assert c["transactions"] == run["baselines"][l]["throughput"]["transactions"] and c["in_flight"] == K
        assert c["tps"] == pytest.approx(c["transactions"] / c["seconds"]) and 0 < c["per_block_max"] <= K
    for p in run["pairs"]:
        c = p["capacity_throughput"]
        if {p["security"], p["cash"]} <= capacity:
            assert c["ratio"] == pytest.approx(p["throughput"]["swaps_per_second"] / c["bound"])
        else:
            assert c is None
    pairs = {p["id"] for p in run["pairs"]}
    assert {t["pair"] for t in run["targets"] if t["pair"]} == pairs


def test_figures_match_the_bench_journal(run, bench_out):
    journal = Journal(bench_out / "bench-journal.sqlite")
    try:
        records = {r.id: r for r in journal.swaps()}
        swaps = [s for p in run["pairs"] for s in p["swaps"] + p["refunds"]]
        assert len(records) == len(swaps)
        for s in swaps:
            assert records[s["swap_id"]].outcome == s["outcome"]
            results = [x for x in journal.steps(s["swap_id"]) if x.phase == "result"]
            assert [x.step for x in results] == [e["step"] for e in s["steps"]]
            assert [x.tx_id for x in results] == [e["tx_id"] for e in s["steps"]]
    finally:
        journal.close()


def test_html_and_png_are_complete(bench_out, run):
    for name in ("timeline", "latency", "liquidity", "platforms", "bench"):
        data = (bench_out / f"{name}.png").read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    page = (bench_out / "report.html").read_text()
    for heading in (
        "Raw baselines",
        "DvP per pair",
        "Targets",
        "Platforms side by side",
        "Timeline per swap",
        "Latency per pair",
        "Liquidity locked",
        "Machine and config",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("data:image/png;base64,") == 3
    assert ("orderer BatchTimeout 100 ms" if FABRIC else "fabric: not measured: ") in page
    for p in run["pairs"]:
        assert f"<td>{p['id']}</td>" in page
    # Fees as a reader counts them (gwei on EVM, from the adapter's fee_display), raw wei in results.json.
    assert run["ledgers"]["evm-a"]["fee_display_unit"] == "gwei" and " gwei" in page and " wei" not in page
    assert "{" not in page.split("<h2>Machine and config</h2>")[1]  # small tables, not JSON dicts
    # Every pair's legs are valued at the trade's price: one currency per pair.
    for p in run["pairs"]:
        legs = p["summary"]["liquidity"]
        assert (set(legs) == {"security", "cash"}) == (p["kind"] == "htlc")
        for leg in legs.values():
            assert leg["value_asset"] == p["swaps"][0]["cash"]["asset"]
            assert leg["value_seconds"]["mean"] == pytest.approx(
                leg["seconds"]["mean"] * p["swaps"][0]["cash"]["amount"]
            )


# -- report.html in a real headless browser ---------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT = 60.0


async def _open_in_chromium(page: Path, profile: Path) -> dict:
    """Load ``page`` in headless Chromium over the DevTools protocol (127.0.0.1 only): every
    console error, uncaught exception and error log entry, and each image's load state."""
    import websockets

    log = (profile.parent / "chromium.log").open("w")
    proc = subprocess.Popen(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1400,1000",
            "about:blank",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + PAGE_TIMEOUT
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert proc.poll() is None, (
                f"chromium exited {proc.returncode}: {(profile.parent / 'chromium.log').read_text()[-2000:]}"
            )
            assert time.monotonic() < deadline, "chromium wrote no DevToolsActivePort"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.loads(r.read()) if t["type"] == "page")
        errors: list[str] = []
        async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
            ids = iter(range(1, 1000))

            async def call(method: str, **params) -> dict:
                n = next(ids)
                await ws.send(json.dumps({"id": n, "method": method, "params": params}))
                async with asyncio.timeout(PAGE_TIMEOUT):
                    while True:
                        msg = json.loads(await ws.recv())
                        if msg.get("id") == n:
                            assert "error" not in msg, msg
                            return msg["result"]
                        note(msg)

            loaded = asyncio.Event()

            def note(msg: dict) -> None:
                method, params = msg.get("method"), msg.get("params", {})
                if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                    errors.append(f"console.{params['type']}: {params['args']}")
                elif method == "Runtime.exceptionThrown":
                    errors.append(f"exception: {params['exceptionDetails']}")
                elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                    errors.append(f"log: {params['entry']['text']}")
                elif method == "Page.loadEventFired":
                    loaded.set()

            for domain in ("Page", "Runtime", "Log"):
                await call(f"{domain}.enable")
            await call("Page.navigate", url=page.resolve().as_uri())
            async with asyncio.timeout(PAGE_TIMEOUT):
                while not loaded.is_set():
                    note(json.loads(await ws.recv()))
            state = await call(
                "Runtime.evaluate",
                returnByValue=True,
                expression=(
                    "({title: document.title, h1: document.querySelector('h1').textContent,"
                    " height: document.body.scrollHeight,"
                    " h2: Array.from(document.querySelectorAll('h2'), h => h.textContent),"
                    " images: Array.from(document.images, i => ({alt: i.alt, complete: i.complete,"
                    " width: i.naturalWidth, height: i.naturalHeight}))})"
                ),
            )
            shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return {**state["result"]["value"], "errors": errors, "screenshot": shot["data"]}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="no chromium here: `apt-get install -y chromium` (Debian) to open report.html in a browser",
)
def test_report_opens_in_a_headless_browser(bench_out, tmp_path):
    import base64

    shown = asyncio.run(_open_in_chromium(bench_out / "report.html", tmp_path / "profile"))
    (tmp_path / "report.png").write_bytes(base64.b64decode(shown["screenshot"]))
    assert shown["errors"] == []
    assert shown["title"] == "dvp bench" and shown["h1"].startswith("dvp bench") and shown["height"] > 1000
    # The comparison and the charts first; machine and config last.
    assert shown["h2"][:4] == ["Platforms side by side", "Timeline per swap", "Latency per pair", "Liquidity locked"]
    assert shown["h2"][-1] == "Machine and config"
    assert [i["alt"] for i in shown["images"]] == ["timeline", "latency", "liquidity"]
    for image in shown["images"]:  # decoded: a broken image has no natural size
        assert image["complete"] and image["width"] > 300 and image["height"] > 200, image
    assert (tmp_path / "report.png").read_bytes().startswith(PNG_MAGIC)


def test_report_rerenders_and_compares(bench_out, run, tmp_path):
    env = dict(os.environ)
    again = dvp(["report", str(bench_out / "results.json"), "--out", str(tmp_path / "again")], env)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "report.html").exists() and (tmp_path / "again" / "bench.png").exists()
    both = dvp(
        ["report", str(bench_out / "results.json"), str(bench_out / "results.json"), "--out", str(tmp_path / "cmp")],
        env,
    )
    assert both.returncode == 0, both.stderr
    assert (tmp_path / "cmp" / "compare.html").exists()
    assert (tmp_path / "cmp" / "compare.png").read_bytes().startswith(PNG_MAGIC)
    bad = dvp(["report", str(tmp_path / "cmp" / "compare.html")], env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: results.json:")
    # --by-k: this run beside the same figures read as a K=4 run; every pair in both, in one table.
    saved = json.loads((bench_out / "results.json").read_text())
    saved["config"]["concurrency"] = 4
    for p in saved["pairs"]:
        p["concurrency"] = 4
    (tmp_path / "k4.json").write_text(json.dumps(saved))
    by_k = dvp(
        ["report", "--by-k", str(bench_out / "results.json"), str(tmp_path / "k4.json"), "--out", str(tmp_path / "k")],
        env,
    )
    assert by_k.returncode == 0, by_k.stderr
    table = (tmp_path / "k" / "targets.md").read_text()
    for p in run["pairs"]:
        for k in (K, 4):
            assert f"| {k} | {p['id']} | swaps/s of the chain-capacity bound |" in table
    assert (tmp_path / "k" / "scaling.png").read_bytes().startswith(PNG_MAGIC)


# -- `dvp bench --agents 3`: the same pair's swaps between the seller bank's agent and two buyer banks' --

AGENT_PAIR, AGENT_SWAPS = "evm-a/evm-b", 2
BANKS = ("seller", "buyer", "issuer")  # the seller bank and its two buyer banks, a swap with each


@pytest.fixture(scope="module")
def agents_out(run_dir, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bench-agents")
    env = {**os.environ, "DVP_RUN_DIR": str(run_dir), "COLUMNS": "250"}
    result = dvp(
        [
            "bench",
            "--agents",
            "3",
            "--swaps",
            str(AGENT_SWAPS),
            "--concurrency",
            "2",
            "--refunds",
            "0",
            "--pairs",
            AGENT_PAIR,
            "--throughput-txs",
            "4",
            "--baseline-samples",
            "1",
            "--swap-timeout",
            "120",
            "--out",
            str(out),
        ],
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_agents_settle_each_swap_and_count_messages_from_their_journals(agents_out):
    out, stdout = agents_out
    run = json.loads((out / "results.json").read_text())
    [pair] = run["pairs"]
    agents = pair["agents"]
    assert run["agents"]["channel"].startswith("grpc") and agents["channel"] == run["agents"]["channel"]
    assert run["agents"]["parties"] == list(BANKS) and agents["buyers"] == ["buyer", "issuer"]
    assert run["agents"]["limits"]["unfinished_swaps"] >= 2
    assert agents["stuck"] == [] and len(agents["swaps"]) == AGENT_SWAPS
    # Both swaps at once, one with each buyer bank: the seller's agent served both.
    assert sorted(next(p for p in s["parties"] if p != "seller") for s in agents["swaps"]) == ["buyer", "issuer"]
    assert agents["last_step"]["n"] == AGENT_SWAPS and agents["last_step"]["mean"] > 0
    assert pair["summary"]["outcomes"] == {"settled": AGENT_SWAPS}  # the one-process rows, beside them
    journals = {party: Journal(out / "agents" / f"{party}.sqlite") for party in BANKS}
    try:
        totals = {party: {"sent": 0, "received": 0} for party in journals}
        for swap in agents["swaps"]:
            assert swap["error"] is None
            for party, fig in swap["parties"].items():
                journal = journals[party]
                assert journal.get(swap["swap_id"]).outcome == fig["outcome"] == "settled"
                # Each buyer bank's journal holds its own swap only.
                assert {r.id for r in journal.swaps()} <= {s["swap_id"] for s in agents["swaps"]}
                rows = journal.messages(swap["swap_id"])
                sent = sum(1 for r in rows if r["direction"] == "out")
                received = sum(1 for r in rows if r["direction"] == "in")
                assert (fig["messages_sent"], fig["messages_received"]) == (sent, received)
                assert sent > 0 and received > 0
                totals[party]["sent"] += sent
                # The channel also counts what reached the agent and was refused (no journal row).
                totals[party]["received"] += received + fig["messages_refused"]
                finals = [s for s in journal.steps(swap["swap_id"]) if s.phase == "final"]
                assert fig["transactions"] == len({s.tx_id for s in finals}) == 2  # its lock and its claim
                assert sum(f["fee"] for f in fig["fees"].values()) == sum(s.detail["fee"] for s in finals) > 0
                assert fig["locked_seconds"] > 0 and fig["latency_seconds"] > 0
            # The proposal went from the seller to the buyer bank, the acceptance back.
            [buyer] = [p for p in swap["parties"] if p != "seller"]
            assert swap["parties"]["seller"]["messages_by_kind"]["propose"]["sent"] == 1
            assert swap["parties"][buyer]["messages_by_kind"]["accept"]["sent"] == 1
    finally:
        for journal in journals.values():
            journal.close()
    # What the journals show is what the gRPC channel itself counted, per party.
    assert agents["channel_counts"] == totals
    assert agents["channel_check"] == {"checked": True, "matches": True, "mismatches": []}
    met = {t["target"]: t["met"] for t in run["targets"] if t["target"].startswith("agents")}
    assert met["agents: no swap stuck"] and met["agents: journals' messages = channel's count"]
    # Beside one process's, in the same run: swaps/s and latency (met or not, with the figures).
    assert {"agents: swaps/s >= 90% of one process's", "agents: latency <= 110% of one process's"} <= set(met)
    for party, summary in agents["summary"].items():
        assert summary["outcomes"] == {"settled": AGENT_SWAPS if party == "seller" else 1}
        assert (summary["messages_sent"], summary["messages_received"] + summary["messages_refused"]) == (
            totals[party]["sent"],
            totals[party]["received"],
        )
    # Each agent had its own identity, its key private to it.
    for party in BANKS:
        assert (out / "agents" / party / "agent.key").stat().st_mode & 0o077 == 0
    assert "agents per pair" in stdout and "match" in stdout


@pytest.mark.matrix
def test_workers_spread_the_swaps_over_party_pairs(run_dir, pg_url, tmp_path):
    """`dvp bench --workers 2 --party-pairs 2` (issue 20): the swaps go round seller/buyer and
    seller-2/buyer-2 (the EVM testnets' extra dev accounts, funded by the bench), two workers
    drive them; every swap settles and each party pair traded half.  A pair with a ledger
    that has no such accounts (btc) is one line, exit 2."""
    env = {**os.environ, "DVP_RUN_DIR": str(run_dir), "DVP_JOURNAL": pg_url, "COLUMNS": "200"}
    common = [
        "--swaps",
        "4",
        "--concurrency",
        "4",
        "--refunds",
        "0",
        "--throughput-txs",
        "6",
        "--baseline-samples",
        "1",
    ]
    result = dvp(
        ["bench", "--pairs", "evm-a/evm-b", *common, "--workers", "2", "--party-pairs", "2", "--out", str(tmp_path)],
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (pair,) = json.loads((tmp_path / "results.json").read_text())["pairs"]
    assert pair["summary"]["outcomes"] == {"settled": 4}, pair["summary"]["outcomes"]
    assert set(pair["summary"]["parties"]) == {"seller", "buyer", "seller-2", "buyer-2"}, pair["summary"]["parties"]
    refused = dvp(["bench", "--pairs", "evm-a/btc", *common, "--party-pairs", "2", "--out", str(tmp_path / "btc")], env)
    assert refused.returncode == 2 and "party_pairs: ledger 'btc' has no account for 'buyer-2'" in refused.stderr, (
        refused.stderr[-2000:]
    )
