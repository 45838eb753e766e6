"""A small async JSON-RPC client for btcd, bitcoind and elementsd.

It speaks JSON-RPC 1.0 over HTTP with basic auth, the dialect all three share,
and raises :class:`RpcError` (the node answered with an error) or
:class:`RpcUnavailable` (no usable answer).  Nothing else in the package opens a
connection; :mod:`.dialect` holds the calls that differ between node families.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any

import aiohttp


class RpcError(Exception):
    """The node answered the call with a JSON-RPC error."""

    def __init__(self, method: str, code: int | None, message: str):
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message


class RpcUnavailable(Exception):
    """The node could not be reached, refused the credentials, or answered garbage."""


class RpcClient:
    def __init__(self, url: str, user: str, password: str, *, timeout: float = 30.0):
        self.url = url
        self._headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> "RpcClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:  # a task left running after aclose() would open a session nobody closes
            raise RpcUnavailable(f"the RPC client of {self.url} is closed")
        if self._session is None or self._session.closed:
            # One connection at a time keeps btcd's rpcmaxclients out of the way.
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout, connector=aiohttp.TCPConnector(limit=4)
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session for good: a call after this raises RpcUnavailable."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def batch(self, method: str, params_list: list[list[Any]]) -> list[Any]:
        """One HTTP request carrying many calls of ``method`` (JSON-RPC batch, which
        btcd, bitcoind and elementsd all accept); results in order.  The first
        failed call raises its :class:`RpcError`."""
        if not params_list:
            return []
        first = next(self._ids)
        body = [
            {"jsonrpc": "1.0", "id": first + i, "method": method, "params": list(p)} for i, p in enumerate(params_list)
        ]
        for _ in range(len(params_list) - 1):
            next(self._ids)
        text, status = await self._post(method, body)
        try:
            replies = json.loads(text)
        except ValueError:
            raise RpcUnavailable(f"{method} (batch): HTTP {status}, not JSON: {text[:200]!r}") from None
        if isinstance(replies, dict):  # a node that refuses batches answers with one error
            err = replies.get("error") or {}
            raise RpcError(
                method,
                err.get("code") if isinstance(err, dict) else None,
                str(err.get("message") if isinstance(err, dict) else err),
            )
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        out = []
        for i in range(len(params_list)):
            r = by_id.get(first + i)
            if r is None:
                raise RpcUnavailable(f"{method} (batch): no reply for item {i}")
            err = r.get("error")
            if err:
                raise RpcError(
                    method,
                    err.get("code") if isinstance(err, dict) else None,
                    str(err.get("message") if isinstance(err, dict) else err),
                )
            out.append(r.get("result"))
        return out

    async def _post(self, method: str, body: Any) -> tuple[str, int]:
        for attempt in range(2):
            try:
                async with self._open().post(self.url, json=body) as resp:
                    text = await resp.text()
                    if resp.status == 401:
                        raise RpcUnavailable(f"{method}: the node refused the RPC credentials (HTTP 401)")
                    return text, resp.status
            except aiohttp.ClientOSError as exc:
                # Often a pooled keep-alive connection the node had closed. A read (get...)
                # changes nothing on the node, so it is asked once more, on a fresh connection;
                # a send is not repeated (it may have reached the node).
                if attempt == 0 and method.startswith("get"):
                    continue
                raise RpcUnavailable(f"{method}: {type(exc).__name__}: {exc}") from exc
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise RpcUnavailable(f"{method}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    async def call(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)}
        text, status = await self._post(method, body)
        try:
            reply = json.loads(text)
        except ValueError:
            raise RpcUnavailable(f"{method}: HTTP {status}, not JSON: {text[:200]!r}") from None
        err = reply.get("error") if isinstance(reply, dict) else None
        if err:
            if isinstance(err, dict):
                raise RpcError(method, err.get("code"), str(err.get("message")))
            raise RpcError(method, None, str(err))
        if not isinstance(reply, dict) or "result" not in reply:
            raise RpcUnavailable(f"{method}: malformed reply {text[:200]!r}")
        return reply["result"]
