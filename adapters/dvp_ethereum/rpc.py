"""JSON-RPC straight over one aiohttp session: the adapter's hot path.

web3.py's request stack costs more CPU than the request itself with many swaps in flight:
the middleware and formatters, and the provider's session cache, which takes a thread lock
through the default executor on every request.  Reads, broadcasts and receipts go here
(several calls in one batch where a step needs them together); web3.py stays for ABI
encoding and the rarer calls (gas estimates, fees, permit domains)."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp

from dvp import errors


class JsonRpc:
    def __init__(self, http: aiohttp.ClientSession, url: str, ledger: str, timeout: float):
        self._http, self._url, self._ledger = http, url, ledger
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ids = itertools.count(1)

    async def call(self, method: str, params: list[Any]) -> Any:
        return (await self.batch([(method, params)]))[0]

    async def reply(self, method: str, params: list[Any]) -> dict[str, Any]:
        """The node's whole answer to one call: its ``result``, or its ``error`` (with the
        revert data a refused ``eth_call``/``eth_estimateGas`` carries), not raised."""
        return (await self._answers([(method, params)]))[0]

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """``calls`` in one HTTP request (one JSON-RPC batch; a single call is sent alone);
        their results in order.  A call the node refuses raises AdapterError with its message."""
        out = []
        for (method, _), a in zip(calls, await self._answers(calls)):
            if a.get("error"):
                raise errors.AdapterError(f"ledger {self._ledger!r}, {method}: {a['error'].get('message')}")
            out.append(a.get("result"))
        return out

    async def _answers(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        ids = [next(self._ids) for _ in calls]
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in zip(ids, calls)]
        async with self._http.post(self._url, json=body[0] if len(body) == 1 else body, timeout=self._timeout) as r:
            r.raise_for_status()
            answers = await r.json(content_type=None)
        if isinstance(answers, dict):
            if len(calls) > 1 and answers.get("error"):  # the node refused the batch as a whole
                raise errors.AdapterError(f"ledger {self._ledger!r}, batch: {answers['error'].get('message')}")
            answers = [answers]
        by_id = {a.get("id"): a for a in answers}
        return [by_id.get(i) or {"error": {"message": "no answer"}} for i in ids]
