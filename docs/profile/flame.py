"""A flame graph (SVG) from a py-spy profile's raw form (collapsed stacks), whole or in part.

    python docs/profile/flame.py STACKS.txt OUT.svg [--title TEXT] [--keep TEXT ...] [--drop TEXT ...] [--kept KEPT.txt]

py-spy draws its own SVG only while it records, and only of every stack; this draws one from the
raw file it wrote, so a profile can be drawn again from its stacks, and drawn from part of them:
``--keep`` keeps the stacks with a frame containing one of the texts (a `dvp bench --agents` run's
agents' stacks: ``--keep dvp/party/ grpc/ dvp_agent/``, see ``AGENTS``), ``--drop`` leaves out those
with a frame containing one of its texts (a bench run's start-up, baselines and report: ``SETUP``),
and ``--kept`` writes the stacks drawn in the same raw form, for top.py.  Several raw files (e.g. one per process) are merged by
giving them all: their samples add up, stack by stack.

The graph: one box per frame, the outermost at the bottom, its width its share of the samples
(inclusive), callees above their caller, siblings in alphabetical order; the project's own frames
(``dvp``, ``dvp_*``) blue, the rest warm.  Hover a box for its function, file, samples and share;
click it to zoom on it (a small script in the SVG; the background resets).
Frames are functions (line numbers dropped, as in top.py).  Standard library only.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from top import Stacks, read_stacks  # beside this file (a script's folder is on sys.path)

# The stacks of a `dvp bench --agents` run's agents (they run in the bench's process, beside its
# one-process swaps): through the two-party protocol, the gRPC channel or dvp_agent.
AGENTS = ("dvp/party/", "grpc/", "dvp_agent/")

# What a bench run does besides its swaps: imports, starting and stopping the testnets, the raw
# baselines and chain capacity, the report; ``--drop`` these for the swaps' own share.
SETUP = ("_find_and_load", "LocalRuntime.", "baselines", "render_all")

WIDTH, PAD, ROW, TOP = 1200, 10, 16, 28
CHAR = 6.6  # px per character of 11 px monospace
MIN_WIDTH = 0.3  # px: narrower boxes are left out (their samples still count in their callers)


@dataclass
class Frame:
    name: str
    samples: int = 0
    callees: dict[str, Frame] = field(default_factory=dict)


def keep(stacks: Stacks, texts: Sequence[str], drop: Sequence[str] = ()) -> Stacks:
    """The stacks with at least one frame containing one of ``texts`` (all of them if none) and
    no frame containing one of ``drop``."""

    def has(frames: tuple[str, ...], some: Sequence[str]) -> bool:
        return any(t in f for f in frames for t in some)

    return type(stacks)({s: n for s, n in stacks.items() if (not texts or has(s, texts)) and not has(s, drop)})


def merge(files: Iterable[Path]) -> Stacks:
    """The samples of several raw files, added up stack by stack."""
    total: Stacks | None = None
    for path in files:
        with open(path) as f:
            stacks = read_stacks(f)
        total = stacks if total is None else total + stacks
    if total is None:
        raise ValueError("no raw file given")
    return total


def write_stacks(stacks: Stacks, path: Path) -> None:
    """``stacks`` in py-spy's raw form (without line numbers), most samples first."""
    with open(path, "w") as f:
        for frames, n in stacks.most_common():
            f.write(f"{';'.join(frames)} {n}\n")


def tree(stacks: Stacks) -> Frame:
    root = Frame("all")
    for frames, n in stacks.items():
        root.samples += n
        node = root
        for name in frames:
            node = node.callees.setdefault(name, Frame(name))
            node.samples += n
    return root


def colour(name: str) -> str:
    h = zlib.crc32(name.encode())
    file = name.rpartition(" (")[2]
    if file.startswith("dvp"):  # the project's own code (dvp, dvp_ethereum, dvp_agent, ...)
        return f"rgb({60 + h % 40},{140 + (h >> 8) % 50},{200 + (h >> 16) % 40})"
    return f"rgb(230,{100 + h % 60},{40 + (h >> 8) % 30})"


