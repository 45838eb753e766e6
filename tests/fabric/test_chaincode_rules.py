"""Every rule of the dvp chaincode, tried on a real Fabric network: each test attempts to
break a rule (with the `peer` CLI as the org members, or the Gateway client where the CLI
cannot: a skewed proposal timestamp, chaincode events) and checks the ledger refused it
and moved nothing.  The same rules on an in-memory ledger: contracts/fabric/node/test/.

Skipped with the reason when no Fabric install or no Node.js is here (dvp_fabric.bins).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from pathlib import Path

import pytest

from dvp_fabric.bins import fabric_problem
from dvp_fabric.launcher import FabricLauncher
from dvp_fabric.lockid import lock_id, order_id
from dvp_fabric.network import ORGS, FabricNetwork

from ..testbed import binary_missing

CH = "fabric-a"
SECRET = bytes(range(1, 33))
HASHLOCK = hashlib.sha256(SECRET).hexdigest()


@pytest.fixture(scope="module")
def rules_network(tmp_path_factory) -> FabricNetwork:
    """A Fabric network of this module's own (not the testbed's), its accounts issued BOND and EUR."""
    problem = fabric_problem()
    if problem:
        binary_missing(problem)
    launcher = FabricLauncher()
    launcher.start([CH], tmp_path_factory.mktemp("fabric-rules"), 0)
    network = launcher.network
    assert network is not None
    try:
        acct = network.accounts
        for asset, who in (("BOND", "seller"), ("EUR", "buyer")):
            issued = network.invoke(CH, network.party_env("issuer"), "Issue", acct[who], asset, "1000", check=False)
            assert issued.returncode == 0, issued.stderr
        yield network
    finally:
        network.stop()


def call(rules_network: FabricNetwork, party: str, fn: str, *args: str):
    return rules_network.invoke(CH, rules_network.party_env(party), fn, *args, check=False)


def ok(rules_network: FabricNetwork, party: str, fn: str, *args: str) -> str:
    """Submit and return the chaincode's result (the CLI prints it as payload:"...")."""
    done = call(rules_network, party, fn, *args)
    assert done.returncode == 0, done.stderr[-800:]
    m = re.search(r'payload:"((?:[^"\\]|\\.)*)"', done.stderr)
    return m.group(1) if m else ""


def refused(rules_network: FabricNetwork, party: str, code: str, fn: str, *args: str) -> None:
    done = call(rules_network, party, fn, *args)
    assert done.returncode != 0, f"{fn}{args} by {party} was accepted"
    assert code in done.stderr, done.stderr[-800:]


def bal(rules_network: FabricNetwork, who: str, asset: str) -> int:
    return int(
        rules_network.query(CH, rules_network.party_env("buyer"), "BalanceOf", rules_network.accounts[who], asset)
    )


def lock_of(rules_network: FabricNetwork, lid: str) -> dict:
    return json.loads(rules_network.query(CH, rules_network.party_env("buyer"), "GetLock", lid))


def expiry_in(seconds: int) -> str:
    return str(int(time.time()) + seconds)


def test_only_the_issuer_issues_and_the_ledger_is_initialised_once(rules_network):
    acct = rules_network.accounts
    before = bal(rules_network, "seller", "BOND")
    refused(rules_network, "seller", "DVP_UNAUTHORIZED", "Issue", acct["seller"], "BOND", "5")
    refused(rules_network, "buyer", "DVP_UNAUTHORIZED", "Issue", acct["buyer"], "BOND", "5")
    assert bal(rules_network, "seller", "BOND") == before
    # An org admin is not the issuer, and the issuer is set once: not even an admin moves it.
    admin = rules_network.admin_env(next(o for o in ORGS if o.key == "buyer"))
    assert rules_network.invoke(CH, admin, "Issue", acct["buyer"], "EUR", "5", check=False).returncode != 0
    again = rules_network.invoke(CH, admin, "InitLedger", acct["buyer"], check=False)
    assert again.returncode != 0 and "DVP_ALREADY_INITIALISED" in again.stderr
    refused(rules_network, "buyer", "DVP_UNAUTHORIZED", "InitLedger", acct["buyer"])
    assert rules_network.query(CH, rules_network.party_env("seller"), "Issuer") == acct["issuer"]


