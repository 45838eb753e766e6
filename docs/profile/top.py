"""The top entries of a py-spy profile in its raw (collapsed stacks) form.

    python docs/profile/top.py PROFILE.txt [N] [--rate HZ] > TOP.txt

Samples are on-CPU stacks of every thread; the report rendering at the end of a bench run
(``render_all``) is left out, so the shares are those of the swaps.  Self: the frame that was
running; inclusive: every sample with the frame on its stack (project and library frames).

py-spy's raw form is one line per distinct stack, ``frame;frame;...;frame COUNT``, outermost
frame first, each frame ``function (file:line)``; :func:`read_stacks` reads it (flame.py too),
line numbers dropped, so a function's samples add up whatever line they were on; py-spy's
line without frames (`` COUNT``: a thread on CPU outside any Python frame) is ``NO_FRAME``.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from collections.abc import Iterable

SKIP = ("<module>", "click/", "asyncio/runners", "asyncio/base_events.py", "asyncio/events.py", "cli.py")
LEFT_OUT = "render_all"
NO_FRAME = "(no Python frame)"
_LINE = re.compile(r":\d+\)$")
_PROCESS = re.compile(r'process \d+:".*"$')

Stacks = collections.Counter[tuple[str, ...]]


def read_stacks(lines: Iterable[str]) -> Stacks:
    """Samples per stack (outermost frame first, line numbers dropped) from py-spy's raw lines;
    blank lines are skipped, any other line without a count raises ValueError naming it."""
    stacks: Stacks = collections.Counter()
    for number, line in enumerate(lines, 1):
        text = line.rstrip()
        if not text:
            continue
        stack, sep, n = text.rpartition(" ")
        if not sep or not n.isdigit():
            raise ValueError(f"line {number}: not py-spy's raw form 'frame;frame;... COUNT': {text[:80]!r}")
        if not stack.strip():  # py-spy's line for samples of a thread on CPU without a Python frame
            stacks[(NO_FRAME,)] += int(n)
            continue
        stacks[tuple(_LINE.sub(")", x.strip()) for x in stack.split(";"))] += int(n)
    return stacks


def _skipped(frame: str) -> bool:
    """A frame every sample of a bench run has (and py-spy's ``process PID:"command"`` roots of
    ``--subprocesses``), left out of the inclusive list."""
    return any(s in frame for s in SKIP) or bool(_PROCESS.match(frame))


def top(stacks: Stacks, k: int = 25, rate: int = 50) -> str:
    """The text top.py prints: the sample count, then the k frames with most samples self and
    the k with most samples inclusive (leaving out the frames every bench run has, ``SKIP``)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = left_out = 0
    for frames, n in stacks.items():
        if any(LEFT_OUT in frame for frame in frames):
            left_out += n
            continue
        total += n
        own[frames[-1]] += n
        for frame in dict.fromkeys(frames):  # once per sample, in stack order (ties stay in order)
            inclusive[frame] += n
    out = [f"{total} samples at {rate} Hz, on CPU ({left_out} of the report rendering left out)", "", "self:"]
    share = 100 / total if total else 0.0
    out += [f"  {share * n:5.1f}%  {frame}" for frame, n in own.most_common(k)]
    out += ["", "inclusive:"]
    shown = [(f, n) for f, n in inclusive.most_common() if not _skipped(f)][:k]
    out += [f"  {share * n:5.1f}%  {frame}" for frame, n in shown]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="The top entries of a py-spy profile (raw form).")
    parser.add_argument("profile", help="py-spy's raw output (collapsed stacks)")
    parser.add_argument("n", nargs="?", type=int, default=25, help="entries in each list (25)")
    parser.add_argument("--rate", type=int, default=50, help="the rate it was sampled at, in Hz (50)")
    args = parser.parse_args(argv)
    with open(args.profile) as f:
        sys.stdout.write(top(read_stacks(f), args.n, args.rate))


if __name__ == "__main__":
    main(sys.argv[1:])
