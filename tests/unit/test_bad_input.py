"""Bad input never ends in a traceback: one line naming the field or cause, and a documented
exit code (issue 10, items 5 and 6).  Offline: the CLI runs in-process on an empty run dir."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from dvp import errors
from dvp.cli import main
from dvp.journal import Journal
from dvp.scenario import load_scenario, parse_spec

LEG = {"ledger": "evm-a", "asset": "BOND", "amount": 10}
CASH = {"ledger": "evm-b", "asset": "EUR", "amount": 5}


def run(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
    runner = CliRunner()
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return runner.invoke(main, args, env=env, catch_exceptions=True)
    finally:
        os.chdir(old)


def one_line(result, code: int, text: str = "") -> str:
    """The CLI ended with ``code`` and printed exactly one line, ``error: ...``, containing ``text``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"DVP_RUN_DIR": str(tmp_path / "run"), "DVP_JOURNAL": str(tmp_path / "j.sqlite")}


def scenario(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# -- scenario files -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_binary_or_non_utf8_scenario_is_one_line(tmp_path, env, suffix):
    path = scenario(tmp_path, "bin" + suffix, b"\xff\xfe\x00\x01garbage\x80")
    one_line(run(["swap", str(path)], env), 2, "is not UTF-8 text")


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".json", "[" * 100_000 + "]" * 100_000),
        (".yaml", "a: " + "[" * 100_000 + "]" * 100_000),
        (".yaml", "a:\n" + "".join(" " * i + "- \n" for i in range(2000))),
    ],
)
def test_deeply_nested_scenario_is_one_line(tmp_path, env, suffix, text):
    path = scenario(tmp_path, "deep" + suffix, text)
    one_line(run(["swap", str(path)], env), 2, "nested")


def test_oversized_scenario_and_special_files_are_refused(tmp_path, env):
    path = scenario(tmp_path, "big.yaml", "# " + "x" * (2 << 20))
    one_line(run(["swap", str(path)], env), 2, "larger than")
    one_line(run(["swap", "/dev/zero"], env), 2, "scenario")
    one_line(run(["swap", str(tmp_path)], env), 2, "scenario: cannot read")


def test_huge_integer_literals_are_one_line(tmp_path, env):
    path = scenario(
        tmp_path, "s.json", json.dumps({"trade": {"security": LEG, "cash": CASH}}).replace("10", "1" * 5000)
    )
    one_line(run(["swap", str(path)], env), 2, "scenario")
    path = scenario(tmp_path, "s.yaml", f"trade:\n  security: {{ledger: evm-a, asset: BOND, amount: {'1' * 5000}}}\n")
    one_line(run(["swap", str(path)], env), 2, "scenario")


def test_duplicate_yaml_keys_are_an_error(tmp_path):
    path = scenario(
        tmp_path,
        "dup.yaml",
        "trade:\n  security: {ledger: evm-a, asset: BOND, amount: 10}\n"
        "  cash: {ledger: evm-b, asset: EUR, amount: 5}\n"
        "  cash: {ledger: evm-b, asset: EUR, amount: 500000}\n",
    )
    with pytest.raises(errors.ConfigError, match="duplicate key 'cash'"):
        load_scenario(path)
    path = scenario(
        tmp_path,
        "dup.json",
        '{"trade": {"security": {"ledger": "evm-a", "asset": "BOND", "amount": 10},'
        ' "cash": {"ledger": "evm-b", "asset": "EUR", "amount": 5, "amount": 9}}}',
    )
    with pytest.raises(errors.ConfigError, match="duplicate key 'amount'"):
        load_scenario(path)


def test_yaml_aliases_are_refused(tmp_path):
    # Aliases let a few lines expand into billions of nodes; a scenario never needs them.
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    path = scenario(tmp_path, "lol.yaml", lol + "trade: *i\n")
    with pytest.raises(errors.ConfigError, match="alias"):
        load_scenario(path)


@pytest.mark.parametrize("amount", ["10", True, 1.0, 10.0, "1e3", None, [10], {"v": 10}])
def test_amounts_must_be_integers_not_coerced(amount):
    with pytest.raises(errors.ConfigError, match="trade.security.amount"):
        parse_spec({"trade": {"security": {**LEG, "amount": amount}, "cash": CASH}})


@pytest.mark.parametrize(
    ("field", "value"),
    [("holder_timeout", "600"), ("counter_timeout", 300.0), ("reaction_window", True), ("claim_margin", "5")],
)
def test_plan_numbers_must_be_integers_not_coerced(field, value):
    with pytest.raises(errors.ConfigError, match=f"plan.{field}"):
        parse_spec({"trade": {"security": LEG, "cash": CASH}, "plan": {field: value}})


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_flags_must_be_booleans_not_coerced(value):
    with pytest.raises(errors.ConfigError, match="fast_forward"):
        parse_spec({"trade": {"security": LEG, "cash": CASH}, "fast_forward": value})
    with pytest.raises(errors.ConfigError, match="behaviour.counter_locks"):
        parse_spec({"trade": {"security": LEG, "cash": CASH}, "behaviour": {"counter_locks": value}})