def test_the_account_is_the_msp_and_the_certificate_subject(rules_network):
    from cryptography import x509

    for party, cfg in rules_network.ledger_config(CH)["parties"].items():
        cert = x509.load_pem_x509_certificate(Path(cfg["cert"]).read_bytes())
        assert rules_network.accounts[party] == f"{cfg['msp_id']}::{cert.subject.rfc4514_string()}"


def test_lock_id_comes_from_every_term_and_a_duplicate_is_refused(rules_network):
    acct = rules_network.accounts
    expiry = expiry_in(600)
    lid = ok(rules_network, "seller", "Lock", acct["buyer"], "BOND", "7", HASHLOCK, expiry, "01")
    assert lid == lock_id(acct["seller"], acct["buyer"], "BOND", 7, bytes.fromhex(HASHLOCK), int(expiry), b"\x01")
    assert lock_of(rules_network, lid)["status"] == "LOCKED"
    before = bal(rules_network, "seller", "BOND")
    refused(rules_network, "seller", "DVP_LOCK_EXISTS", "Lock", acct["buyer"], "BOND", "7", HASHLOCK, expiry, "01")
    assert bal(rules_network, "seller", "BOND") == before
    other = ok(rules_network, "seller", "Lock", acct["buyer"], "BOND", "7", HASHLOCK, expiry, "02")
    assert other != lid


def test_bad_lock_terms_are_refused_and_move_nothing(rules_network):
    acct = rules_network.accounts
    before = bal(rules_network, "seller", "BOND")
    later = expiry_in(600)
    for args, code in [
        ((acct["buyer"], "BOND", "0", HASHLOCK, later, "03"), "DVP_BAD_ARGUMENT"),
        ((acct["buyer"], "BOND", "-1", HASHLOCK, later, "03"), "DVP_BAD_ARGUMENT"),
        ((acct["buyer"], "BOND", "1", HASHLOCK[:62], later, "03"), "DVP_BAD_ARGUMENT"),
        ((acct["buyer"], "BOND", "1", "0x" + HASHLOCK[2:], later, "03"), "DVP_BAD_ARGUMENT"),
        ((acct["buyer"], "BOND", "1", HASHLOCK, expiry_in(-5), "03"), "DVP_BAD_ARGUMENT"),
        ((acct["seller"], "BOND", "1", HASHLOCK, later, "03"), "DVP_BAD_ARGUMENT"),
        ((acct["buyer"], "BOND", str(before + 1), HASHLOCK, later, "03"), "DVP_INSUFFICIENT_FUNDS"),
        ((acct["buyer"], "BOND", "1", HASHLOCK, later), "DVP_BAD_ARGUMENT"),  # five arguments
    ]:
        refused(rules_network, "seller", code, "Lock", *args)
    assert bal(rules_network, "seller", "BOND") == before


def test_preimage_is_exactly_32_raw_bytes_under_sha256(rules_network):
    acct = rules_network.accounts
    lid = ok(rules_network, "seller", "Lock", acct["buyer"], "BOND", "10", HASHLOCK, expiry_in(600), "10")
    hex_text = SECRET.hex().encode().hex()[:64]  # the hex text of the secret, taken as bytes
    for pre in ["00" * 32, SECRET[:31].hex(), SECRET.hex() + "00", hex_text, "0x" + SECRET.hex(), "zz"]:
        refused(rules_network, "buyer", "DVP_INVALID_PREIMAGE", "Claim", lid, pre)
    # A 33-byte preimage is refused even when its SHA-256 is the hashlock.
    long = SECRET + b"\x07"
    lid33 = ok(
        rules_network,
        "seller",
        "Lock",
        acct["buyer"],
        "BOND",
        "10",
        hashlib.sha256(long).hexdigest(),
        expiry_in(600),
        "11",
    )
    refused(rules_network, "buyer", "DVP_INVALID_PREIMAGE", "Claim", lid33, long.hex())
    assert lock_of(rules_network, lid)["status"] == "LOCKED" and lock_of(rules_network, lid33)["status"] == "LOCKED"


