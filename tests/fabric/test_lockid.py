"""The Python lock/order id matches the vectors the chaincode pins (contracts/fabric/node/test/rules.test.js)."""

import hashlib

from dvp_fabric.lockid import lock_id, order_id

SECRET = bytes(range(1, 33))


def test_lock_id_vector():
    h = hashlib.sha256(SECRET).digest()
    got = lock_id("SellerBankMSP::CN=s", "BuyerBankMSP::CN=b", "BOND", 10, h, 1_700_000_600, bytes([1, 2, 3, 4]))
    assert got == "1e3b53f89f7d07af831002bac8be04f47b6676546ef4a486b2dc858c3dfe8fdb"


def test_order_id_vector():
    got = order_id(
        "SellerBankMSP::CN=s", "BuyerBankMSP::CN=b", "BOND", 10, "USD", 4000, 1_700_000_600, bytes([1, 2, 3, 4])
    )
    assert got == "c0e65a807c82b126e2840a44b60a384211122b218bd7fddc7c6ff4e111abd21f"
