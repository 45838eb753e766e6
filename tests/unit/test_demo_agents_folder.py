"""The demo's agent folders: one written before a policy had to list what it sends is made anew
(under today's rule its empty policy would send nothing and the demo's swap would be refused)."""

import pytest
import yaml

from dvp.demo_agents import _stale

pytestmark = pytest.mark.unit


def write(folder, config) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent.yaml").write_text(yaml.safe_dump(config))


def test_a_missing_folder_is_not_stale(tmp_path):
    assert not _stale(tmp_path / "seller")


def test_a_folder_without_a_send_policy_is_stale(tmp_path):
    write(tmp_path / "old", {"party": "seller", "policy": {"accept": True}})
    write(tmp_path / "older", {"party": "seller"})
    assert _stale(tmp_path / "old") and _stale(tmp_path / "older")


def test_a_folder_with_a_send_policy_is_kept(tmp_path):
    write(tmp_path / "new", {"party": "seller", "policy": {"max_send": {"evm-a:BOND": 100}}})
    assert not _stale(tmp_path / "new")
