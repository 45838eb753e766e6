"""The command line against real ledgers when something is wrong around them (issue 10,
item 7): one line and nothing else, numbers without float noise."""

from __future__ import annotations

import json
import os

from dvp.runtime.processes import free_port

from ..cli_helpers import dvp, one_line_error


def test_an_unreachable_ledger_prints_one_line_and_nothing_else(run_dir, tmp_path):
    state = json.loads((run_dir / "state.json").read_text())
    state["ledgers"]["evm-a"]["config"]["rpc_url"] = f"http://127.0.0.1:{free_port()}"
    dead = tmp_path / "run"
    dead.mkdir()
    (dead / "state.json").write_text(json.dumps(state))
    env = {**os.environ, "DVP_RUN_DIR": str(dead), "DVP_JOURNAL": str(tmp_path / "j.sqlite")}
    for args in (
        ["balances"],
        ["issue", "evm-a", "BOND", "seller", "1"],
        ["swap", "--security", "evm-a:BOND:1", "--cash", "evm-b:EUR:1"],
    ):
        result = dvp(args, env)
        one_line_error(result, 3, "ledger 'evm-a' unreachable")
        assert "Unclosed" not in result.stderr + result.stdout
