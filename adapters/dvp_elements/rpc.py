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

    async def __aenter__(self) -> "RpcClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # One connection at a time keeps btcd's rpcmaxclients out of the way.
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout, connector=aiohttp.TCPConnector(limit=4)
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            async with self._open().post(self.url, json=body) as resp:
                text = await resp.text()
                if resp.status == 401:
                    raise RpcUnavailable(f"{method}: the node refused the RPC credentials (HTTP 401)")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise RpcUnavailable(f"{method}: {type(exc).__name__}: {exc}") from exc
        try:
            reply = json.loads(text)
        except ValueError:
            raise RpcUnavailable(f"{method}: HTTP {resp.status}, not JSON: {text[:200]!r}") from None
        err = reply.get("error") if isinstance(reply, dict) else None
        if err:
            if isinstance(err, dict):
                raise RpcError(method, err.get("code"), str(err.get("message")))
            raise RpcError(method, None, str(err))
        if not isinstance(reply, dict) or "result" not in reply:
            raise RpcUnavailable(f"{method}: malformed reply {text[:200]!r}")
        return reply["result"]
