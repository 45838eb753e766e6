"""dvp for Bitcoin-family UTXO ledgers (btcd, bitcoind, and Elements in :mod:`.elements`).

Wallet-less: the framework holds the keys, tracks its outputs by reading blocks
(:mod:`.chain`), builds and signs P2WPKH payments and P2WSH hashed time-locks
locally with python-bitcoinlib (:mod:`.script`, :mod:`.tx`, :mod:`.htlc`) and
talks to the node through a small JSON-RPC client (:mod:`.rpc`, :mod:`.dialect`).
:mod:`.launcher` starts local btcd regtest nodes.
"""
