"""Rendering a bench run: rich tables, the JSON file, PNG charts (matplotlib, Agg) and a
self-contained HTML report; and the comparison of two runs."""

from __future__ import annotations

import base64
import html
import json
import textwrap
from pathlib import Path
from typing import Any

from rich.table import Table

from .metrics import one_process_rate

CHARTS = ("timeline", "latency", "liquidity", "platforms")
TIMELINE_SWAPS = 6  # swaps per pair drawn on the timeline chart, fewer when there are many pairs
TIMELINE_ROWS = 40  # about how many swap rows the timeline holds before it draws fewer per pair


def timeline_swaps(run: dict[str, Any]) -> int:
    most = max((len(p["swaps"]) for p in run["pairs"]), default=1)
    return max(1, min(TIMELINE_SWAPS, most, TIMELINE_ROWS // max(1, len(run["pairs"]))))


def _f(v: float | None, fmt: str = ".2f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else (f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}")


def fee_text(value: float, unit: str, display_unit: str | None = None, scale: int = 1) -> str:
    """A fee in the unit a reader counts it in (gwei rather than wei; the adapter's
    ``fee_display``), the raw figure staying in results.json; a ledger without fees says so."""
    if unit == "none":
        return "none"
    if display_unit and scale:
        return f"{_num(value / scale)} {display_unit}"
    return f"{_num(value)} {unit}"


def _ledger_fee(run: dict[str, Any], ledger: str, value: float, unit: str) -> str:
    info = run["ledgers"].get(ledger) or {}
    return fee_text(value, unit, info.get("fee_display_unit"), info.get("fee_display_scale", 1))


def _fees(run: dict[str, Any], fees: dict[str, Any]) -> str:
    return (
        ", ".join(f"{l}: {_ledger_fee(run, l, f['fee_per_swap'], f['unit'])}" for l, f in sorted(fees.items())) or "-"
    )


def liquidity_values(run: dict[str, Any], pair: dict[str, Any]) -> list[dict[str, Any]]:
    """Per leg of an HTLC pair: mean seconds locked and mean value x seconds, every leg valued
    at the trade's price (its cash amount), in the cash asset's currency (EUR, BTC), so the two
    legs of a pair read in one unit.  Runs saved before the value was stored are valued here
    from each swap's cash amount."""
    out = []
    cash_ledger = pair["cash"]
    for leg, l in sorted(pair["summary"]["liquidity"].items()):
        if not l["seconds"]:
            continue
        if l.get("value_seconds"):
            value_seconds, asset = l["value_seconds"]["mean"], l["value_asset"]
        else:
            vals = [
                s["liquidity"][leg]["seconds"] * s["cash"]["amount"]
                for s in pair["swaps"]
                if leg in (s.get("liquidity") or {})
            ]
            if not vals:
                continue
            value_seconds, asset = sum(vals) / len(vals), pair["swaps"][0]["cash"]["asset"]
        decimals = ((run.get("assets") or {}).get(f"{cash_ledger}/{asset}") or {}).get("decimals")
        out.append(
            {
                "leg": leg,
                "asset": l["asset"],
                "seconds": l["seconds"]["mean"],
                "currency": asset if decimals is not None else f"{asset} base units",
                "value_seconds": value_seconds / 10 ** (decimals or 0),
            }
        )
    return out


def pair_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for p in run["pairs"]:
        s = p["summary"]
        lat = s["latency"] or {}
        t = p["throughput"] or {}
        o = p["overhead"] or {}
        rows.append(
            {
                "pair": p["id"],
                "kind": p["kind"],
                "swaps": str(s["swaps"]),
                "outcomes": " ".join(f"{k}:{v}" for k, v in sorted(s["outcomes"].items())),
                "latency mean s": _f(lat.get("mean")),
                "p50 s": _f(lat.get("p50")),
                "p95 s": _f(lat.get("p95")),
                "overhead": _pct(o.get("overhead")),
                "swaps/s": _f(t.get("swaps_per_second"), ".3f"),
                "of bound": _pct(t.get("ratio")),
                "of chain": _pct((p.get("capacity_throughput") or {}).get("ratio")),
                "tx/swap": _f(s["transactions_per_swap"], ".1f"),
                "commits/swap": _f((p.get("journal") or {}).get("commits_per_swap"), ".1f"),
                "fees/swap": _fees(run, s["fees"]),
                "refunds": (
                    f"{p['refund_summary']['swaps']} "
                    f"({_f((p['refund_summary']['refund'] or {}).get('unwind_seconds', {}).get('mean'))}s unwind)"
                )
                if p.get("refund_summary") and p["refund_summary"].get("refund")
                else "-",
                "stuck": str(len(p["stuck"])),
            }
        )
    return rows


def _table(title: str, rows: list[dict[str, str]], caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption)
    if rows:
        for col in rows[0]:
            table.add_column(
                col,
                justify="left"
                if col
                in ("pair", "kind", "outcomes", "fees/swap", "platform", "ledger", "target", "why", "note", "party")
                else "right",
            )
        for r in rows:
            table.add_row(*[str(v) for v in r.values()])
    return table


def baseline_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "ledger": l,
            "kind": run["ledgers"][l]["kind"],
            "confirmation p50 s": _f(b["confirmation"]["p50"]),
            "samples": str(b["confirmation"]["n"]),
            "raw tps": _f(b["throughput"]["tps"], ".1f"),
            "in flight": f"{b['throughput']['transactions']}/{b['throughput']['in_flight']}",
            "chain tps": _f((b.get("capacity") or {}).get("tps"), ".1f"),
        }
        for l, b in sorted(run["baselines"].items())
    ]


