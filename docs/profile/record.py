"""Profile one `dvp bench` run with py-spy and put its flame graph and top entries in docs/profile.

    python docs/profile/record.py NAME [--rate 50] [--keep TEXT ...] [--subprocesses] -- BENCH ARGS...
    make profile PROFILE_NAME=NAME PROFILE_ARGS="BENCH ARGS..."          # the same, py-spy installed first

py-spy (pinned in constraints.txt, beside this interpreter in the venv) runs `dvp bench BENCH ARGS`
and samples it at ``--rate`` Hz, on-CPU stacks of every thread (py-spy's default: no idle
stacks; ``--nonblocking``, the process is not paused for a sample, as for the profiles before
this script), for the whole run; its raw output (collapsed stacks) is kept in a run folder,
``reports/profile/NAME-<UTC time>/`` (``stacks.txt``; with ``--keep`` or ``--drop`` (leave
out the stacks with a frame containing one of its texts: flame.SETUP for the swaps' own share),
also ``kept.txt``, the stacks drawn), with the bench's own results (``bench/``, unless BENCH ARGS give ``--out``)
and ``command.txt`` (the command, the commit, the times).  Then flame.py draws
``docs/profile/NAME.svg`` and top.py writes ``docs/profile/NAME.txt`` from the stacks kept.

With ``--agents`` in BENCH ARGS and no ``--keep``, the agents' stacks are kept (flame.AGENTS): the
agents run inside the bench's process, beside its one-process swaps (``--every-stack``: all of
them drawn).  ``--subprocesses`` makes
py-spy sample the bench's child processes too (``--workers`` runs; the testnets' own Python
helpers when the bench starts them itself), their samples merged into one graph.

Exit codes: 0 done; 1 py-spy or the bench failed (py-spy exits 0 whatever its program did, so a
bench that wrote no new ``results.json`` failed; the raw stacks, if any, are kept); 2 bad
arguments or no py-spy.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import subprocess
import sys
from pathlib import Path

import flame  # beside this file (a script's folder is on sys.path)
import top

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True
    )
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def out_dir_of(bench: list[str]) -> Path | None:
    """The ``--out`` folder the bench arguments give, if any (relative to the repository)."""
    for i, arg in enumerate(bench):
        if arg.startswith("--out="):
            return ROOT / arg.partition("=")[2]
        if arg == "--out" and i + 1 < len(bench):
            return ROOT / bench[i + 1]
    return None


def run_relaying(command: list[str]) -> tuple[int, str]:
    """Run ``command`` (py-spy and the bench under it), its standard output relayed line by line
    (where py-spy writes its messages; the bench's live progress bar is not drawn on a pipe);
    returns its exit status and py-spy's count of samples and failed reads ("Samples: N Errors:
    M", from its closing line), or "" if it wrote none."""
    said = ""
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith("py-spy> Wrote") and "Samples:" in line:
                said = "py-spy " + line[line.index("Samples:") :].strip()
    return proc.returncode, said


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Profile one `dvp bench` run with py-spy.")
    parser.add_argument("name", help="docs/profile/NAME.svg and NAME.txt")
    parser.add_argument("--rate", type=int, default=50, help="samples a second (50)")
    parser.add_argument(
        "--keep", nargs="+", default=[], help="draw only the stacks with a frame containing one of these"
    )
    parser.add_argument(
        "--drop", nargs="+", default=[], help="leave out the stacks with a frame containing one of these"
    )
    parser.add_argument("--every-stack", action="store_true", help="draw every stack, --agents runs too")
    parser.add_argument("--subprocesses", action="store_true", help="sample the bench's child processes too")
    parser.add_argument("--out", type=Path, default=HERE, help="where NAME.svg and NAME.txt go (docs/profile)")
    parser.add_argument("--runs", type=Path, default=ROOT / "reports" / "profile", help="where the run folder goes")
    parser.epilog = "Then -- and the arguments of `dvp bench`."
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    given = argv[cut + 1 :]
    if not args.name or "/" in args.name or args.name.startswith("."):
        parser.error(f"name: a file name without a folder, got {args.name!r}")
    if args.rate < 1 or args.rate > 1000:
        parser.error(f"rate: 1 to 1000 samples a second, got {args.rate}")
    agents = any(a == "--agents" or a.startswith("--agents=") for a in given)
    if args.keep and args.every_stack:
        parser.error("keep: --keep and --every-stack do not combine")
    keep = args.keep or (list(flame.AGENTS) if agents and not args.every_stack else [])

    spy = BIN / "py-spy"
    if not spy.exists():
        print(f"error: py-spy: not installed beside {sys.executable} (`make profile` installs it)", file=sys.stderr)
        return 2
    version = subprocess.run([str(spy), "--version"], capture_output=True, text=True).stdout.strip()
    started = datetime.datetime.now(datetime.UTC)
    run = args.runs / f"{args.name}-{started:%Y%m%dT%H%M%SZ}"
    run.mkdir(parents=True, exist_ok=True)
    out_dir = out_dir_of(given)
    bench = given if out_dir else [*given, "--out", str(run / "bench")]
    results = (out_dir or run / "bench") / "results.json"
    raw = run / "stacks.txt"
    command = [str(spy), "record", "--rate", str(args.rate), "--nonblocking", "--format", "raw", "--output", str(raw)]
    command += ["--subprocesses"] if args.subprocesses else []
    command += ["--", str(BIN / "dvp"), "bench", *bench]
    head = git_head()
    print(f"profile: {shlex.join(command)}", flush=True)
    status, spy_said = run_relaying(command)
    ended = datetime.datetime.now(datetime.UTC)
    (run / "command.txt").write_text(
        f"{shlex.join(command)}\ncommit {head}\n{version}\nstarted {started:%Y-%m-%d %H:%M:%S} UTC\n"
        f"ended {ended:%Y-%m-%d %H:%M:%S} UTC\nexit {status}\nkept {' '.join(keep) or 'every stack'}\n"
        f"dropped {' '.join(args.drop) or 'none'}\n"
        f"{spy_said}\n"
    )
    # py-spy exits 0 whatever the program it ran did: the bench's results.json says it finished.
    if status != 0 or not results.exists() or results.stat().st_mtime < started.timestamp():
        why = f"py-spy exited with {status}" if status else f"the bench wrote no {results} (its error above)"
        print(f"error: {why}; the stacks (if any) are in {raw}", file=sys.stderr)
        return 1
    try:
        with open(raw) as f:
            stacks = flame.keep(top.read_stacks(f), keep, args.drop)
        if keep or args.drop:
            flame.write_stacks(stacks, run / "kept.txt")
        part = f": the stacks through {', '.join(keep)}" if keep else ""
        part += f"{',' if keep else ':'} without those through {', '.join(args.drop)}" if args.drop else ""
        title = (
            f"dvp bench {shlex.join(given)}{part} "
            f"({version}, {args.rate} Hz, on CPU; {head}, {started:%Y-%m-%d %H:%M} UTC)"
        )
        svg = args.out / f"{args.name}.svg"
        svg.write_text(flame.render(stacks, title))
        txt = args.out / f"{args.name}.txt"
        txt.write_text(top.top(stacks, 25, args.rate))
    except (OSError, ValueError) as exc:
        print(f"error: {raw}: {exc}", file=sys.stderr)
        return 1
    print(f"profile: {svg}, {txt} ({sum(stacks.values())} samples drawn; {spy_said}); raw stacks in {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
