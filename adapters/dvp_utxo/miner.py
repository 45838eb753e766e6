"""A block clock for a local regtest node: mine one block every ``--interval`` seconds.

Started by :class:`~.launcher.UtxoLauncher` in its own session next to the node;
stops on SIGTERM/SIGINT, or by itself once the node has been unreachable for
``--give-up`` seconds, so it never outlives its ledger for long.  The password
comes from ``DVP_UTXO_RPC_PASSWORD``, never from the command line.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import time
import urllib.request
from types import FrameType

_stop = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _stop
    _stop = True


def call(url: str, auth: str, method: str, *params: object, timeout: float = 30.0) -> object:
    req = urllib.request.Request(
        url,
        data=json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}).encode(),
        headers={"Authorization": "Basic " + auth, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # bitcoind answers errors with HTTP 500
        reply = json.loads(exc.read() or b"{}")
    if reply.get("error"):
        raise RuntimeError(reply["error"])
    return reply.get("result")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dvp_utxo.miner")
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--dialect", default="btcd", choices=["btcd", "bitcoind", "elementsd"])
    ap.add_argument("--address", default="", help="payout address (bitcoind/elementsd)")
    ap.add_argument("--give-up", type=float, default=15.0)
    args = ap.parse_args(argv)
    password = os.environ.get("DVP_UTXO_RPC_PASSWORD", "")
    auth = base64.b64encode(f"{args.user}:{password}".encode()).decode()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    last_ok = time.monotonic()
    while not _stop:
        time.sleep(args.interval)
        if _stop:
            break
        try:
            if args.dialect == "btcd":
                call(args.url, auth, "generate", 1)
            else:
                call(args.url, auth, "generatetoaddress", 1, args.address)
            last_ok = time.monotonic()
        except RuntimeError:
            last_ok = time.monotonic()  # the node answered (e.g. already mining): try next tick
        except OSError:
            if time.monotonic() - last_ok > args.give_up:
                print("miner: node unreachable, stopping", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
