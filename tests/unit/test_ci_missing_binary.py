"""CI=true: a Fabric, Elements or geth test that would skip because its binary is missing fails
the run with the reason (tests/testbed.py ``binary_missing``); without CI it skips with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = {  # a test of each platform's suite (file, -k), and the variable that points its binary nowhere
    "geth": ("tests/geth/test_geth_conformance.py", "test_wrong_preimage_is_rejected", "DVP_GETH"),
    "elements": ("tests/utxo/test_elementsd.py", "test_wrong_preimage_is_rejected_by_the_node", "DVP_ELEMENTSD"),
    "fabric": ("tests/fabric/test_fabric_network.py", "test_network_issue_lock_claim_and_warm_restart", "DVP_FABRIC_HOME"),
}


@pytest.mark.parametrize("platform", sorted(CASES))
@pytest.mark.parametrize("ci", ["true", ""], ids=["ci", "local"])
def test_a_missing_binary_fails_in_ci_and_skips_elsewhere(tmp_path, platform, ci):
    path, name, var = CASES[platform]
    env = {**os.environ, "CI": ci, var: str(tmp_path / "absent")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", path, "-k", name],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert str(tmp_path / "absent") in out, out[-2000:]  # the reason names what is missing
    if ci:
        assert proc.returncode == 1 and "1 error" in out and "CI=true" in out, out[-2000:]
    else:
        # 5: the Elements modules skip whole at import, so pytest counts no test collected
        assert proc.returncode in (0, 5) and "1 skipped" in out, out[-2000:]