def platform_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for p in run["platforms"]:
        fee = p.get("single_ledger_dvp_fee")
        rows.append(
            {
                "platform": p["platform"],
                "ledgers": ", ".join(p["ledgers"]) or "-",
                "confirm s": _f(p.get("confirmation_seconds")),
                "raw tps": _f(p.get("raw_tps"), ".1f"),
                "1-ledger DvP s": _f(p.get("single_ledger_dvp_seconds")),
                "1-ledger tx": _f(p.get("single_ledger_dvp_transactions"), ".0f"),
                "1-ledger fee": "-"
                if fee is None
                else fee_text(fee, p.get("fee_unit", ""), p.get("fee_display_unit"), p.get("fee_display_scale", 1)),
                "HTLC lock s": _f(p.get("htlc_lock_seconds")),
                "HTLC claim s": _f(p.get("htlc_claim_seconds")),
                "note": p.get("note") or "",
            }
        )
    return rows


def target_value(t: dict[str, Any]) -> str:
    """A target row's figure in its unit (a share in %, a ratio as 1.23x, a count as is), and the
    figures behind it."""
    value, unit = t["value"], t.get("unit")
    if value is None:
        return "-"
    if unit == "share":
        text = _pct(value)
    elif unit == "x":
        text = f"{value:.2f}x"
    else:
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        text = f"{shown} {unit}" if unit else shown
    return f"{text} ({t['detail']})" if t.get("detail") else text


def target_met(t: dict[str, Any], words: tuple[str, str, str] = ("yes", "NO", "info")) -> str:
    """Met, missed, or an information row (a figure, no threshold: ``met`` None)."""
    return words[2] if t["met"] is None else words[0] if t["met"] else words[1]


def target_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "pair": t["pair"] or "all",
            "target": t["target"],
            "value": target_value(t),
            "met": target_met(t),
            "why": t["why"] or "",
        }
        for t in run["targets"]
    ]


def memory_line(run: dict[str, Any]) -> str:
    mem = run["memory"]
    trend = mem["trend"]
    text = f"peak RSS {mem['peak_rss_kib'] / 1024:.0f} MiB over {mem['swaps']} swaps"
    if trend:
        text += (
            f"; RSS {trend['first_kib'] / 1024:.0f} -> {trend['last_kib'] / 1024:.0f} MiB, "
            f"slope {trend['slope_kib_per_swap']:.1f} KiB/swap: {'flat' if trend['flat'] else 'GROWING'}"
        )
    return text