def test_claim_pays_the_fixed_recipient_whoever_submits_and_only_once(rules_network):
    acct = rules_network.accounts
    lid = ok(rules_network, "seller", "Lock", acct["buyer"], "BOND", "12", HASHLOCK, expiry_in(600), "20")
    buyer, issuer = bal(rules_network, "buyer", "BOND"), bal(rules_network, "issuer", "BOND")
    ok(rules_network, "issuer", "Claim", lid, SECRET.hex())  # the issuer submits; the buyer is paid
    assert bal(rules_network, "buyer", "BOND") == buyer + 12 and bal(rules_network, "issuer", "BOND") == issuer
    lock = lock_of(rules_network, lid)
    assert lock["status"] == "CLAIMED" and lock["preimage"] == SECRET.hex()
    refused(rules_network, "buyer", "DVP_LOCK_NOT_ACTIVE", "Claim", lid, SECRET.hex())
    refused(rules_network, "seller", "DVP_LOCK_NOT_ACTIVE", "Refund", lid)
    refused(rules_network, "buyer", "DVP_LOCK_NOT_FOUND", "Claim", "00" * 32, SECRET.hex())
    assert bal(rules_network, "buyer", "BOND") == buyer + 12


def test_refund_only_by_the_sender_after_expiry_and_no_claim_after_expiry(rules_network):
    acct = rules_network.accounts
    expiry = int(time.time()) + 4
    lid = ok(rules_network, "seller", "Lock", acct["buyer"], "BOND", "9", HASHLOCK, str(expiry), "30")
    seller = bal(rules_network, "seller", "BOND")
    refused(rules_network, "seller", "DVP_LOCK_NOT_EXPIRED", "Refund", lid)
    time.sleep(max(0.0, expiry + 1.2 - time.time()))  # expiry is judged on the proposal's timestamp
    refused(rules_network, "buyer", "DVP_LOCK_EXPIRED", "Claim", lid, SECRET.hex())
    refused(rules_network, "buyer", "DVP_UNAUTHORIZED", "Refund", lid)
    refused(rules_network, "issuer", "DVP_UNAUTHORIZED", "Refund", lid)
    ok(rules_network, "seller", "Refund", lid)
    assert bal(rules_network, "seller", "BOND") == seller + 9
    assert lock_of(rules_network, lid)["status"] == "REFUNDED"
    refused(rules_network, "seller", "DVP_LOCK_NOT_ACTIVE", "Refund", lid)


def test_dvp_moves_both_legs_in_the_buyers_one_transaction_or_nothing(rules_network):
    acct = rules_network.accounts
    expiry = expiry_in(600)
    oid = ok(rules_network, "seller", "ProposeOrder", acct["buyer"], "BOND", "5", "EUR", "300", expiry, "40")
    assert oid == order_id(acct["seller"], acct["buyer"], "BOND", 5, "EUR", 300, int(expiry), b"\x40")
    start = {(w, a): bal(rules_network, w, a) for w in ("seller", "buyer") for a in ("BOND", "EUR")}
    refused(rules_network, "seller", "DVP_UNAUTHORIZED", "AcceptOrder", oid)
    refused(rules_network, "issuer", "DVP_UNAUTHORIZED", "AcceptOrder", oid)
    refused(rules_network, "buyer", "DVP_UNAUTHORIZED", "CancelOrder", oid)
    # A leg the buyer cannot pay: the settlement fails whole.
    big = ok(
        rules_network,
        "seller",
        "ProposeOrder",
        acct["buyer"],
        "BOND",
        "5",
        "EUR",
        str(start["buyer", "EUR"] + 1),
        expiry,
        "41",
    )
    refused(rules_network, "buyer", "DVP_INSUFFICIENT_FUNDS", "AcceptOrder", big)
    assert {(w, a): bal(rules_network, w, a) for (w, a) in start} == start
    ok(rules_network, "buyer", "AcceptOrder", oid)  # one transaction
    assert bal(rules_network, "seller", "BOND") == start["seller", "BOND"] - 5
    assert bal(rules_network, "buyer", "BOND") == start["buyer", "BOND"] + 5
    assert bal(rules_network, "buyer", "EUR") == start["buyer", "EUR"] - 300
    assert bal(rules_network, "seller", "EUR") == start["seller", "EUR"] + 300
    assert json.loads(rules_network.query(CH, rules_network.party_env("buyer"), "GetOrder", oid))["status"] == "SETTLED"
    refused(rules_network, "buyer", "DVP_ORDER_NOT_OPEN", "AcceptOrder", oid)
    refused(rules_network, "seller", "DVP_ORDER_NOT_OPEN", "CancelOrder", oid)
    ok(rules_network, "seller", "CancelOrder", big)
    refused(rules_network, "buyer", "DVP_ORDER_NOT_OPEN", "AcceptOrder", big)