# Click a frame to zoom on it (its callers drawn full width below it), the background to reset.
ZOOM = """<script><![CDATA[
var X0 = PAD, W = WIDTH - 2 * PAD, NS = "http://www.w3.org/2000/svg", E = 0.11;
var gs = [].slice.call(document.getElementsByClassName("f"));
function label(g, x, w) {
  var t = g.getElementsByTagName("text")[0], n = Math.floor((w - 6) / CHAR);
  if (!t) {
    if (n < 3) return;
    t = document.createElementNS(NS, "text");
    t.setAttribute("y", g.y + ROW - 5); t.setAttribute("font-size", "11"); t.setAttribute("font-family", "monospace");
    g.appendChild(t);
  }
  t.setAttribute("x", x + 3);
  t.textContent = n < 3 ? "" : (g.n.length <= n ? g.n : g.n.slice(0, n - 2) + "..");
}
function show(g, x, w) { g.style.display = ""; g.r.setAttribute("x", x); g.r.setAttribute("width", w); label(g, x, w); }
function zoom(f) {
  var s = W / f.ow;
  gs.forEach(function (g) {
    if (g.y > f.y && g.ox <= f.ox + E && g.ox + g.ow >= f.ox + f.ow - E) show(g, X0, W);
    else if (g.y <= f.y && g.ox >= f.ox - E && g.ox + g.ow <= f.ox + f.ow + E) show(g, X0 + (g.ox - f.ox) * s, g.ow * s);
    else g.style.display = "none";
  });
}
gs.forEach(function (g) {
  g.r = g.getElementsByTagName("rect")[0];
  g.ox = +g.r.getAttribute("x"); g.ow = +g.r.getAttribute("width"); g.y = +g.r.getAttribute("y");
  g.n = g.getElementsByTagName("title")[0].textContent.replace(/ \\(\\d+ samples, [\\d.]+%\\)$/, "");
  g.onclick = function (e) { zoom(g); e.stopPropagation(); };
});
document.getElementById("background").onclick = function () { gs.forEach(function (g) { show(g, g.ox, g.ow); }); };
]]></script>"""


def render(stacks: Stacks, title: str) -> str:
    """The SVG of ``stacks`` (raises ValueError when there is no sample to draw)."""
    root = tree(stacks)
    if not root.samples:
        raise ValueError("no samples to draw")
    rows = max(len(frames) for frames in stacks)
    height = TOP + rows * ROW + PAD
    scale = (WIDTH - 2 * PAD) / root.samples
    heading = f"{title} ({root.samples} samples; hover a frame for its share, click to zoom)"
    out = [
        '<?xml version="1.0" standalone="no"?>',
        f'<svg version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'xmlns="http://www.w3.org/2000/svg">',
        "<style>g.f { cursor: pointer }</style>",
        '<rect id="background" width="100%" height="100%" fill="#f8f8f0"/>',
        f'<text x="{PAD}" y="16" font-size="13" font-family="sans-serif">{html.escape(heading)}</text>',
    ]

    todo = [(root, float(PAD), 0)]  # a frame, where its callees start, their level (stacks run 300 deep)
    while todo:
        node, x, level = todo.pop()
        for name in sorted(node.callees):
            child = node.callees[name]
            w = child.samples * scale
            if w >= MIN_WIDTH:
                y = height - PAD - (level + 1) * ROW
                label = f"{name} ({child.samples} samples, {100 * child.samples / root.samples:.1f}%)"
                out.append(
                    f'<g class="f"><title>{html.escape(label)}</title>'
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{ROW - 1}" fill="{colour(name)}"/>'
                )
                fits = int((w - 6) / CHAR)
                if fits >= 3:
                    text = name if len(name) <= fits else name[: fits - 2] + ".."
                    out.append(
                        f'<text x="{x + 3:.1f}" y="{y + ROW - 5}" font-size="11" '
                        f'font-family="monospace">{html.escape(text)}</text>'
                    )
                out.append("</g>")
                todo.append((child, x, level + 1))
            x += w

    constants = {"WIDTH": WIDTH, "PAD": PAD, "ROW": ROW, "CHAR": CHAR}
    out.append(re.sub(r"\b(WIDTH|PAD|ROW|CHAR)\b", lambda m: str(constants[m[1]]), ZOOM))
    out.append("</svg>")
    return "".join(out) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="A flame graph (SVG) from py-spy's raw form.")
    parser.add_argument("stacks", nargs="+", type=Path, help="py-spy's raw output (several: merged)")
    parser.add_argument("svg", type=Path, help="the SVG to write")
    parser.add_argument("--title", default="py-spy profile", help="the line above the graph")
    parser.add_argument("--keep", nargs="+", default=[], help="keep the stacks with a frame containing one of these")
    parser.add_argument(
        "--drop", nargs="+", default=[], help="leave out the stacks with a frame containing one of these"
    )
    parser.add_argument("--kept", type=Path, help="also write the stacks drawn, in raw form (for top.py)")
    args = parser.parse_args(argv)
    try:
        stacks = keep(merge(args.stacks), args.keep, args.drop)
        args.svg.write_text(render(stacks, args.title))
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    if args.kept:
        write_stacks(stacks, args.kept)


if __name__ == "__main__":
    main(sys.argv[1:])