TERMINAL_PAIR_COLUMNS = (
    "pair",
    "kind",
    "swaps",
    "latency mean s",
    "p95 s",
    "overhead",
    "swaps/s",
    "of bound",
    "of chain",
    "tx/swap",
    "commits/swap",
    "stuck",
)


def cost_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for p in run["pairs"]:
        s = p["summary"]
        risk = s.get("principal_risk") or {}
        liq = "; ".join(f"{v['leg']} {_num(v['value_seconds'])} {v['currency']}*s" for v in liquidity_values(run, p))
        ref = (p.get("refund_summary") or {}).get("refund") or {}
        rows.append(
            {
                "pair": p["id"],
                "outcomes": " ".join(f"{k}:{v}" for k, v in sorted(s["outcomes"].items())),
                "fees/swap": _fees(run, s["fees"]),
                "liquidity/swap": liq or "-",
                "risk window s": _f((risk.get("window_seconds") or {}).get("mean"), ".0f"),
                "2nd claim s": _f((risk.get("second_claim_seconds") or {}).get("mean")),
                "free option s": _f(((s.get("free_option") or {}).get("seconds") or {}).get("mean")),
                "refund unwind s": _f((ref.get("unwind_seconds") or {}).get("mean")),
            }
        )
    return rows


def agent_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    """Per pair and party, the swaps run between agents (``--agents``), beside the same pair's
    one-process latency and swaps/s; messages are the journals' rows, checked against the channel."""
    rows = []
    for p in run["pairs"]:
        a = p.get("agents")
        if not a:
            continue
        one = (p["summary"].get("latency") or {}).get("mean")
        one_rate = one_process_rate(p)
        counted = a.get("channel_counts") or {}
        check = a["channel_check"]
        for party, v in a["summary"].items():
            c = counted.get(party)
            rows.append(
                {
                    "pair": p["id"],
                    "party": party,
                    "outcomes": " ".join(f"{k}:{n}" for k, n in sorted(v["outcomes"].items())),
                    "latency mean s": _f((v["latency"] or {}).get("mean")),
                    "to last step s": _f((a.get("last_step") or {}).get("mean")),
                    "one process s": _f(one),
                    "swaps/s": _f(a.get("swaps_per_second")),
                    "one process swaps/s": _f(one_rate),
                    "steps/swap": _f(v["steps_per_swap"], ".1f"),
                    "tx/swap": _f(v["transactions_per_swap"], ".1f"),
                    "fees/swap": _fees(run, v["fees"]),
                    "locked mean s": _f((v["locked_seconds"] or {}).get("mean")),
                    "msgs sent/recv": f"{v['messages_sent']}/{v['messages_received']}"
                    + (f" +{v['messages_refused']} refused" if v.get("messages_refused") else ""),
                    "channel sent/recv": f"{c['sent']}/{c['received']}" if c else "-",
                    "check": "-" if not check["checked"] else ("match" if check["matches"] else "MISMATCH"),
                }
            )
    return rows


def agents_caption(run: dict[str, Any]) -> str:
    a = run.get("agents") or {}
    return a.get("note") or f"channel: {a.get('channel')}; refunds: {a.get('refunds')}"


def tables(run: dict[str, Any]) -> list[Table]:
    m = run["machine"]
    caption = f"{m.get('cpu') or m['platform']}, {m['cpus']} cpus, {m.get('memory_gib', '?')} GiB, at {m['at']}"
    pairs = [{k: v for k, v in r.items() if k in TERMINAL_PAIR_COLUMNS} for r in pair_rows(run)]
    targets = [{k: v for k, v in r.items() if k != "why"} for r in target_rows(run)]
    return [
        _table("raw baselines (same client code)", baseline_rows(run)),
        _table(f"DvP bench, concurrency {run['config']['concurrency']}", pairs, caption),
        _table("costs per swap (legs valued at the trade's price)", cost_rows(run)),
        _table("platforms side by side", [{k: v for k, v in r.items() if k != "ledgers"} for r in platform_rows(run)]),
        _table("targets", targets, memory_line(run)),
        *(
            [
                _table(
                    "agents per pair (messages from each journal, checked against the channel)",
                    agent_rows(run),
                    agents_caption(run),
                )
            ]
            if agent_rows(run)
            else []
        ),
    ]