def test_an_order_cannot_be_accepted_at_or_after_expiry(rules_network):
    acct = rules_network.accounts
    expiry = int(time.time()) + 3
    oid = ok(rules_network, "seller", "ProposeOrder", acct["buyer"], "BOND", "1", "EUR", "1", str(expiry), "50")
    time.sleep(max(0.0, expiry + 1.2 - time.time()))
    refused(rules_network, "buyer", "DVP_ORDER_EXPIRED", "AcceptOrder", oid)


# ---- through the Gateway: what the peer CLI cannot do


def _gateway(rules_network: FabricNetwork, party: str):
    gw = pytest.importorskip("dvp_fabric.gateway", reason="the Gateway client needs the fabric extra (grpcio)")
    cfg = rules_network.ledger_config(CH)
    p, peer = cfg["parties"][party], cfg["peers"][cfg["parties"][party]["peer"]]
    identity, signer = gw.load_msp(p["msp_id"], p["msp_dir"], p["cert"], p["key"])
    connection = gw.connect(peer["endpoint"], Path(peer["tls_ca"]).read_bytes(), host_name=peer["host_name"])
    return gw, connection, gw.Gateway(connection, identity, signer).get_channel(CH).get_contract("dvp")


def test_a_proposal_whose_timestamp_strays_beyond_the_skew_is_refused(rules_network):
    acct = rules_network.accounts
    skew = rules_network.ledger_config(CH)["max_skew_seconds"]

    async def main():
        gw, connection, contract = _gateway(rules_network, "seller")
        try:
            for shift in (-(skew + 60), skew + 60):
                proposal = contract.new_proposal("Transfer", acct["buyer"], "BOND", "1", timestamp=time.time() + shift)
                with pytest.raises(gw.EndorseError) as err:
                    await proposal.endorse()
                assert any("DVP_CLOCK_SKEW" in m for m in err.value.peer_messages + [str(err.value)]), err.value
            # Within the bound the same transfer is endorsed.
            tx = await contract.new_proposal(
                "Transfer", acct["buyer"], "BOND", "1", timestamp=time.time() - skew / 2
            ).endorse()
            await (await tx.submit()).expect_valid()
        finally:
            await connection.close()

    before = bal(rules_network, "seller", "BOND")
    asyncio.run(main())
    assert bal(rules_network, "seller", "BOND") == before - 1


def test_lock_claim_refund_and_settlement_emit_events(rules_network):
    acct = rules_network.accounts
    expiry = int(time.time()) + 3
    claimed = ok(rules_network, "seller", "Lock", acct["buyer"], "BOND", "2", HASHLOCK, expiry_in(600), "60")
    ok(rules_network, "buyer", "Claim", claimed, SECRET.hex())
    refunded = ok(rules_network, "seller", "Lock", acct["buyer"], "BOND", "2", HASHLOCK, str(expiry), "61")
    time.sleep(max(0.0, expiry + 1.2 - time.time()))
    ok(rules_network, "seller", "Refund", refunded)
    oid = ok(rules_network, "seller", "ProposeOrder", acct["buyer"], "BOND", "1", "EUR", "1", expiry_in(600), "62")
    ok(rules_network, "buyer", "AcceptOrder", oid)

    async def main() -> list:
        _, connection, contract = _gateway(rules_network, "buyer")
        events = []
        try:
            stream = contract.channel.chaincode_events("dvp", start_block=0)

            async def read():
                async for ev in stream:
                    events.append((ev.name, json.loads(ev.payload)))
                    if ev.name == "DvpSettled" and events[-1][1]["order"]["id"] == oid:
                        return

            async with asyncio.timeout(30):
                await read()
        finally:
            await connection.close()
        return events

    events = asyncio.run(main())
    by_id = {(name, (p.get("lock") or p.get("order") or {}).get("id")) for name, p in events}
    for name, ident in [
        ("HtlcLocked", claimed),
        ("HtlcClaimed", claimed),
        ("HtlcLocked", refunded),
        ("HtlcRefunded", refunded),
        ("DvpProposed", oid),
        ("DvpSettled", oid),
    ]:
        assert (name, ident) in by_id, f"no {name} event for {ident}"
    claim = next(p for name, p in events if name == "HtlcClaimed" and p["lock"]["id"] == claimed)
    assert claim["lock"]["preimage"] == SECRET.hex() and claim["txId"]
