"""docs/profile's tools on a small py-spy raw sample written here: top.py's sums (self, inclusive,
the report rendering left out), flame.py's filter, merge and SVG, record.py's reading of the
bench's --out.  No profiler runs (`make profile` does: docs/profile/README.md)."""

from __future__ import annotations

import importlib
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

PROFILE = Path(__file__).resolve().parents[2] / "docs" / "profile"

# py-spy's raw form: outermost frame first, `function (file:line)`, the count last.  The same
# function on two lines (journal.py:10 and :12) is one frame once line numbers are dropped.
SAMPLE = """\
<module> (dvp:8);bench (dvp/bench/cli.py:170);run_batch.<locals>.one (dvp/bench/runner.py:408);SqliteJournal._execute (dvp/journal.py:10) 30
<module> (dvp:8);bench (dvp/bench/cli.py:170);run_batch.<locals>.one (dvp/bench/runner.py:408);SqliteJournal._execute (dvp/journal.py:12) 10
<module> (dvp:8);bench (dvp/bench/cli.py:170);Agent.handle (dvp/party/agent.py:50);PeerCert.verify (dvp_agent/identity.py:77) 40

<module> (dvp:8);bench (dvp/bench/cli.py:180);render_all (dvp/bench/render.py:5);savefig (matplotlib/figure.py:3) 20
Thread._bootstrap (threading.py:1002);_WorkItem.run (concurrent/futures/thread.py:58) 20
"""


def tool(name: str) -> ModuleType:
    if str(PROFILE) not in sys.path:
        sys.path.insert(0, str(PROFILE))
    return importlib.import_module(name)


def test_top_reads_py_spy_raw_lines_and_sums_self_and_inclusive_shares() -> None:
    top = tool("top")
    stacks = top.read_stacks(SAMPLE.splitlines())
    journal = ("<module> (dvp)", "bench (dvp/bench/cli.py)", "run_batch.<locals>.one (dvp/bench/runner.py)")
    assert stacks[(*journal, "SqliteJournal._execute (dvp/journal.py)")] == 40  # :10 and :12 merged
    assert sum(stacks.values()) == 120 and len(stacks) == 4
    text = top.top(stacks, 3)
    lines = text.splitlines()
    # render_all's 20 samples left out: the shares are of the other 100
    assert lines[0] == "100 samples at 50 Hz, on CPU (20 of the report rendering left out)"
    assert lines[2:6] == [
        "self:",
        "   40.0%  SqliteJournal._execute (dvp/journal.py)",
        "   40.0%  PeerCert.verify (dvp_agent/identity.py)",
        "   20.0%  _WorkItem.run (concurrent/futures/thread.py)",
    ]
    inclusive = lines[lines.index("inclusive:") + 1 :]
    # <module> and cli.py frames are in every bench sample: left out of the inclusive list
    assert inclusive == [
        "   40.0%  run_batch.<locals>.one (dvp/bench/runner.py)",
        "   40.0%  SqliteJournal._execute (dvp/journal.py)",
        "   40.0%  Agent.handle (dvp/party/agent.py)",
    ]
    assert top.top(stacks, 3, rate=100).startswith("100 samples at 100 Hz")


def test_top_names_the_line_that_is_not_py_spy_raw_form() -> None:
    top = tool("top")
    with pytest.raises(ValueError, match=r"line 2: not py-spy's raw form"):
        top.read_stacks(["a (x.py:1);b (x.py:2) 3", "a (x.py:1);b (x.py:2)"])


def test_top_leaves_py_spy_process_roots_out_of_the_inclusive_list() -> None:
    top = tool("top")
    stacks = top.read_stacks(['process 7:"python -m dvp.cli worker";run (dvp/worker.py:3);_process (q.py:1) 5'])
    inclusive = top.top(stacks).split("inclusive:\n")[1].splitlines()
    assert inclusive == ["  100.0%  run (dvp/worker.py)", "  100.0%  _process (q.py)"]