def missed(run: dict[str, Any]) -> list[str]:
    """Why each missed target was missed, one line each."""
    return [
        f"{t['pair'] or 'all'}: {t['target']}: {t['why']}" for t in run["targets"] if t["met"] is False and t["why"]
    ]


def write_json(run: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=1, default=str))
    return path


# -- charts ---------------------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_timeline(ax: Any, run: dict[str, Any]) -> None:
    """Each drawn swap's steps on each ledger, from the swap's start."""
    plt = _plt()
    phases: dict[str, Any] = {}
    cmap = plt.get_cmap("tab10")
    labels = []
    y = 0
    for p in run["pairs"]:
        for s in [s for s in p["swaps"] if "steps" in s][: timeline_swaps(run)]:
            ledgers = sorted({e["ledger"] for e in s["steps"]})
            for ledger in ledgers:
                for e in s["steps"]:
                    if e["ledger"] != ledger:
                        continue
                    color = phases.setdefault(e["phase"], cmap(len(phases) % 10))
                    ax.barh(y, max(e["seconds"], 0.02), left=e["start"], color=color, edgecolor="black", linewidth=0.3)
                    if e["finality_seconds"]:
                        ax.barh(
                            y,
                            e["finality_seconds"],
                            left=e["end"] - e["finality_seconds"],
                            color="none",
                            hatch="///",
                            edgecolor="black",
                            linewidth=0,
                        )
                labels.append(f"{p['id']} {s['swap_id'][-4:]} {ledger}")
                y += 1
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from swap start (hatched: finality wait)")
    n = timeline_swaps(run)
    ax.set_title(
        f"timeline per swap (the first {n} of each pair)" if n > 1 else "timeline per swap (the first of each pair)"
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in phases.values()]
    ax.legend(handles, list(phases), fontsize=6, loc="lower right")


def draw_latency(ax: Any, run: dict[str, Any]) -> None:
    data, labels = [], []
    for p in run["pairs"]:
        vals = [s["total_seconds"] for s in p["swaps"] if "total_seconds" in s]
        if vals:
            data.append(vals)
            labels.append(p["id"])
    if data:
        ax.boxplot(data, tick_labels=labels, showmeans=True)
        for i, vals in enumerate(data, start=1):
            ax.scatter([i] * len(vals), vals, s=6, alpha=0.5, color="tab:blue")
    ax.set_ylabel("end-to-end seconds")
    ax.set_title(f"latency per pair (K={run['config']['concurrency']})")
    ax.tick_params(axis="x", labelsize=7)
    if len(labels) > 6:
        ax.set_xticks(ax.get_xticks(), labels, rotation=50, ha="right", fontsize=6)


