"""Each party's key file on the real testbed: the seller's holds no other party's secret, and
an adapter built from it reads and audits any party's holdings and locks, locks and settles
as the seller, and refuses to sign for the buyer; the buyer's, holding no miner key, still
has a dev UTXO chain mine the blocks its wait for finality needs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from dvp.adapter import LedgerAdapter, TimeTravel
from dvp.errors import ConfigError, LockRefused
from dvp.models import LockStatus
from dvp.party.keys import load_party_file, party_state, write_party_file
from dvp.registry import build_adapter
from dvp.runtime.local import LocalRuntime
from dvp.testing.htlc import fee_in, make_terms, pass_time

from ..testbed import LEDGERS, htlc_asset

pytestmark = [pytest.mark.agent, pytest.mark.timeout(300)]

NAMES = [spec.name for spec in LEDGERS]
AMOUNT = 10_000  # above a UTXO chain's dust limit plus the claim fee
SECONDS = 60


@pytest.fixture(scope="module")
def full_state(run_dir: Path) -> dict:
    state = LocalRuntime(run_dir).state()
    assert state is not None
    return state


@pytest.fixture(scope="module")
def party_files(full_state: dict, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("party-keys")
    files = {}
    for party in ("seller", "buyer"):
        files[party] = folder / f"{party}.json"
        write_party_file(files[party], party_state(full_state, party))
    return files


def other_secrets(config: dict, party: str) -> list[str]:
    """Every other party's private key (EVM, UTXO), or its MSP folder, key file and the key itself (Fabric)."""
    if "accounts" in config:
        return [k for p, k in config["accounts"].items() if p != party]
    if "keys" in config:
        return [k for p, k in config["keys"].items() if p != party]
    found = []
    for p, c in config["parties"].items():
        if p != party:
            key = c["key"] or str(next((Path(c["msp_dir"]) / "keystore").glob("*")))
            pem = Path(key).read_text()
            body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
            found += [c["msp_dir"], key, body]
    return found


def test_the_sellers_file_is_0600_and_holds_no_other_partys_secret(party_files, full_state):
    path = party_files["seller"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    flat = text.replace("\\n", "").replace("\n", "")  # a PEM body split over lines in JSON
    state = json.loads(text)
    assert state["party"] == "seller" and set(state["ledgers"]) == set(NAMES)
    for name in NAMES:
        secrets = other_secrets(full_state["ledgers"][name]["config"], "seller")
        assert len(secrets) >= 2, f"{name}: the testbed has no other party to hide"
        for secret in secrets:
            assert secret not in flat, f"{name}: another party's secret is in the seller's file"


async def connected(config: dict, name: str) -> LedgerAdapter:
    adapter = build_adapter(name, config)
    await adapter.connect()
    return adapter


@pytest.mark.parametrize("name", NAMES)
async def test_an_agent_acts_for_its_own_party_only(name, party_files, full_state):
    seller_state, buyer_state = (load_party_file(party_files[p]) for p in ("seller", "buyer"))
    seller = await connected(seller_state["ledgers"][name]["config"], name)
    buyer = await connected(buyer_state["ledgers"][name]["config"], name)
    full = await connected(full_state["ledgers"][name]["config"], name)
    try:
        asset = htlc_asset(name)
        # Reads need no key: the counterparty's balance as the full view reads it.
        assert await seller.balance("buyer", asset) == await full.balance("buyer", asset)
        terms, preimage = make_terms(seller, await seller.now(), asset, seconds=SECONDS, amount=AMOUNT)
        theirs = terms.model_copy(update={"sender": "buyer", "recipient": "seller"})
        # check_lock is the ledger's verdict, for any party's lock: each side checks both.
        for side in (seller, buyer):
            await side.check_lock(terms)
            await side.check_lock(theirs)
        with pytest.raises(LockRefused, match="holds"):  # and a short one is refused for any party
            await buyer.check_lock(terms.model_copy(update={"amount": 10**12}))
        with pytest.raises(ConfigError, match=f"{name}: no key for party 'buyer' in this process"):
            await seller.lock(theirs)

        lock_id = seller.lock_id(terms)
        assert buyer.lock_id(terms) == lock_id  # both sides name the lock alike from public identities
        before = await seller.balance("seller", asset)
        sub = await seller.lock(terms)
        # The buyer's agent waits for it: on a dev UTXO chain that mines, with no miner key held.
        lock_status = (await buyer.wait_all(sub))[-1]
        state = await buyer.audit(lock_id, terms)
        assert state.status is LockStatus.LOCKED
        with pytest.raises(ConfigError, match=f"{name}: no key for party 'buyer' in this process"):
            await seller.claim(lock_id, preimage, submitter="buyer")

        if isinstance(seller, TimeTravel):
            await pass_time(seller, SECONDS + 1)
            done = (await seller.wait_all(await seller.refund(lock_id, submitter="seller")))[-1]
            fees = fee_in(lock_status, asset) + fee_in(done, asset)
            assert await seller.balance("seller", asset) == before - fees
            expected = LockStatus.REFUNDED
        else:  # no time travel (Fabric): the seller submits the claim, which pays the buyer
            paid = await buyer.balance("buyer", asset)
            await seller.wait_all(await seller.claim(lock_id, preimage, submitter="seller"))
            assert await buyer.balance("buyer", asset) == paid + AMOUNT
            expected = LockStatus.CLAIMED
        after = await buyer.get_lock(lock_id)
        assert after is not None and after.status is expected
    finally:
        for adapter in (seller, buyer, full):
            await adapter.aclose()
