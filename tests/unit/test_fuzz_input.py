"""Fuzzing the scenario parser and the command line (issue 10): whatever the input, dvp
answers with a result or one ``error:`` line and a documented exit code, never a
traceback and never the catch-all "internal error".

Bounded: a fixed number of examples per property, derandomized (the same inputs on every
run, so CI is reproducible) and without Hypothesis' example database.  ``DVP_FUZZ_EXAMPLES``
raises the budget for a longer local run.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dvp import errors
from dvp.cli import main
from dvp.models import SwapSpec
from dvp.scenario import load_scenario, parse_spec

EXAMPLES = int(os.environ.get("DVP_FUZZ_EXAMPLES", "150"))
# The README's exit-code table: 0 ok, 2 input, 3 ledger, 4 capability, 5 plan, 6 outcome, 7 busy.
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

VALID = {
    "trade": {
        "seller": "seller",
        "buyer": "buyer",
        "security": {"ledger": "evm-a", "asset": "BOND", "amount": 10},
        "cash": {"ledger": "evm-b", "asset": "EUR", "amount": 500},
    },
    "plan": {"secret_holder": "seller", "holder_timeout": 600, "counter_timeout": 300, "reaction_window": 30},
    "behaviour": {"counter_locks": True},
    "fast_forward": False,
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)


def paths(data: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += paths(value, prefix + (key,))
    return out


@st.composite
def mutated_scenarios(draw) -> dict:
    """A valid scenario with one subtree replaced, removed, or a key added."""
    data = json.loads(json.dumps(VALID))
    where = draw(st.sampled_from(paths(data)[1:]))
    parent = data
    for key in where[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[where[-1]] = draw(values)
    elif action == "delete":
        del parent[where[-1]]
    else:
        parent[draw(st.text(max_size=12))] = draw(values)
    return data


def assert_one_line_error(exc: errors.DvpError) -> None:
    text = str(exc)
    assert text and "\n" not in text and "\r" not in text, repr(text)


@FUZZ
@given(mutated_scenarios())
def test_mutated_scenarios_validate_or_fail_in_one_line(data):
    try:
        spec = parse_spec(data)
    except errors.ConfigError as exc:
        assert_one_line_error(exc)
    else:
        assert isinstance(spec, SwapSpec)


@FUZZ
@given(
    suffix=st.sampled_from([".yaml", ".json"]),
    content=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        values.map(lambda v: json.dumps(v).encode()),
        mutated_scenarios().map(lambda d: json.dumps(d).encode()),
    ),
)
def test_scenario_files_load_or_fail_in_one_line(tmp_path_factory, suffix, content):
    path = tmp_path_factory.mktemp("fuzz") / f"scenario{suffix}"
    path.write_bytes(content)
    try:
        load_scenario(path)
    except errors.ConfigError as exc:
        assert_one_line_error(exc)


# -- the command line ------------------------------------------------------------------------------

# Commands that start nodes (up, demo, bench) are left out: everything here runs offline.
COMMANDS = [
    "status",
    "down",
    "issue",
    "balances",
    "swap",
    "resume",
    "cancel",
    "history",
    "claim",
    "refund",
    "inspect",
    "report",
]
OPTIONS = [
    "--security",
    "--cash",
    "--kind",
    "--secret-holder",
    "--holder-timeout",
    "--counter-timeout",
    "--fast-forward",
    "--json",
    "--as",
    "--party",
    "--run-dir",
    "--journal",
    "--runtime",
    "--help",
    "--out",
    "--keep",
]
SAFE_TEXT = st.text(alphabet=string.ascii_letters + string.digits + ":-_.=, \t'\"\\\x1b\u00e9\u0661", max_size=20)
TOKENS = st.one_of(
    st.sampled_from(COMMANDS),
    st.sampled_from(OPTIONS),
    SAFE_TEXT,
    st.integers(min_value=-(2**70), max_value=2**300).map(str),
    st.sampled_from(
        [
            "evm-a:BOND:10",
            "evm-b:EUR:5",
            "btc:BTC:1",
            "evm-a",
            "BOND",
            "seller",
            "scenario.yaml",
            "scenario.json",
            "results.json",
            "htlc",
            "atomic",
            "docker",
            "process",
            "0x" + "ab" * 32,
            "ab" * 32,
        ]
    ),
)
NEVER = {"up", "demo", "bench"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """An empty run dir (no testnets) and a few files for commands that read one."""
    path = tmp_path_factory.mktemp("cli")
    (path / "scenario.yaml").write_text(json.dumps(VALID))
    (path / "scenario.json").write_text(json.dumps({**VALID, "kind": "htlc"}))
    (path / "results.json").write_text(json.dumps({"pairs": [1, {"x": None}]}))
    return path


@FUZZ
@given(argv=st.lists(TOKENS, min_size=0, max_size=7))
def test_any_command_line_ends_in_a_result_or_one_error_line(workdir, argv):
    assume(not NEVER.intersection(argv))
    env = {
        "DVP_RUN_DIR": str(workdir / "run"),
        "DVP_JOURNAL": str(workdir / "journal.sqlite"),
        "DVP_RUNTIME": None,
        "DVP_CRASH_AFTER_WRITES": None,
    }
    old = os.getcwd()
    os.chdir(workdir)
    try:
        result = CliRunner().invoke(main, argv, env=env, catch_exceptions=True)
    finally:
        os.chdir(old)
    assert result.exception is None or isinstance(result.exception, SystemExit), (argv, repr(result.exception))
    assert result.exit_code in DOCUMENTED, (argv, result.exit_code, result.output)
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, result.stderr)
        assert "internal error" not in result.stderr, (argv, result.stderr)


# -- YAML numbers as written (issue 23, item 2) ----------------------------------------------------


def _sexagesimal(n: int) -> str:
    digits = []
    while n:
        n, rest = divmod(n, 60)
        digits.append(str(rest))
    return ":".join(reversed(digits or ["0"]))


# The forms YAML 1.1 (PyYAML's default) reads as integers; only the first is a plain decimal.
YAML11_FORMS = {
    "decimal": str,
    "octal": lambda n: "0" + format(n, "o"),
    "octal-0o": lambda n: "0o" + format(n, "o"),
    "hex": lambda n: "0x" + format(n, "x"),
    "binary": lambda n: "0b" + format(n, "b"),
    "grouped": lambda n: "_".join(str(n)) if n >= 10 else f"{n}_0",
    "base-60": lambda n: _sexagesimal(n + 60),  # with a colon (under 60 it would be plain decimal)
    "signed": lambda n: f"+{n}",
    "leading-zero": lambda n: f"0{n}",
    "tagged-octal": lambda n: "!!int 0" + format(n, "o"),
}
NUMBER_FIELDS = [
    ("trade", "security", "amount"),
    ("trade", "cash", "amount"),
    ("plan", "holder_timeout"),
    ("plan", "counter_timeout"),
    ("plan", "reaction_window"),
    ("plan", "claim_margin"),
]


@FUZZ
@given(
    n=st.integers(min_value=1, max_value=10**6),
    form=st.sampled_from(sorted(YAML11_FORMS)),
    where=st.sampled_from(NUMBER_FIELDS),
)
def test_yaml_numbers_are_read_as_written_or_refused_naming_the_field(tmp_path_factory, n, form, where):
    data = json.loads(json.dumps(VALID))
    data["plan"]["holder_timeout"] = 10**6 + 600  # a valid plan whatever n is, within the bounds
    data["plan"]["counter_timeout"] = 10**6 + 300
    target = data
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = "@N@"
    token = YAML11_FORMS[form](n)
    path = tmp_path_factory.mktemp("yaml11") / "scenario.yaml"
    path.write_text(json.dumps(data).replace('"@N@"', token))
    try:
        spec = load_scenario(path)
    except errors.ConfigError as exc:
        assert_one_line_error(exc)
        assert str(exc).startswith(".".join(where) + ": "), (token, str(exc))
        assert token.split()[-1][:30] in str(exc), (token, str(exc))
        assert form != "decimal" or n > 30 * 24 * 3600, (token, str(exc))  # a decimal fails only its bounds
    else:
        assert form == "decimal", (token, spec)  # any other form would have been read as another number
        value = spec.model_dump()
        for key in where:
            value = value[key]
        assert value == n, (token, value)