def draw_liquidity(ax: Any, run: dict[str, Any]) -> None:
    """Per HTLC pair, both legs' value x seconds locked, each leg valued at the trade's price:
    one panel per currency (EUR, BTC), never two currencies on one axis."""
    plt = _plt()
    by_currency: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for p in run["pairs"]:
        for v in liquidity_values(run, p):
            by_currency.setdefault(v["currency"], {}).setdefault(p["id"], {})[v["leg"]] = v
    ax.axis("off")
    ax.set_title(
        "liquidity locked per swap, each leg valued at the trade's price\n(mean; label: seconds locked)", fontsize=9
    )
    if not by_currency:
        ax.text(0.5, 0.5, "no HTLC pair in this run", ha="center", va="center", transform=ax.transAxes)
        return
    colors = {"security": "tab:blue", "cash": "tab:orange"}
    total = sum(len(pairs) for pairs in by_currency.values())
    gap = 0.16
    top = 1.0
    span = 1.0 - gap * (len(by_currency) - 1)
    for currency, pairs in sorted(by_currency.items()):
        height = span * len(pairs) / total
        sub = ax.inset_axes((0.22, 0.9 * (top - height), 0.72, 0.9 * height))
        top -= height + gap
        ids = list(pairs)
        peak = max(v["value_seconds"] for legs in pairs.values() for v in legs.values())
        for i, leg in enumerate(colors):
            ys = [j + (i - 0.5) * 0.4 for j in range(len(ids))]
            vals = [pairs[pid][leg]["value_seconds"] if leg in pairs[pid] else 0.0 for pid in ids]
            sub.barh(ys, vals, height=0.4, color=colors[leg])
            for y, pid, x in zip(ys, ids, vals):
                if leg in pairs[pid]:
                    sub.annotate(f"{pairs[pid][leg]['seconds']:.1f}s", (x + peak * 0.01, y), va="center", fontsize=5)
        sub.set_yticks(range(len(ids)), ids, fontsize=6)
        sub.invert_yaxis()
        sub.set_xlim(0, peak * 1.15)
        sub.set_xlabel(f"{currency} x seconds", fontsize=7)
        sub.tick_params(axis="x", labelsize=6)
    ax.legend(
        [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()],
        [f"{leg} leg" for leg in colors],
        fontsize=6,
        loc="lower center",
        bbox_to_anchor=(0.58, 0.9),
        ncol=2,
        frameon=False,
    )


def draw_platforms(ax: Any, run: dict[str, Any]) -> None:
    rows = platform_rows(run)
    ax.axis("off")
    cols = [c for c in rows[0] if c != "ledgers"] if rows else []
    cells = [[textwrap.fill(r[c], 90) if c == "note" else r[c] for c in cols] for r in rows]
    widths = [0.35 if c == "note" else 0.65 / max(1, len(cols) - 1) for c in cols]
    tbl = ax.table(cellText=cells, colLabels=cols, colWidths=widths, bbox=(0, 0, 1, 1), cellLoc="center")
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(6)
    units = [1.5] + [1.2 * max(1, max(str(c).count("\n") for c in r) + 1) + 0.4 for r in cells]
    for (row, col), cell in tbl.get_celld().items():
        cell.set_height(units[row] / sum(units))
        if cols[col] == "note":
            cell.set_text_props(ha="left")
            cell.PAD = 0.02
    ax.set_title("platforms side by side")


DRAW = {"timeline": draw_timeline, "latency": draw_latency, "liquidity": draw_liquidity, "platforms": draw_platforms}


