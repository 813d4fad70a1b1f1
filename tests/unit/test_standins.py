"""Tests of the portal and TTS proxy stand-ins (standins/)."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from standins import portal, tts_proxy

BUILD = json.loads((portal.DEFAULT_BUILDS_DIR / "4021.json").read_text(encoding="utf-8"))
TTS_BODY: dict[str, Any] = {
    "text": "Здравствуйте, Иванов Иван Иванович!", "voice": "alena", "speed": 1.0,
    "model": "tts-ru-v3", "volume": 0.0, "sample_rate": 8000, "call_centre_noise": False,
    "reference_audio": "https://portal.example/audio/greeting.wav",
}


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[TestClient]:
    """Serve an app on a free local port and yield a client for it."""
    async with TestClient(TestServer(app)) as client:
        yield client


def run(app: web.Application, scenario: Callable[[TestClient], Awaitable[None]]) -> None:
    """Run an async scenario against an app; pytest-aiohttp is not available."""

    async def main() -> None:
        async with serve(app) as client:
            await scenario(client)

    asyncio.run(main())


def tts(tmp_path: Path, latency_ms: float = 0, capacity: int = 8, **kwargs: Any) -> web.Application:
    return tts_proxy.create_app(tmp_path / "store", latency_ms=latency_ms, capacity=capacity, **kwargs)


# --- portal -----------------------------------------------------------------------------


def test_sample_build_has_the_contract_shape() -> None:
    assert BUILD["build_id"] == "4021"
    assert BUILD["settings"]["PRECACHE_PRECACHE_QUEUE"] == "project.tts.precache.demo-4021"
    assert [m["id"] for m in BUILD["messages"]] == ["greeting", "debt", "hold"]
    assert all(m["value_from"] == "obj" for m in BUILD["messages"])
    assert BUILD["messages"][1]["audio"] is None


def test_portal_serves_build_and_404s() -> None:
    async def scenario(client: TestClient) -> None:
        resp = await client.get("/api/v1/builds/4021")
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == BUILD
        resp = await client.get("/api/v1/builds/9999")
        assert resp.status == 404
        assert await resp.json() == {"error": "build not found", "build_id": "9999"}
        for bad in ("..%2F4021", "4021%00", "a b", "%2E%2E%2Fportal.py"):
            assert (await client.get(f"/api/v1/builds/{bad}")).status == 404, bad
        assert (await client.get("/healthz")).status == 200
        assert await (await client.get("/_admin/stats")).json() == {"requests": 6, "faulted": 0}

    run(portal.create_app(portal.DEFAULT_BUILDS_DIR), scenario)


def test_portal_token() -> None:
    async def scenario(client: TestClient) -> None:
        assert (await client.get("/api/v1/builds/4021")).status == 401
        bad = {"Authorization": "Bearer nope"}
        assert (await client.get("/api/v1/builds/4021", headers=bad)).status == 401
        good = {"Authorization": "Bearer s3cret"}
        assert (await client.get("/api/v1/builds/4021", headers=good)).status == 200

    run(portal.create_app(portal.DEFAULT_BUILDS_DIR, token="s3cret"), scenario)


def test_portal_faults() -> None:
    async def scenario(client: TestClient) -> None:
        resp = await client.post("/_admin/faults", json={"status": 500, "count": 1})
        assert resp.status == 200
        assert (await client.get("/api/v1/builds/4021")).status == 500
        assert (await client.get("/api/v1/builds/4021")).status == 200
        await client.post("/_admin/faults", json={"html": True, "count": -1})
        for _ in range(2):
            resp = await client.get("/api/v1/builds/4021")
            assert resp.status == 200 and resp.content_type == "text/html"
        assert (await client.delete("/_admin/faults")).status == 200
        assert (await client.get("/api/v1/builds/4021")).content_type == "application/json"
        assert (await client.post("/_admin/faults", json={"status": "x"})).status == 422

    run(portal.create_app(portal.DEFAULT_BUILDS_DIR), scenario)


# --- TTS proxy --------------------------------------------------------------------------


def test_tts_caches_per_body(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        first = await (await client.post("/api/v1/tts", json=TTS_BODY)).json()
        second = await (await client.post("/api/v1/tts", json=TTS_BODY)).json()
        assert first["cached"] is False and second["cached"] is True
        assert first["key"] == second["key"] == tts_proxy.cache_key(TTS_BODY)
        assert first["duration_ms"] == second["duration_ms"] == 60 * len(TTS_BODY["text"])
        other = await (await client.post("/api/v1/tts", json={**TTS_BODY, "speed": 1.5})).json()
        assert other["cached"] is False and other["key"] != first["key"]
        stats = await (await client.get("/_admin/stats")).json()
        assert stats["requests"] == stats["ok"] == 3
        assert stats["synthesized"] == stats["distinct_keys"] == 2
        assert stats["per_key"][first["key"]] == 2
        assert stats["texts"][first["key"]] == TTS_BODY["text"]

    run(tts(tmp_path), scenario)
    wavs = list((tmp_path / "store").rglob("*.wav"))
    assert len(wavs) == 2
    key = tts_proxy.cache_key(TTS_BODY)
    with wave.open(str(tmp_path / "store" / key[:2] / f"{key}.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == 8 * 60 * len(TTS_BODY["text"])


def test_tts_identical_concurrent_requests_synthesize_once(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        results = await asyncio.gather(*(client.post("/api/v1/tts", json=TTS_BODY) for _ in range(3)))
        assert [r.status for r in results] == [200, 200, 200]
        assert len({(await r.json())["key"] for r in results}) == 1
        stats = await (await client.get("/_admin/stats")).json()
        assert stats["synthesized"] == 1 and stats["per_key"] == {tts_proxy.cache_key(TTS_BODY): 3}

    run(tts(tmp_path, latency_ms=50), scenario)
    assert len(list((tmp_path / "store").rglob("*"))) == 2  # one shard dir, one wav, no temp files


def test_wav_duration_is_capped() -> None:
    data, duration_ms = tts_proxy.render_wav("x" * 1000, 16000)
    assert duration_ms == 10_000
    with wave.open(io.BytesIO(data), "rb") as wav:
        assert wav.getnframes() == 160_000


@pytest.mark.parametrize(
    ("patch", "field"),
    [({"sample_rate": 0}, "sample_rate"), ({"sample_rate": "8000"}, "sample_rate"),
     ({"sample_rate": True}, "sample_rate"), ({"text": " "}, "text"), ({"voice": ""}, "voice"),
     ({"speed": 0}, "speed"), ({"volume": None}, "volume"), ({"model": 3}, "model"),
     ({"call_centre_noise": "false"}, "call_centre_noise"), ({"reference_audio": 1}, "reference_audio")],
)
def test_tts_rejects_invalid_fields(tmp_path: Path, patch: dict[str, Any], field: str) -> None:
    async def scenario(client: TestClient) -> None:
        resp = await client.post("/api/v1/tts", json={**TTS_BODY, **patch})
        assert resp.status == 422
        assert field in (await resp.json())["error"]

    run(tts(tmp_path), scenario)


def test_tts_rejects_non_json_and_missing_token(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        headers = {"Authorization": "Bearer t"}
        resp = await client.post("/api/v1/tts", data=b"{not json", headers=headers)
        assert resp.status == 400
        assert (await client.post("/api/v1/tts", json=TTS_BODY)).status == 401
        assert (await client.post("/api/v1/tts", json=TTS_BODY, headers=headers)).status == 200

    run(tts(tmp_path, token="t"), scenario)


def test_tts_capacity_gives_429(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        async def one(i: int) -> tuple[int, str | None]:
            resp = await client.post("/api/v1/tts", json={**TTS_BODY, "text": f"фраза {i}"})
            return resp.status, resp.headers.get("Retry-After")

        results = await asyncio.gather(*(one(i) for i in range(5)))
        assert Counter(status for status, _ in results) == {200: 2, 429: 3}
        assert {ra for status, ra in results if status == 429} == {"1"}
        stats = await (await client.get("/_admin/stats")).json()
        assert stats["peak_in_flight"] <= 2
        assert stats["rejected_429"] == 3 and stats["ok"] == 2

    run(tts(tmp_path, latency_ms=200, capacity=2), scenario)


def test_tts_fractional_retry_after_and_live_config(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        resp = await client.post("/_admin/config", json={"capacity": 1, "latency_ms": 200})
        assert (await resp.json())["capacity"] == 1
        results = await asyncio.gather(*(client.post("/api/v1/tts", json=TTS_BODY) for _ in range(2)))
        assert sorted(r.status for r in results) == [200, 429]
        assert [r.headers["Retry-After"] for r in results if r.status == 429] == ["0.5"]

    run(tts(tmp_path, retry_after=0.5), scenario)


def test_tts_status_fault_then_ok(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        await client.post("/_admin/faults", json={"mode": "status", "status": 503, "count": 1})
        assert (await client.post("/api/v1/tts", json=TTS_BODY)).status == 503
        assert (await client.post("/api/v1/tts", json=TTS_BODY)).status == 200
        await client.post("/_admin/faults", json={"mode": "status", "status": 429, "retry_after": 0.2})
        resp = await client.post("/api/v1/tts", json=TTS_BODY)
        assert resp.status == 429 and resp.headers["Retry-After"] == "0.2"
        stats = await (await client.get("/_admin/stats")).json()
        assert stats["requests"] == 3 and stats["faulted"] == 2
        assert stats["per_key"] == {tts_proxy.cache_key(TTS_BODY): 1}

    run(tts(tmp_path), scenario)


def test_tts_drop_fault(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        await client.post("/_admin/faults", json={"mode": "drop", "count": 1})
        with pytest.raises(aiohttp.ClientError):
            await client.post("/api/v1/tts", json=TTS_BODY)
        assert (await client.post("/api/v1/tts", json=TTS_BODY)).status == 200

    run(tts(tmp_path), scenario)


def test_tts_delay_fault_times_out_client(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        await client.post("/_admin/faults", json={"mode": "delay", "delay_s": 0.5, "count": 1})
        with pytest.raises(asyncio.TimeoutError):
            await client.post("/api/v1/tts", json=TTS_BODY, timeout=aiohttp.ClientTimeout(total=0.1))
        assert (await client.post("/api/v1/tts", json=TTS_BODY)).status == 200

    run(tts(tmp_path), scenario)


def test_tts_match_text_fault_is_permanent(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        spec = {"mode": "status", "status": 422, "match_text": "Иванов", "count": -1}
        assert (await client.post("/_admin/faults", json=spec)).status == 200
        for _ in range(3):
            assert (await client.post("/api/v1/tts", json=TTS_BODY)).status == 422
        assert (await client.post("/api/v1/tts", json={**TTS_BODY, "text": "Петров"})).status == 200
        assert (await client.delete("/_admin/faults")).status == 200
        assert (await client.post("/api/v1/tts", json=TTS_BODY)).status == 200
        reset = await (await client.post("/_admin/reset")).json()
        assert reset["requests"] == 0 and reset["per_key"] == {}

    run(tts(tmp_path), scenario)
    assert len(list((tmp_path / "store").rglob("*.wav"))) == 2  # reset keeps the store
