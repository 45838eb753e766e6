"""The documentation stays true to the tree: every relative link in the Markdown files resolves
to a file of the repository, and every line anchor (``#L12``, ``#L12-L15``) to lines that hold
what the link says is there: its text when that is code (``[`OP_SIZE`](script.py#L79)``), else
its title (``[a double claim](t.py#L46 "test_double_claim")``).  So a rule in docs/design.md
cannot silently point at a line that moved.  Nothing in the repository points outside it.

    .venv/bin/python tests/unit/test_docs.py    # move the anchors of links whose code or test moved
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# README.md, docs/*.md and the notes beside the code (contracts/utxo/README.md ...).
DOCS = sorted(
    [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(
            p
            for top in ("adapters", "contracts", "docker")
            for p in (ROOT / top).rglob("*.md")
            if "node_modules" not in p.parts
        ),
    ]
)

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
# [text](target "title"): the text may hold code spans and one level of brackets; no spaces in the target.
_LINK = re.compile(r'!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)(?:\s+"([^"]*)")?\)')
_LINES = re.compile(r"L(\d+)(?:-L(\d+))?")
_CODE_TEXT = re.compile(r"`([^`]+)`")


def links(doc: Path) -> list[tuple[int, str, str, str | None]]:
    """(line number, text, target, title) of every inline link outside fenced code blocks."""
    text = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), doc.read_text(encoding="utf-8"))
    return [
        (text.count("\n", 0, m.start()) + 1, squash(m.group(1)), m.group(2), m.group(3)) for m in _LINK.finditer(text)
    ]


def relative(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub renders it: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors_of(doc: Path) -> set[str]:
    text = _FENCE.sub("", doc.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def problem(doc: Path, text: str, target: str, title: str | None = None) -> str | None:
    """Why the link ``[text](target "title")`` in ``doc`` does not hold, or None."""
    path, _, anchor = target.partition("#")
    file = (doc.parent / path).resolve() if path else doc
    if not file.is_relative_to(ROOT):
        return "points outside the repository"
    if not file.exists():
        return "no such file"
    if not anchor or file.is_dir():
        return None
    if file.suffix == ".md" and not _LINES.fullmatch(anchor):
        return None if anchor in anchors_of(file) else f"no heading #{anchor} in {file.name}"
    lines = _LINES.fullmatch(anchor)
    if lines is None:
        return f"#{anchor} is not a line anchor (#L12 or #L12-L15)"
    source = file.read_text(encoding="utf-8").splitlines()
    first, last = int(lines.group(1)), int(lines.group(2) or lines.group(1))
    if not 1 <= first <= last <= len(source):
        return f"lines {first}-{last} are not in the file ({len(source)} lines)"
    code = _CODE_TEXT.fullmatch(text.strip())
    if code is None and title is None:
        return "a line anchor needs code as the link's text, or a title naming what is on that line"
    wanted = squash(code.group(1) if code else str(title))
    if wanted in squash(" ".join(source[first - 1 : last])):
        return None
    now = [n for n, line in enumerate(source, start=1) if wanted in squash(line)]
    where = f" (it is now at line {now[0]})" if len(now) == 1 else f" (it is at lines {now})" if now else ""
    return f"lines {first}-{last} do not hold `{wanted}`{where}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = [
        f"{doc.relative_to(ROOT)}:{n}: [{text}]({target}): {why}"
        for n, text, target, title in links(doc)
        if relative(target)
        for why in [problem(doc, text, target, title)]
        if why
    ]
    assert not broken, "\n".join(
        [*broken, "(`.venv/bin/python tests/unit/test_docs.py` moves anchors of code that moved)"]
    )


def test_the_link_check_catches_what_it_should(tmp_path: Path) -> None:
    """The checker itself: a moved line, a missing file, a missing heading, a range past the end."""
    doc = ROOT / "docs" / "design.md"
    assert problem(doc, "`OP_SIZE`", "no-such-file.py#L1") == "no such file"
    assert problem(doc, "text", "../README.md#no-such-heading") == "no heading #no-such-heading in README.md"
    assert problem(doc, "text", "../README.md#the-command-line") is None
    assert "not in the file" in str(problem(doc, "x", "../pyproject.toml#L1-L100000"))
    assert "do not hold" in str(problem(doc, "`requires-python`", "../pyproject.toml#L1"))
    assert problem(doc, "x", "../../outside.md") == "points outside the repository"
    assert "needs code as the link's text" in str(problem(doc, "a test", "../tests/unit/test_docs.py#L1"))
    here = _line_of("def test_the_link_check")
    assert problem(doc, "a test", f"../tests/unit/test_docs.py#L{here}", "test_the_link_check") is None
    moved = str(problem(doc, "a test", "../tests/unit/test_docs.py#L1", "test_the_link_check"))
    assert "do not hold `test_the_link_check`" in moved and str(here) in moved
    assert [t for _, _, t, _ in links(doc)], "docs/design.md links nothing"


def test_the_seam_reference_names_every_error() -> None:
    """docs/seam.md draws the error tree: every class of :mod:`dvp.errors` is in it."""
    import inspect

    from dvp import errors

    seam = (ROOT / "docs" / "seam.md").read_text(encoding="utf-8")
    classes = [
        name
        for name, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.DvpError) and c.__module__ == errors.__name__
    ]
    assert "DvpError" in classes
    missing = [name for name in classes if not re.search(rf"\b{name}\b", seam)]
    assert not missing, f"docs/seam.md's error tree lacks {missing}"


def _line_of(text: str) -> int:
    return next(n for n, line in enumerate(Path(__file__).read_text().splitlines(), start=1) if line.startswith(text))


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_points_outside_the_repository() -> None:
    """A user of the project has only the repository: no file may refer to the folder beside it
    (the CI script alone may, to find what the machine provides)."""
    outside = ("../" + "shared").encode()
    found = [
        str(f.relative_to(ROOT))
        for f in tracked_files()
        if f.is_file() and f.relative_to(ROOT).as_posix() != ".ci/run" and outside in f.read_bytes()
    ]
    assert not found, f"files referring to {outside.decode()}: {found}"


def reanchor(doc: Path) -> int:
    """Point each code link whose code moved at the one line that holds it now; the count moved."""
    text = doc.read_text(encoding="utf-8")
    moved = 0

    def fix(m: re.Match[str]) -> str:
        nonlocal moved
        why = problem(doc, squash(m.group(1)), m.group(2), m.group(3))
        now = re.search(r"it is now at line (\d+)", why or "")
        path, _, anchor = m.group(2).partition("#")
        lines = _LINES.fullmatch(anchor)
        if now is None or lines is None:
            return m.group(0)
        span = int(lines.group(2) or lines.group(1)) - int(lines.group(1))
        start = int(now.group(1))
        moved += 1
        return m.group(0).replace(f"({m.group(2)}", f"({path}#L{start}" + (f"-L{start + span}" if span else ""))

    doc.write_text(_LINK.sub(fix, text), encoding="utf-8")
    return moved


if __name__ == "__main__":
    for doc in DOCS:
        print(f"{doc.relative_to(ROOT)}: {reanchor(doc)} anchor(s) moved")
