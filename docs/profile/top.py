"""The top entries of a py-spy profile in its raw (collapsed stacks) form.

    python docs/profile/top.py PROFILE.txt [N] > TOP.txt

Samples are on-CPU stacks of every thread; the report rendering at the end of a bench run
(``render_all``) is left out, so the shares are those of the swaps.  Self: the frame that was
running; inclusive: every sample with the frame on its stack (project and library frames).
"""

from __future__ import annotations

import collections
import re
import sys

SKIP = ("<module>", "click/", "asyncio/runners", "asyncio/base_events.py", "asyncio/events.py", "cli.py")


def main(path: str, k: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = left_out = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            if "render_all" in stack:
                left_out += int(n)
                continue
            frames = [re.sub(r":\d+\)$", ")", x.strip()) for x in stack.split(";")]
            total += int(n)
            own[frames[-1]] += int(n)
            for frame in set(frames):
                inclusive[frame] += int(n)
    print(f"{total} samples at 50 Hz, on CPU ({left_out} of the report rendering left out)\n\nself:")
    for frame, n in own.most_common(k):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print("\ninclusive:")
    shown = [(f, n) for f, n in inclusive.most_common() if not any(s in f for s in SKIP)][:k]
    for frame, n in shown:
        print(f"  {100 * n / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25)
