"""Per-party key files, offline: every config kind narrowed to one party keeps that party's
secret, names every other party by its public identity only, and refuses a party it lacks;
the file is 0600 from its creation and refused when wider, damaged or of another shape."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from eth_account import Account

from dvp.adapter import LedgerConfig
from dvp.errors import ConfigError, NotSupportedError, UnknownParty
from dvp.ledger_set import LedgerSet
from dvp.models import HtlcTerms
from dvp.party.keys import load_party_file, party_state, write_party_file
from dvp.registry import build_adapter
from dvp_utxo.keys import Key

PARTIES = ("seller", "buyer", "issuer")
PREIMAGE = bytes(range(32))
HASHLOCK = hashlib.sha256(PREIMAGE).hexdigest()
POLICY = "22" * 32


def _evm_key(party: str) -> str:
    return "0x" + bytes([PARTIES.index(party) + 1] * 32).hex()


def evm(kind: str = "ethereum") -> dict:
    return {"kind": kind, "rpc_url": "http://127.0.0.1:1", "chain_id": 31337, "dev": kind == "ethereum",
            "accounts": {p: _evm_key(p) for p in PARTIES}, "tokens": {"BOND": "0x" + "33" * 20},
            "htlc_address": "0x" + "44" * 20}  # fmt: skip


def utxo(kind: str = "utxo") -> dict:
    parties = (*PARTIES, "miner")
    config = {"kind": kind, "rpc_url": "http://127.0.0.1:1", "rpc_user": "dvp", "rpc_password": "rpc-secret",
              "keys": {p: Key.dev(kind, p).wif for p in parties}, "dev": True, "mine_on_wait": True}  # fmt: skip
    if kind == "elements":
        config.update(policy_asset=POLICY, assets={"LBTC": "native", "BOND": "55" * 32})
    return config


def fabric() -> dict:
    orgs = {"seller": "Org1MSP", "issuer": "Org1MSP", "buyer": "Org2MSP"}
    return {"kind": "fabric", "channel": "dvp-a", "assets": ["BOND"],
            "peers": {o: {"endpoint": "127.0.0.1:1", "tls_ca": f"/crypto/{o}/tlsca.pem", "msp_id": o} for o in set(orgs.values())},
            "orderer": {"endpoint": "127.0.0.1:2", "tls_ca": "/crypto/orderer/tlsca.pem"},
            "parties": {p: {"msp_id": m, "msp_dir": f"/crypto/{p}/msp", "key": f"/crypto/{p}/msp/keystore/{p}_sk",
                            "cert": f"/crypto/{p}/msp/signcerts/cert.pem", "peer": m, "account": f"x509::{p}"}
                        for p, m in orgs.items()}}  # fmt: skip


CONFIGS = {"ethereum": evm, "geth": lambda: evm("geth"), "utxo": utxo, "elements": lambda: utxo("elements"),
           "fabric": fabric}  # fmt: skip


def secrets(config: dict, party: str) -> list[str]:
    """What only ``party`` may hold of ``config``: its private key, or its MSP folder and key file."""
    if "accounts" in config:
        return [config["accounts"][party]]
    if "keys" in config:
        return [config["keys"][party]]
    p = config["parties"][party]
    return [p["msp_dir"], p["key"]]


def state(config: dict) -> dict:
    return {"runtime": "process", "ledgers": {"led": {"kind": config["kind"], "config": config}},
            "assets": [{"symbol": "BOND", "ledger": "led", "kind": "security"}]}  # fmt: skip


@pytest.mark.parametrize("kind", CONFIGS)
def test_narrowed_config_holds_only_its_partys_secret(kind):
    config = CONFIGS[kind]()
    text = json.dumps(party_state(state(config), "seller"))
    for secret in secrets(config, "seller"):
        assert secret in text
    for other in ("buyer", "issuer", *(["miner"] if "keys" in config else [])):
        for secret in secrets(config, other):
            assert secret not in text, f"{other}'s secret {secret!r} is in the seller's file"
    if "rpc_password" in config:  # node access stays: it is not a party's key
        assert config["rpc_password"] in text


@pytest.mark.parametrize("kind", CONFIGS)
def test_counterparties_keep_their_public_identity(kind):
    config = CONFIGS[kind]()
    narrowed = party_state(state(config), "seller")["ledgers"]["led"]["config"]
    if "accounts" in config:
        assert narrowed["addresses"] == {p: Account.from_key(_evm_key(p)).address for p in ("buyer", "issuer")}
    elif "keys" in config:
        assert narrowed["pubkeys"] == {p: Key.dev(kind, p).pubkey.hex() for p in ("buyer", "issuer", "miner")}
    else:
        buyer = narrowed["parties"]["buyer"]
        assert (buyer["msp_id"], buyer["account"], buyer["msp_dir"], buyer["key"], buyer["cert"]) == \
            ("Org2MSP", "x509::buyer", "", "", "")  # fmt: skip
        # node access stays: the peers' and the orderer's endpoints and TLS CAs
        assert {o: p["tls_ca"] for o, p in narrowed["peers"].items()} == {
            o: p["tls_ca"] for o, p in config["peers"].items()
        }
        assert narrowed["orderer"] == config["orderer"]


@pytest.mark.parametrize("kind", CONFIGS)
def test_an_adapter_of_the_narrowed_config_names_but_never_signs_for_the_counterparty(kind):
    config = CONFIGS[kind]()
    full = build_adapter("led", config)
    mine = build_adapter("led", party_state(state(config), "seller")["ledgers"]["led"]["config"])
    asset = "BTC" if kind == "utxo" else "BOND"
    terms = HtlcTerms(sender="seller", recipient="buyer", asset=asset, amount=5, hashlock=HASHLOCK, expiry=10**6,
                      nonce="00" * 32)  # fmt: skip
    if kind != "fabric":
        assert mine.lock_id(terms) == full.lock_id(terms)  # the counterparty's public identity is enough
    if kind in ("utxo", "elements"):  # refused before any I/O (the others: tests/agent, on their nodes)
        theirs = terms.model_copy(update={"sender": "buyer", "recipient": "seller"})
        with pytest.raises(
            ConfigError, match=r"led: no key for party 'buyer' in this process \(it holds seller's only\)"
        ):
            run(mine.lock(theirs))
        with pytest.raises(ConfigError, match="no key for party 'buyer'.*only the recipient's key can sign a claim"):
            run(mine.claim(mine.lock_id(terms), PREIMAGE, submitter="seller"))


@pytest.mark.parametrize("kind", ["ethereum", "fabric"])
def test_issuing_needs_the_issuers_key(kind):
    mine = build_adapter("led", party_state(state(CONFIGS[kind]()), "seller")["ledgers"]["led"]["config"])
    with pytest.raises(ConfigError, match="no key for party 'issuer'.*issuing is signed by the issuer"):
        run(mine.issue("BOND", "seller", 1))  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", CONFIGS)
def test_unknown_party_is_refused_in_one_line(kind):
    parsed = build_adapter("led", CONFIGS[kind]()).config
    with pytest.raises(UnknownParty) as info:
        parsed.for_party("mallory")
    assert "'mallory'" in str(info.value) and "\n" not in str(info.value)
    narrowed = parsed.for_party("seller")
    with pytest.raises(UnknownParty):  # a counterparty known by its public identity has no key to narrow to
        narrowed.for_party("buyer")


def test_a_kind_that_cannot_narrow_says_so():
    class Other(LedgerConfig):
        kind: str = "other"

    with pytest.raises(NotSupportedError, match="kind 'other'"):
        Other().for_party("seller")


def test_party_state_leaves_out_a_ledger_without_the_party():
    two = state(evm())
    only_seller = {**fabric(), "parties": {"seller": fabric()["parties"]["seller"]}}
    two["ledgers"]["fab"] = {"kind": "fabric", "config": only_seller}
    two["assets"].append({"symbol": "EUR", "ledger": "fab", "kind": "cash"})
    got = party_state(two, "buyer")
    assert list(got["ledgers"]) == ["led"] and [a["ledger"] for a in got["assets"]] == ["led"]
    assert got["party"] == "buyer"
    with pytest.raises(ConfigError, match="party 'mallory': on none of the ledgers"):
        party_state(two, "mallory")


def test_party_file_is_0600_from_its_creation_and_never_overwritten(tmp_path):
    path = tmp_path / "seller.json"
    old = os.umask(0)  # even a permissive umask leaves it 0600
    try:
        write_party_file(path, party_state(state(evm()), "seller"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="exists already"):
        write_party_file(path, {})
    ledger_set = LedgerSet.from_state(load_party_file(path))
    assert list(ledger_set.ledgers) == ["led"] and ledger_set.ledgers["led"].config.accounts.keys() == {"seller"}


def _file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "p.json"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("make, error", [
    (lambda t: t / "absent.json", "not found"),
    (lambda t: _file(t, json.dumps(party_state(state(evm()), "seller")), 0o644), "mode 0644, must be 0600"),
    (lambda t: _file(t, "{not json"), "not JSON"),
    (lambda t: _file(t, json.dumps({"ledgers": {}})), "no 'party' name"),
    (lambda t: _file(t, json.dumps({"party": "seller", "ledgers": {"led": {"config": {}}}})), "wrong shape"),
])  # fmt: skip
def test_load_party_file_refuses_in_one_line(tmp_path, make, error):
    with pytest.raises(ConfigError) as info:
        load_party_file(make(tmp_path))
    assert error in str(info.value) and "\n" not in str(info.value)


def run(coro):
    import asyncio

    return asyncio.run(coro)
