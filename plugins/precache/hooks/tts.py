"""Async client of the TTS proxy (CONTRACTS §5), with bounded concurrency and retries."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from airflow.providers.http.hooks.http import HttpHook

from precache.models import TtsRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TtsResult:
    key: str
    ok: bool
    error: str | None = None


def bearer_headers(token: str | None) -> dict[str, str]:
    """Auth header of our ``http`` connections: the bearer token sits in the password."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def connection_base(conn_id: str) -> tuple[str, dict[str, str]]:
    """Base URL and auth headers of an ``http`` connection."""
    hook = HttpHook(method="POST", http_conn_id=conn_id)
    conn = hook.get_connection(conn_id)
    hook.get_conn().close()  # sets base_url by the provider's own host/schema/port rules
    return hook.base_url.rstrip("/"), bearer_headers(conn.password)


class TtsProxyHook:
    """Sends phrases to ``POST /api/v1/tts`` with at most ``max_in_flight`` open requests.

    429 (honouring ``Retry-After``), 5xx, timeouts and dropped connections are retried
    with exponential backoff and full jitter within ``max_attempts`` and
    ``retry_budget_s``; 400/422 are final for the phrase and carry the proxy's reason.
    """

    def __init__(
        self,
        tts_conn_id: str = "tts_proxy",
        max_in_flight: int = 8,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        retry_budget_s: float = 120.0,
    ) -> None:
        self.base_url, self.headers = connection_base(tts_conn_id)
        self._token = self.headers.get("Authorization", "").partition(" ")[2]
        self.max_in_flight = max_in_flight
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_attempts = max_attempts
        self.retry_budget_s = retry_budget_s

    async def send_all(self, requests: dict[str, TtsRequest]) -> list[TtsResult]:
        """Send every request once (keys are content addresses); results in any order."""
        if not requests:
            return []
        async with self.sender() as send:
            return await send(requests)

    @asynccontextmanager
    async def sender(self) -> AsyncIterator[Callable[[dict[str, TtsRequest]], Awaitable[list[TtsResult]]]]:
        """A ``send(requests)`` whose calls, even concurrent ones, share one session and one
        window of ``max_in_flight`` requests."""
        sem = asyncio.Semaphore(self.max_in_flight)
        connector = aiohttp.TCPConnector(limit=self.max_in_flight)
        async with aiohttp.ClientSession(connector=connector, timeout=self.timeout, headers=self.headers) as session:

            async def send(requests: dict[str, TtsRequest]) -> list[TtsResult]:
                return list(await asyncio.gather(*(self._send(session, sem, k, r) for k, r in requests.items())))

            yield send

    def _redact(self, text: str) -> str:
        """An answer or error text without our bearer token (a proxy may echo request headers)."""
        return text.replace(self._token, "***") if self._token else text

    async def _send(
        self, session: aiohttp.ClientSession, sem: asyncio.Semaphore, key: str, req: TtsRequest
    ) -> TtsResult:
        """One phrase: retried until cached, refused, out of attempts or out of budget.

        An attempt is a request the proxy received. Failing to connect at all (the proxy
        is down or restarting) uses only the time budget, so an outage shorter than
        ``retry_budget_s`` is waited out whatever ``max_attempts`` says.
        """
        url = f"{self.base_url}/api/v1/tts"
        body = req.model_dump()
        deadline = time.monotonic() + self.retry_budget_s
        backoff = 0.2
        last = "no attempt made"
        attempts = 0
        while True:
            wait = None
            async with sem:
                try:
                    async with session.post(url, json=body) as resp:
                        attempts += 1
                        if resp.status == 200:
                            await resp.read()
                            return TtsResult(key, True)
                        text = self._redact((await resp.text())[:300])
                        if resp.status in (400, 422):
                            return TtsResult(key, False, f"TTS proxy refused the phrase (HTTP {resp.status}): {text}")
                        last = f"HTTP {resp.status}: {text}"
                        if resp.status == 429:
                            wait = _retry_after(resp.headers.get("Retry-After"))
                        elif resp.status < 500:
                            return TtsResult(key, False, f"TTS proxy answered HTTP {resp.status}: {text}")
                except aiohttp.ClientConnectorError as exc:
                    last = f"proxy unreachable: {type(exc).__name__}: {self._redact(str(exc))}"
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    attempts += 1
                    last = f"{type(exc).__name__}: {self._redact(str(exc))}" if str(exc) else type(exc).__name__
            if wait is None:
                wait = random.uniform(0, backoff)
                backoff = min(backoff * 2, 10.0)
            if attempts >= self.max_attempts or time.monotonic() + wait > deadline:
                break
            await asyncio.sleep(wait)
        if attempts < self.max_attempts:
            return TtsResult(key, False, f"TTS proxy kept failing for {self.retry_budget_s:g}s ({attempts} attempts): {last}")
        return TtsResult(key, False, f"TTS proxy kept failing after {attempts} attempts: {last}")


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.0), 60.0)
    except ValueError:
        return 1.0