def charts(run: dict[str, Any], out: Path) -> dict[str, Path]:
    """One PNG per chart, and bench.png with all four."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    n_rows = sum(min(timeline_swaps(run), len(p["swaps"])) * (1 if p["kind"] == "atomic" else 2) for p in run["pairs"])
    n_htlc = sum(1 for p in run["pairs"] if p["kind"] == "htlc")
    sizes = {
        "timeline": (10, max(3, 0.22 * n_rows + 1.5)),
        "latency": (8, 4),
        "liquidity": (8, max(4, 0.25 * n_htlc + 1.5)),
        "platforms": (12, 1 + 0.45 * len(run["platforms"])),
    }
    paths = {}
    for name in CHARTS:
        fig, ax = plt.subplots(figsize=sizes[name])
        DRAW[name](ax, run)
        fig.tight_layout()
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=110)
        plt.close(fig)
    fig = plt.figure(figsize=(14, 8 + 0.1 * n_rows + 0.12 * n_htlc + 0.3 * len(run["platforms"])))
    grid = fig.add_gridspec(
        3, 2, height_ratios=[2 + 0.05 * n_rows, max(1.2, 0.08 * n_htlc), 0.3 + 0.15 * len(run["platforms"])]
    )
    draw_timeline(fig.add_subplot(grid[0, :]), run)
    draw_latency(fig.add_subplot(grid[1, 0]), run)
    draw_liquidity(fig.add_subplot(grid[1, 1]), run)
    draw_platforms(fig.add_subplot(grid[2, :]), run)
    m = run["machine"]
    fig.suptitle(
        f"dvp bench, K={run['config']['concurrency']}, {m['at']}, {m.get('cpu') or m['platform']}", fontsize=10
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    paths["bench"] = out / "bench.png"
    fig.savefig(paths["bench"], dpi=100)
    plt.close(fig)
    return paths


# -- HTML -----------------------------------------------------------------------------------------


def _html_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{path.stem}" src="data:image/png;base64,{data}">'


def step_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for p in run["pairs"]:
        for phase, v in p["summary"]["phases"].items():
            rows.append(
                {
                    "pair": p["id"],
                    "step": phase,
                    "ledger": v["ledger"] or "",
                    "mean s": _f((v["seconds"] or {}).get("mean")),
                    "p95 s": _f((v["seconds"] or {}).get("p95")),
                    "finality wait s": _f((v["finality_seconds"] or {}).get("mean")),
                }
            )
        s = p["summary"]
        risk = s.get("principal_risk") or {}
        rows.append(
            {
                "pair": p["id"],
                "step": "orchestration (between steps)",
                "ledger": "",
                "mean s": _f((s["orchestration_seconds"] or {}).get("mean")),
                "p95 s": _f((s["orchestration_seconds"] or {}).get("p95")),
                "finality wait s": "",
            }
        )
        if risk:
            rows.append(
                {
                    "pair": p["id"],
                    "step": "principal-risk window / second claim took",
                    "ledger": "",
                    "mean s": f"{_f((risk['window_seconds'] or {}).get('mean'))} / {_f((risk['second_claim_seconds'] or {}).get('mean'))}",
                    "p95 s": "",
                    "finality wait s": "",
                }
            )
    return rows


def party_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "pair": p["id"],
            "party": party,
            "steps/swap": _f(v["steps"], ".1f"),
            "tx/swap": _f(v["transactions"], ".1f"),
            "messages/swap": _f(v["messages"], ".1f"),
        }
        for p in run["pairs"]
        for party, v in sorted(p["summary"]["parties"].items())
    ]


def _kv_table(values: dict[str, Any]) -> str:
    """A small two-column table of a flat dict (lists joined, nothing as '-')."""
    rows = []
    for k, v in values.items():
        text = "-" if v is None or v == [] else (", ".join(map(str, v)) if isinstance(v, list) else str(v))
        rows.append(f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{html.escape(text)}</td></tr>")
    return f"<table class='kv'><tbody>{''.join(rows)}</tbody></table>"


def headline(run: dict[str, Any]) -> str:
    """One line: what was run, when, where."""
    m, c = run["machine"], run["config"]
    return (
        f"K={c['concurrency']}, {c['swaps']} swaps per pair over {len(run['pairs'])} pairs, "
        f"{c['refunds']} refund swaps per cross-ledger pair; {m['at']}, the run took {run['wall_seconds']:.0f} s "
        f"on {m.get('cpu') or m['platform']} ({m['cpus']} cpus, {m.get('memory_gib', '?')} GiB)"
    )


STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}"
    "h2{margin-top:1.6em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;font-size:12px;margin:.4em 0}"
    "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}thead th{background:#f3f3f3}"
    "table.kv th{text-align:left;background:#f7f7f7;font-weight:normal}"
    ".small{font-size:11px;display:inline-block;vertical-align:top;margin-right:2em}"
    ".lead{color:#555}img{max-width:100%}"
)


def write_html(run: dict[str, Any], out: Path, pngs: dict[str, Path]) -> Path:
    """The platform comparison and the charts first, then the tables per pair, the machine
    and the config last, as small tables."""
    notes = "".join(
        f"<p>{html.escape(kind)}: {html.escape(note)}</p>" for kind, note in run.get("not_measured", {}).items()
    )
    sections = [
        ("Platforms side by side", _html_table(platform_rows(run)) + notes),
        ("Timeline per swap", _img(pngs["timeline"])),
        ("Latency per pair", _img(pngs["latency"])),
        ("Liquidity locked", _img(pngs["liquidity"])),
        ("DvP per pair", _html_table(pair_rows(run))),
        ("Targets", _html_table(target_rows(run)) + f"<p>{html.escape(memory_line(run))}</p>"),
        (
            "Costs per swap",
            _html_table(cost_rows(run)) + "<p>Fees in the unit a reader counts them in (raw figures "
            "in results.json); liquidity: each leg valued at the "
            "trade's price (its cash amount) x the seconds it stayed "
            "locked.</p>",
        ),
        ("Raw baselines", _html_table(baseline_rows(run))),
        ("Steps", _html_table(step_rows(run))),
        (
            "Parties",
            _html_table(party_rows(run)) + "<p>messages: transactions sent plus one off-ledger notice per lock"
            " or proposal; the secret travels only on-ledger.</p>",
        ),
        *(
            [("Agents per pair", _html_table(agent_rows(run)) + f"<p>{html.escape(agents_caption(run))}</p>")]
            if run.get("agents")
            else []
        ),
        (
            "Machine and config",
            f"<div class='small'>{_kv_table(run['machine'])}</div>"
            f"<div class='small'>{_kv_table({**run['config'], 'pairs': run['config']['pairs'] or 'every pair'})}</div>",
        ),
    ]
    body = "".join(f"<h2>{html.escape(t)}</h2>{c}" for t, c in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>dvp bench</title><style>{STYLE}</style></head>"
        f"<body><h1>dvp bench: DvP per platform and pair</h1><p class='lead'>{html.escape(headline(run))}</p>"
        f"{body}</body></html>"
    )
    path = out / "report.html"
    path.write_text(page)
    return path


def render_all(run: dict[str, Any], out: Path) -> dict[str, Path]:
    pngs = charts(run, out)
    return {**pngs, "html": write_html(run, out, pngs)}


# -- comparing two runs -----------------------------------------------------------------------------


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, str]]:
    pa = {p["id"]: p for p in a["pairs"]}
    pb = {p["id"]: p for p in b["pairs"]}
    rows = []
    for pid in list(pa) + [p for p in pb if p not in pa]:
        x, y = pa.get(pid), pb.get(pid)

        def lat(p: Any) -> Any:
            return (p["summary"]["latency"] or {}).get("mean") if p else None

        def tps(p: Any) -> Any:
            return (p["throughput"] or {}).get("swaps_per_second") if p else None

        def ovh(p: Any) -> Any:
            return (p["overhead"] or {}).get("overhead") if p else None

        la, lb = lat(x), lat(y)
        rows.append(
            {
                "pair": pid,
                "K A/B": f"{x['concurrency'] if x else '-'}/{y['concurrency'] if y else '-'}",
                "latency A s": _f(la),
                "latency B s": _f(lb),
                "change": _pct((lb - la) / la) if la and lb is not None else "-",
                "swaps/s A": _f(tps(x), ".3f"),
                "swaps/s B": _f(tps(y), ".3f"),
                "overhead A": _pct(ovh(x)),
                "overhead B": _pct(ovh(y)),
            }
        )
    return rows


def compare_table(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str]) -> Table:
    return _table(
        f"A = {names[0]}   B = {names[1]}", compare_rows(a, b), f"A: {a['machine']['at']}  B: {b['machine']['at']}"
    )


def write_compare(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str], out: Path) -> dict[str, Path]:
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    rows = compare_rows(a, b)
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = range(len(rows))
    for i, (col, label) in enumerate((("latency A s", names[0]), ("latency B s", names[1]))):
        vals = [float(r[col]) if r[col] != "-" else 0.0 for r in rows]
        ax.bar([x + i * 0.4 for x in xs], vals, width=0.4, label=label)
    ax.set_xticks([x + 0.2 for x in xs])
    ax.set_xticklabels([r["pair"] for r in rows], fontsize=7)
    ax.set_ylabel("mean end-to-end seconds")
    ax.legend(fontsize=7)
    ax.set_title("latency per pair, two runs")
    fig.tight_layout()
    png = out / "compare.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>dvp bench comparison</title></head><body>"
        f"<h1>dvp bench: {html.escape(names[0])} vs {html.escape(names[1])}</h1>{_html_table(rows)}{_img(png)}</body></html>"
    )
    path = out / "compare.html"
    path.write_text(page)
    return {"compare": png, "html": path}