def test_a_field_name_with_control_characters_stays_on_one_line(tmp_path, env):
    path = scenario(tmp_path, "s.json", json.dumps({"trade": {"security": LEG, "cash": CASH}, "a\nb\x1b[2J": 1}))
    line = one_line(run(["swap", str(path)], env), 2, "Extra inputs are not permitted")
    assert "\x1b" not in line


@pytest.mark.parametrize("amount", ["١٠", "1_0", " 10", "+10", "0x10"])
def test_flag_amounts_are_plain_decimal_digits(env, amount):
    one_line(run(["swap", "--security", f"evm-a:BOND:{amount}", "--cash", "evm-b:EUR:5"], env), 2, "security.amount")


# -- usage errors are one line too ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["swap", "--no-such-flag"],
        ["nosuchcommand"],
        ["issue", "evm-a"],
        ["swap", "--holder-timeout", "x"],
        ["--runtime", "nowhere", "status"],
    ],
)
def test_usage_errors_are_one_line_exit_2(env, args):
    one_line(run(args, env), 2)


# -- the journal ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"not a journal\n", b"SQLite format 3\x00" + b"\x00" * 200, b"\x00" * 4096])
def test_journal_option_on_a_file_that_is_not_a_journal(tmp_path, env, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    path.chmod(0o644)
    one_line(run(["--journal", str(path), "history"], env), 2, "journal")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_bytes() == content


def test_journal_option_on_another_sqlite_database_leaves_it_alone(tmp_path, env):
    import sqlite3

    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE people (name TEXT)")
    db.commit()
    db.close()
    path.chmod(0o644)
    one_line(run(["--journal", str(path), "history"], env), 2, "not a dvp journal")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    assert tables == [("people",)]


def test_a_new_journal_is_private_from_its_first_byte(tmp_path):
    journal = Journal(tmp_path / "new.sqlite")
    journal.close()
    assert stat.S_IMODE((tmp_path / "new.sqlite").stat().st_mode) == 0o600


# -- the run-state file ---------------------------------------------------------------------------

CORRUPT_STATES = [
    "garbage{",
    "[]",
    '{"ledgers": 5}',
    '{"ledgers": {"x": {}}}',
    '{"ledgers": {"x": {"kind": "ethereum"}}}',
    '{"ledgers": {"x": {"kind": "ethereum", "config": {"kind": "ethereum"}, "pids": "a"}}}',
    '{"ledgers": {"x": {"kind": "ethereum", "config": {"kind": "ethereum"}, "pids": [0]}}}',
    '{"ledgers": {"x": {"kind": "ethereum", "config": {"kind": "ethereum"}, "pids": [-1]}}}',
    '{"runtime": ["x"], "ledgers": {}}',
    '{"ledgers": {}, "assets": [{"symbol": 5}]}',
    '{"ledgers": {"x": {"kind": "ethereum", "config": [], "pids": []}}}',
    '{"ledgers": {"x": {"kind": "ethereum", "config": {"kind": "ethereum"}, "pids": [], "docker": {"compose": 1}}}}',
]


@pytest.mark.parametrize("content", CORRUPT_STATES)
@pytest.mark.parametrize(
    "command",
    [["balances"], ["swap", "--security", "evm-a:BOND:1", "--cash", "evm-b:EUR:1"], ["down"], ["status"], ["resume"]],
)
def test_corrupt_run_state_is_one_line(tmp_path, env, content, command):
    run_dir = Path(env["DVP_RUN_DIR"])
    run_dir.mkdir()
    (run_dir / "state.json").write_text(content)
    one_line(run(command, env), 2, "state.json")
    assert (run_dir / "state.json").read_text() == content  # kept for the user to look at


# -- DVP_* environment variables -----------------------------------------------------------------

BAD_ENV = [
    ("DVP_RUNTIME", "nowhere", ["status"]),
]


@pytest.mark.parametrize(("name", "value", "args"), BAD_ENV, ids=[f"{n}={v!r}" for n, v, _ in BAD_ENV])
def test_malformed_environment_values_are_one_line(env, name, value, args):
    one_line(run(args, {**env, name: value}), 2, name)


@pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
def test_malformed_crash_seam_value_is_one_line(env, value):
    """The crash drills' switch lives in the test seam (dvp.testing.crash), not in `dvp`."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "dvp.testing.crash", "history"], capture_output=True, text=True,
                          env={**os.environ, **env, "DVP_CRASH_AFTER_WRITES": value}, timeout=60)  # fmt: skip
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "DVP_CRASH_AFTER_WRITES" in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert run(["history"], {**env, "DVP_CRASH_AFTER_WRITES": value}).exit_code == 0  # `dvp` itself ignores it


@pytest.mark.parametrize("value", ["maybe", "2", "-"])
def test_flag_variables_accept_only_flag_values(monkeypatch, value):
    from dvp.env import env_flag

    monkeypatch.setenv("DVP_DOCKER_PULL", value)
    with pytest.raises(errors.ConfigError, match="DVP_DOCKER_PULL"):
        env_flag("DVP_DOCKER_PULL")
    for good, meaning in (("1", True), ("0", False), ("", False), ("true", True), ("no", False)):
        monkeypatch.setenv("DVP_DOCKER_PULL", good)
        assert env_flag("DVP_DOCKER_PULL") is meaning


def test_compose_command_with_unbalanced_quotes_is_a_config_error(monkeypatch):
    from dvp.runtime.docker import compose_command

    monkeypatch.setenv("DVP_COMPOSE", "docker 'compose")
    with pytest.raises(errors.ConfigError, match="DVP_COMPOSE"):
        compose_command()


def test_issue_above_the_largest_amount_is_one_line(env):
    one_line(run(["issue", "evm-a", "BOND", "seller", str(2**256)], env), 2, "amount: ")
    one_line(run(["issue", "evm-a", "BOND", "seller", "0"], env), 2, "amount: ")


# -- status of nodes that were killed ---------------------------------------------------------------


def test_status_does_not_show_a_killed_node_as_alive(tmp_path, env):
    import signal
    import subprocess
    import sys

    from dvp.runtime.processes import free_port, stop

    # A killed node nobody reaped (its parent here never waits), and a node whose recorded pid
    # now belongs to another process: neither answers on its endpoint.
    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    reused = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    try:
        os.kill(zombie.pid, signal.SIGKILL)
        closed = free_port()
        ledgers = {
            name: {
                "kind": "ethereum",
                "config": {"kind": "ethereum", "rpc_url": f"http://127.0.0.1:{closed}"},
                "pids": [pid],
                "logs": [],
            }
            for name, pid in (("killed", zombie.pid), ("reused", reused.pid))
        }
        run_dir = Path(env["DVP_RUN_DIR"])
        run_dir.mkdir()
        (run_dir / "state.json").write_text(json.dumps({"runtime": "process", "ledgers": ledgers, "assets": []}))
        result = run(["status"], env)
        assert result.exit_code == 0, result.output
        rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
        assert set(rows) >= {"killed", "reused"}, result.stdout
        assert all("yes" not in rows[name] for name in ("killed", "reused")), result.stdout
    finally:
        stop([reused.pid])
        zombie.wait()
        reused.wait()


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "abc", "1e9"])
@pytest.mark.parametrize("command", ["up", "demo", "bench"])
def test_block_time_must_be_a_finite_number_of_seconds(env, command, value):
    one_line(run([command, "--block-time", value], env), 2, "--block-time")


@pytest.mark.parametrize("value", ["/etc/passwd", "/nonexistent/anvil", "/tmp"])
def test_program_variables_must_name_an_executable(monkeypatch, value):
    from dvp_ethereum.launcher import anvil_binary
    from dvp_utxo.bins import btcd_path

    for name, find in (("DVP_ANVIL", anvil_binary), ("DVP_BTCD", btcd_path)):
        monkeypatch.setenv(name, value)
        with pytest.raises(errors.ConfigError, match=f"{name}: .* is not an executable file"):
            find()


def test_cache_variable_must_name_a_directory(monkeypatch):
    from dvp.env import cache_dir

    monkeypatch.setenv("DVP_CACHE", "/etc/passwd")
    with pytest.raises(errors.ConfigError, match="DVP_CACHE: /etc/passwd is not a directory"):
        cache_dir()


# -- YAML reads numbers as written (issue 23, item 2) ----------------------------------------------

# YAML 1.1 reads these as other integers (octal, base 60, binary, digit groups, hex, a sign):
# a scenario is a settlement instruction, so each is refused naming the field, never traded.
YAML11_INTEGERS = ["010", "0o10", "1:40", "10:00", "0b11", "1_0", "0x10", "+10", "!!int 010", "!!int 0x10"]


@pytest.mark.parametrize("token", YAML11_INTEGERS)
@pytest.mark.parametrize(
    "field",
    [
        "trade.security.amount",
        "trade.cash.amount",
        "plan.holder_timeout",
        "plan.counter_timeout",
        "plan.reaction_window",
    ],
)
def test_yaml_integers_other_than_plain_decimal_are_refused_naming_the_field(tmp_path, env, token, field):
    data = {
        "trade": {"security": dict(LEG), "cash": dict(CASH)},
        "plan": {"holder_timeout": 600, "counter_timeout": 300},
    }
    section, *rest = field.split(".")
    target = data[section]
    for key in rest[:-1]:
        target = target[key]
    target[rest[-1]] = "@TOKEN@"
    path = scenario(tmp_path, "s.yaml", json.dumps(data).replace('"@TOKEN@"', token))
    line = one_line(run(["swap", str(path)], env), 2, field)
    assert "plain decimal integer" in line, line


def test_yaml_plain_decimals_and_core_schema_values_are_read_as_written(tmp_path):
    path = scenario(
        tmp_path,
        "s.yaml",
        "trade:\n  security: {ledger: evm-a, asset: BOND, amount: 10}\n"
        "  cash: {ledger: evm-b, asset: '010', amount: 0500}\n",
    )
    with pytest.raises(errors.ConfigError, match="trade.cash.amount: expected a plain decimal integer, got '0500'"):
        load_scenario(path)
    path = scenario(
        tmp_path,
        "s.yaml",
        "trade:\n  security: {ledger: evm-a, asset: 0x10, amount: 10}\n"
        "  cash: {ledger: evm-b, asset: 1_0, amount: 500}\n"
        "plan: {holder_timeout: 600, counter_timeout: 300, reaction_window: 0}\n"
        "fast_forward: false\nbehaviour: {counter_locks: True}\n",
    )
    spec = load_scenario(path)
    assert spec.trade.security.asset == "0x10" and spec.trade.cash.asset == "1_0"  # names stay as typed
    assert spec.trade.cash.amount == 500 and spec.plan.holder_timeout == 600 and spec.plan.reaction_window == 0


@pytest.mark.parametrize("token", ["yes", "no", "on", "off", "y", "Yes"])
def test_yaml_1_1_booleans_are_refused(tmp_path, token):
    path = scenario(
        tmp_path,
        "s.yaml",
        "trade:\n  security: {ledger: evm-a, asset: BOND, amount: 10}\n"
        f"  cash: {{ledger: evm-b, asset: EUR, amount: 5}}\nfast_forward: {token}\n",
    )
    with pytest.raises(errors.ConfigError, match=f"fast_forward: expected true or false, got '{token}'"):
        load_scenario(path)


@pytest.mark.parametrize("content", ["", "# nothing\n", "---\n", "~\n"])
def test_an_empty_yaml_scenario_has_the_scenario_prefix(tmp_path, env, content):
    path = scenario(tmp_path, "empty.yaml", content)
    line = one_line(run(["swap", str(path)], env), 2, f"scenario: {path}: expected a mapping with 'trade'")
    assert line.endswith("got nothing (empty)"), line


@pytest.mark.parametrize("value", ["1_0", "0x10", "010", "+10", " 10"])
@pytest.mark.parametrize("flag", ["--holder-timeout", "--counter-timeout"])
def test_timeout_flags_are_plain_decimal_digits(env, flag, value):
    one_line(run(["swap", "--security", "evm-a:BOND:1", "--cash", "evm-b:EUR:5", flag, value], env), 2, flag)


def test_flag_amounts_with_leading_zeros_are_refused(env):
    one_line(run(["swap", "--security", "evm-a:BOND:010", "--cash", "evm-b:EUR:5"], env), 2, "security.amount")


@pytest.mark.parametrize("token", ["010", "0x10", "1_0", "1:40", "'100'", "100.0", "+10"])
def test_agent_policy_amounts_are_read_as_written(tmp_path, token):
    config = pytest.importorskip("dvp_agent.config", reason="the agent package (extra `agent`) is not installed")
    (tmp_path / "agent.yaml").write_text(f"party: seller\npolicy:\n  max_send:\n    evm-b:EUR: {token}\n")
    with pytest.raises(errors.ConfigError, match=r"agent.yaml: policy.max_send.'evm-b:EUR': expected a plain decimal"):
        config.load_config(tmp_path)
    (tmp_path / "agent.yaml").write_text("party: seller\npolicy:\n  max_send: {evm-b:EUR: 100}\n")
    assert config.load_config(tmp_path).policy.max_send == {"evm-b:EUR": 100}


# -- one exit code for a command that drove several swaps (issue 23, item 3) ------------------------


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([0, 7], 7),  # `dvp swap` settled its own swap and skipped a busy one: the skip is reported
        ([6, 7], 6),  # its own swap ended other than settled: that outranks a skip
        ([7, 3], 3),  # a swap left unfinished by a ledger error outranks both
        ([6, 3], 3),
        ([0, 0], 0),
        ([7, 8, 6], 8),
        ([3, 1], 1),
        ([], 0),
    ],
)
def test_a_command_exits_with_the_worst_outcome_of_what_it_did(codes, expected):
    from dvp.cli import EXIT_PRECEDENCE, worst_exit

    assert worst_exit(codes) == expected
    assert set(EXIT_PRECEDENCE) == {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