def test_flame_keeps_the_agents_stacks_merges_files_and_draws_each_frame(tmp_path: Path) -> None:
    top, flame = tool("top"), tool("flame")
    stacks = top.read_stacks(SAMPLE.splitlines())
    agents = flame.keep(stacks, flame.AGENTS)
    assert list(agents.values()) == [40] and next(iter(agents))[-1] == "PeerCert.verify (dvp_agent/identity.py)"
    assert flame.keep(stacks, []) == stacks

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(SAMPLE)
    flame.write_stacks(agents, b)  # the raw form again, line numbers dropped
    assert top.read_stacks(b.read_text().splitlines()) == agents
    merged = flame.merge([a, b])
    assert sum(merged.values()) == 160 and merged[next(iter(agents))] == 80

    svg = flame.render(merged, "a <test> profile")
    root = ET.fromstring(svg.split("?>", 1)[1])  # well-formed XML, names escaped
    ns = "{http://www.w3.org/2000/svg}"
    titles = [t.text or "" for t in root.iter(f"{ns}title")]
    assert "<module> (dvp) (140 samples, 87.5%)" in titles
    assert "PeerCert.verify (dvp_agent/identity.py) (80 samples, 50.0%)" in titles
    assert "savefig (matplotlib/figure.py) (20 samples, 12.5%)" in titles
    heading = next(t for t in root.iter(f"{ns}text"))
    assert heading.text == "a <test> profile (160 samples; hover a frame for its share, click to zoom)"
    assert root.find(f"{ns}script") is not None  # the zoom
    with pytest.raises(ValueError, match="no samples"):
        flame.render(flame.keep(stacks, ["nowhere"]), "empty")


def test_flame_command_line_writes_the_svg_and_the_stacks_it_drew(tmp_path: Path) -> None:
    flame = tool("flame")
    raw, svg, kept = tmp_path / "stacks.txt", tmp_path / "out.svg", tmp_path / "kept.txt"
    raw.write_text(SAMPLE)
    flame.main([str(raw), str(svg), "--title", "t", "--keep", "dvp/journal.py", "--kept", str(kept)])
    assert svg.read_text().count("<rect") > 4
    assert kept.read_text().splitlines() == [
        "<module> (dvp);bench (dvp/bench/cli.py);run_batch.<locals>.one (dvp/bench/runner.py);"
        "SqliteJournal._execute (dvp/journal.py) 40"
    ]
    with pytest.raises(SystemExit, match=r"^error: line 1: not py-spy's raw form"):
        raw.write_text("no count here\n")
        flame.main([str(raw), str(svg)])


def test_record_reads_the_bench_out_folder_from_its_arguments() -> None:
    record = tool("record")
    assert record.out_dir_of(["--swaps", "5", "--out", "reports/x"]) == record.ROOT / "reports/x"
    assert record.out_dir_of(["--out=/tmp/y", "--agents"]) == Path("/tmp/y")
    assert record.out_dir_of(["--swaps", "5", "--agents"]) is None


def test_top_counts_py_spy_lines_without_a_python_frame() -> None:
    top = tool("top")
    stacks = top.read_stacks(["a (x.py:1) 3", " 2"])  # py-spy writes " COUNT" for such samples
    assert stacks == {("a (x.py)",): 3, (top.NO_FRAME,): 2}
    assert "   40.0%  (no Python frame)" in top.top(stacks).splitlines()


def test_flame_draws_stacks_deeper_than_pythons_recursion_limit() -> None:
    top, flame = tool("top"), tool("flame")
    deep = ";".join(f"f{i} (deep.py:{i})" for i in range(sys.getrecursionlimit() + 500))
    svg = flame.render(top.read_stacks([f"{deep} 7"]), "deep")
    assert svg.count('<g class="f">') == sys.getrecursionlimit() + 500


def test_record_relays_the_output_and_keeps_py_spys_sample_and_error_counts(capsys: pytest.CaptureFixture[str]) -> None:
    record = tool("record")
    said = "py-spy> Wrote raw flamegraph data to 'x.txt'. Samples: 340 Errors: 74"
    status, counts = record.run_relaying([sys.executable, "-c", f"print('bench table'); print({said!r}); exit(3)"])
    assert (status, counts) == (3, "py-spy Samples: 340 Errors: 74")
    assert capsys.readouterr().out == f"bench table\n{said}\n"


def test_flame_drops_the_bench_runs_setup_and_keeps_the_rest() -> None:
    top, flame = tool("top"), tool("flame")
    stacks = top.read_stacks(SAMPLE.splitlines())
    swaps = flame.keep(stacks, [], flame.SETUP)  # the report rendering's 20 samples left out
    assert sum(swaps.values()) == 100 and not any("render_all" in f for s in swaps for f in s)
    only = flame.keep(stacks, ["dvp/journal.py", "dvp_agent/"], ["PeerCert.verify"])
    assert list(only.values()) == [40] and next(iter(only))[-1] == "SqliteJournal._execute (dvp/journal.py)"
