"""CI=true: a Fabric, Elements or geth test that would skip because its binary is missing fails
the run with the reason (tests/testbed.py ``binary_missing``); without CI it skips with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = {  # a test of each platform's suite (file, name), and the variable that points its binary nowhere
    "DVP_GETH": ("tests/geth/test_geth_conformance.py", "test_wrong_preimage_is_rejected"),
    "DVP_ELEMENTSD": ("tests/utxo/test_elementsd.py", "test_wrong_preimage_is_rejected_by_the_node"),
    "DVP_FABRIC_HOME": ("tests/fabric/test_fabric_network.py", "test_network_issue_lock_claim_and_warm_restart"),
}


@pytest.mark.parametrize("ci", ["true", ""], ids=["ci", "local"])
def test_a_missing_binary_fails_in_ci_and_skips_elsewhere(tmp_path, ci):
    env = {**os.environ, "CI": ci, **{var: str(tmp_path / var) for var in CASES}}
    files = [path for path, _ in CASES.values()]
    names = " or ".join(name for _, name in CASES.values())
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", *files, "-k", names],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    out = proc.stdout + proc.stderr
    for var in CASES:
        assert str(tmp_path / var) in out, out[-3000:]  # each reason names what is missing
    if ci:
        assert proc.returncode == 1 and "3 errors" in out and out.count("CI=true") >= 3, out[-3000:]
    else:
        assert proc.returncode == 0 and "3 skipped" in out, out[-3000:]
