"""Draw docs/swap-states.png, the cross-ledger HTLC swap's state machine of docs/design.md.

    .venv/bin/python docs/swap_states.py      # matplotlib comes with the bench extra

The picture is laid out by hand (no graph layout tool to install): the happy path runs down
the middle, each step coloured by the party that takes it; every way out on the right ends in
refunds after expiry, or in the one outcome where a party loses its principal.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch  # noqa: E402

OUT = Path(__file__).with_name("swap-states.png")

HOLDER = "#cfe2f3"  # the secret holder's steps
COUNTER = "#fde2c4"  # the counterparty's steps
BOTH = "#eeeeee"  # the driver's bookkeeping
GOOD = "#b7e1b0"
REFUND = "#fff2a8"
LOSS = "#f4b6b6"

W, H = 3.3, 0.62  # node size in axis units

# name: (x, y, label, colour); the happy path at x = 2.6
NODES = {
    "created": (2.6, 11.0, "swap created\nsecret and hashlock journaled", BOTH),
    "lock_h": (2.6, 9.8, "lock the holder's leg\n(expires last)", HOLDER),
    "audit_h": (2.6, 8.6, "audit it on its ledger\n(terms, code, finality)", COUNTER),
    "lock_c": (2.6, 7.4, "lock the counter leg\n(expiry = holder's - planned gap)", COUNTER),
    "audit_c": (2.6, 6.2, "audit it on its ledger\n(terms, code, finality)", HOLDER),
    "claim_c": (2.6, 5.0, "claim the counter leg, margin left:\nREVEALS THE SECRET", HOLDER),
    "extract": (2.6, 3.8, "read the secret\nfrom the counter ledger", COUNTER),
    "claim_h": (2.6, 2.6, "claim the holder's leg\nwith the secret", COUNTER),
    "settled": (2.6, 1.2, "SETTLED\nboth legs claimed", GOOD),
    "unwind": (8.2, 7.4, "unwinding\n(first cause journaled)", BOTH),
    "refund": (8.2, 5.6, "refund each open lock\nafter its expiry, to its sender", BOTH),
    "refunded": (6.4, 3.8, "REFUNDED\nnothing changed hands", REFUND),
    "aborted": (10.1, 3.8, "ABORTED\nnothing was locked", REFUND),
    "late": (8.2, 2.6, "holder refunds its own leg\nafter its expiry", HOLDER),
    "loss": (8.2, 1.2, "PRINCIPAL LOSS\nof the counterparty", LOSS),
}

# (from, to, label, route): "v" straight down, "s" down and aside (from a box to one beside the next)
EDGES = [
    ("created", "lock_h", "", "v"),
    ("lock_h", "audit_h", "final", "v"),
    ("audit_h", "lock_c", "terms agree", "v"),
    ("lock_c", "audit_c", "final", "v"),
    ("audit_c", "claim_c", "terms agree", "v"),
    ("claim_c", "extract", "the secret is public on that ledger", "v"),
    ("extract", "claim_h", "", "v"),
    ("claim_h", "settled", "before the holder's expiry", "v"),
    ("unwind", "refund", "", "v"),
    ("refund", "refunded", "a lock existed", "s"),
    ("refund", "aborted", "none did", "s"),
    ("late", "loss", "", "v"),
]

# Ways out of the happy path, into "unwind" (label on the left of the arrow's end).
EXITS = [
    ("lock_h", "lock refused by the ledger"),
    ("audit_h", "audit fails"),
    ("lock_c", "refused, never made,\nor too late"),
    ("audit_c", "audit fails"),
    ("claim_c", "inside the safety margin:\nthe secret is never revealed"),
]


def box(ax, x: float, y: float, label: str, colour: str) -> None:
    ax.add_patch(FancyBboxPatch((x - W / 2, y - H / 2), W, H, boxstyle="round,pad=0.05,rounding_size=0.12",
                                facecolor=colour, edgecolor="#444444", linewidth=1.0))
    bold = label.split("\n")[0].isupper()
    ax.text(x, y, label, ha="center", va="center", fontsize=8.6, weight="bold" if bold else "normal")


def arrow(ax, start: tuple[float, float], end: tuple[float, float], colour: str = "#333333",
          style: str = "arc3,rad=0", dashed: bool = False) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=11, color=colour, linewidth=1.0,
                                 connectionstyle=style, linestyle="--" if dashed else "-", shrinkA=0, shrinkB=0))


def draw() -> None:
    fig, ax = plt.subplots(figsize=(11.5, 9.6))
    ax.set_xlim(-0.6, 12.2)
    ax.set_ylim(-0.4, 12.2)
    ax.axis("off")
    ax.text(-0.4, 11.95, "A cross-ledger HTLC swap, the secret holder locking first", fontsize=12, weight="bold")
    for x, y, label, colour in NODES.values():
        box(ax, x, y, label, colour)
    for a, b, label, route in EDGES:
        (xa, ya, *_), (xb, yb, *_) = NODES[a], NODES[b]
        if route == "s":
            start, end = (xa + (0.8 if xb > xa else -0.8), ya - H / 2 - 0.05), (xb, yb + H / 2 + 0.05)
        else:
            start, end = (xa, ya - H / 2 - 0.05), (xb, yb + H / 2 + 0.05)
        arrow(ax, start, end)
        if label:
            ax.text((start[0] + end[0]) / 2 + 0.12, (start[1] + end[1]) / 2, label, fontsize=7.6, va="center",
                    color="#333333", style="italic")
    ux, uy, *_ = NODES["unwind"]
    for i, (name, label) in enumerate(EXITS):
        x, y, *_ = NODES[name]
        start = (x + W / 2 + 0.05, y)
        end = (ux - W / 2 - 0.05, uy + 0.22 - 0.11 * i)
        arrow(ax, start, end, colour="#a04040", style=f"arc3,rad={0.12 if y > uy else -0.12 if y < uy else 0}")
        ax.text(x + W / 2 + 0.15, y + 0.16, label, fontsize=7.4, va="bottom", color="#a04040")
    # After the reveal: the counterparty's claim comes too late.
    x, y, *_ = NODES["claim_h"]
    lx, ly, *_ = NODES["late"]
    arrow(ax, (x + W / 2 + 0.05, y), (lx - W / 2 - 0.05, ly), colour="#a04040")
    ax.text(x + W / 2 + 0.15, y + 0.08, "not made before the\nholder's leg expired", fontsize=7.4, va="bottom",
            color="#a04040")
    # The first lock never made it: nothing to refund.
    x, y, *_ = NODES["lock_h"]
    ax.text(x - W / 2 - 0.1, y, "too late to lock:\nABORTED", fontsize=7.4, ha="right", va="center", color="#a04040")
    notes = (
        "Every step writes journal rows: intent, then submitted and final per transaction, then result.\n"
        "A resumed driver reads the journal and the ledger before it sends anything again.\n"
        "The outcome is checked against what the ledgers show for every lock the journal knows."
    )
    ax.text(-0.4, -0.35, notes, fontsize=7.8, va="bottom", color="#333333")
    ax.legend(handles=[Patch(facecolor=HOLDER, edgecolor="#444444", label="secret holder acts"),
                       Patch(facecolor=COUNTER, edgecolor="#444444", label="counterparty acts"),
                       Patch(facecolor=BOTH, edgecolor="#444444", label="the driver (journal, both sides)")],
              loc="upper right", fontsize=8, frameon=False)
    fig.savefig(OUT, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


if __name__ == "__main__":
    draw()
    print(OUT)
