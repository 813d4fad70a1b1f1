"""TTS proxy stand-in: validates requests, caches a small WAV per distinct body, limits capacity.

Run it with ``python -m standins.tts_proxy --store DIR --port 8082 --latency-ms 50 --capacity 32``.

Endpoints:
    ``POST /api/v1/tts``: ``{"key", "cached", "duration_ms"}``; 400 non-JSON, 422 invalid field,
    429 + ``Retry-After`` when ``capacity`` requests are already in flight, 401 without the token.
    ``GET /healthz``: liveness.
    ``GET /_admin/stats`` / ``POST /_admin/reset``: counters (reset keeps the store).
    ``POST /_admin/faults``: add one fault (or a list); ``DELETE /_admin/faults`` clears them.
    ``POST /_admin/config``: ``{"latency_ms", "capacity", "retry_after"}`` changed live.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from standins.common import json_response, read_json, setup_logging, unauthorized
from standins.tts_store import cache_key, is_number, render_wav, store_wav, validate, wav_duration_ms

__all__ = ["cache_key", "create_app", "main", "render_wav", "validate"]


def _new_stats() -> dict[str, Any]:
    return {"requests": 0, "ok": 0, "rejected_429": 0, "faulted": 0, "synthesized": 0,
            "peak_in_flight": 0, "per_key": {}, "texts": {}}


@dataclass
class ProxyState:
    """Mutable state of one TTS proxy app."""

    store: Path
    latency_ms: float
    capacity: int
    token: str | None
    retry_after: float
    in_flight: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=_new_stats)
    durations: dict[str, int] = field(default_factory=dict)
    writing: dict[str, asyncio.Future[int]] = field(default_factory=dict)


STATE = web.AppKey("tts_state", ProxyState)


def _seconds(value: float) -> str:
    return format(value, "g")  # "1" rather than "1.0"; fractions as given


def _take_fault(state: ProxyState, text: str) -> dict[str, Any] | None:
    for fault in state.faults:
        if fault["match_text"] is not None and fault["match_text"] not in text:
            continue
        if fault["count"] > 0:
            fault["count"] -= 1
            if fault["count"] == 0:
                state.faults.remove(fault)
        return fault
    return None


async def _apply_fault(request: web.Request, fault: dict[str, Any]) -> web.StreamResponse:
    # Faulted requests never take a capacity slot: a client that timed out on a delayed one
    # must not look like it exceeded its concurrency bound.
    if fault["mode"] == "drop":
        # Close without a byte of answer: the client sees a dropped connection.
        request.transport.close()
        raise asyncio.CancelledError
    status = fault["status"]
    if fault["mode"] == "delay":
        await asyncio.sleep(fault["delay_s"])
        status = status or 504
    retry_after = fault["retry_after"]
    if retry_after is None and status == 429:
        retry_after = request.app[STATE].retry_after  # a 429 always says when to come back
    headers = {"Retry-After": _seconds(retry_after)} if retry_after is not None else None
    return json_response({"error": f"injected fault: {fault['mode']} {status}"}, status=status, headers=headers)


async def synthesize(request: web.Request) -> web.StreamResponse:
    """Answer ``POST /api/v1/tts``.

    Args:
        request: The incoming request.

    Returns:
        ``{"key", "cached", "duration_ms"}``, or an error response.
    """
    state = request.app[STATE]
    stats = state.stats
    stats["requests"] += 1
    denied = unauthorized(request, state.token)
    if denied is not None:
        return denied
    body, error = await read_json(request)
    if error is not None:
        return error
    reason = validate(body)
    if reason is not None:
        return json_response({"error": reason}, status=422)
    if state.faults:
        fault = _take_fault(state, body["text"])
        if fault is not None:
            stats["faulted"] += 1
            return await _apply_fault(request, fault)
    # Check-and-increment has no await in between, so the bound is exact.
    if state.in_flight >= state.capacity:
        stats["rejected_429"] += 1
        return json_response({"error": f"capacity of {state.capacity} requests in flight reached"},
                             status=429, headers={"Retry-After": _seconds(state.retry_after)})
    state.in_flight += 1
    stats["peak_in_flight"] = max(stats["peak_in_flight"], state.in_flight)
    try:
        key = cache_key(body)
        stats["per_key"][key] = stats["per_key"].get(key, 0) + 1
        stats["texts"][key] = body["text"]
        # Cache hits pay the latency too: the real proxy still has to look the key up.
        await asyncio.sleep(state.latency_ms / 1000)
        path = state.store / key[:2] / f"{key}.wav"
        writing = state.writing.get(key)
        cached = writing is None and path.exists()
        if cached:
            duration_ms = state.durations[key] if key in state.durations else wav_duration_ms(path)
        else:
            if writing is None:
                # File creation can stall for milliseconds on a busy disk: keep it off the event
                # loop, and let identical concurrent requests share the one write.
                writing = asyncio.ensure_future(
                    asyncio.to_thread(store_wav, path, body["text"], body["sample_rate"]))
                state.writing[key] = writing
                writing.add_done_callback(lambda _: state.writing.pop(key, None))
                state.stats["synthesized"] += 1
            duration_ms = await asyncio.shield(writing)
        state.durations[key] = duration_ms
        state.stats["ok"] += 1  # not `stats`: an admin reset may have replaced it meanwhile
        return json_response({"key": key, "cached": cached, "duration_ms": duration_ms})
    finally:
        state.in_flight -= 1


def _parse_fault(spec: Any) -> dict[str, Any] | str:
    if not isinstance(spec, dict):
        return "fault must be a JSON object"
    mode = spec.get("mode", "status")
    fault = {"mode": mode, "status": spec.get("status"), "count": spec.get("count", 1),
             "delay_s": spec.get("delay_s", 0.0), "retry_after": spec.get("retry_after"),
             "match_text": spec.get("match_text")}
    if mode not in ("status", "delay", "drop"):
        return "mode must be one of status, delay, drop"
    status = fault["status"]
    if (mode == "status" or status is not None) and (type(status) is not int or not 100 <= status <= 599):
        return "status must be an HTTP status code"
    if type(fault["count"]) is not int or fault["count"] == 0 or fault["count"] < -1:
        return "count must be a positive int or -1 (forever)"
    for name in ("delay_s", "retry_after"):
        if fault[name] is not None and (not is_number(fault[name]) or fault[name] < 0):
            return f"{name} must be a number >= 0"
    if fault["match_text"] is not None and not isinstance(fault["match_text"], str):
        return "match_text must be a string"
    return fault


async def add_faults(request: web.Request) -> web.Response:
    """Answer ``POST /_admin/faults``: append one fault or a list; the first match wins."""
    spec, error = await read_json(request)
    if error is not None:
        return error
    parsed = [_parse_fault(item) for item in (spec if isinstance(spec, list) else [spec])]
    problems = [item for item in parsed if isinstance(item, str)]
    if problems:
        return json_response({"error": problems[0]}, status=422)
    state = request.app[STATE]
    state.faults.extend(parsed)
    return json_response({"faults": state.faults})


async def clear_faults(request: web.Request) -> web.Response:
    """Answer ``DELETE /_admin/faults``."""
    request.app[STATE].faults.clear()
    return json_response({"faults": []})


async def get_stats(request: web.Request) -> web.Response:
    """Answer ``GET /_admin/stats``."""
    state = request.app[STATE]
    return json_response({**state.stats, "distinct_keys": len(state.stats["per_key"]),
                          "in_flight": state.in_flight, "latency_ms": state.latency_ms,
                          "capacity": state.capacity})


async def reset_stats(request: web.Request) -> web.Response:
    """Answer ``POST /_admin/reset``: zero the counters; the store and faults stay."""
    state = request.app[STATE]
    state.stats = _new_stats()
    state.stats["peak_in_flight"] = state.in_flight
    return await get_stats(request)


async def set_config(request: web.Request) -> web.Response:
    """Answer ``POST /_admin/config``: change latency_ms, capacity and retry_after live."""
    spec, error = await read_json(request)
    if error is not None:
        return error
    if not isinstance(spec, dict):
        return json_response({"error": "config must be a JSON object"}, status=422)
    state = request.app[STATE]
    for name in ("latency_ms", "retry_after"):
        if name in spec and (not is_number(spec[name]) or spec[name] < 0):
            return json_response({"error": f"{name} must be a number >= 0"}, status=422)
    if "capacity" in spec and (type(spec["capacity"]) is not int or spec["capacity"] < 1):
        return json_response({"error": "capacity must be a positive integer"}, status=422)
    state.latency_ms = float(spec.get("latency_ms", state.latency_ms))
    state.retry_after = float(spec.get("retry_after", state.retry_after))
    state.capacity = spec.get("capacity", state.capacity)
    return json_response({"latency_ms": state.latency_ms, "capacity": state.capacity,
                          "retry_after": state.retry_after})


async def healthz(request: web.Request) -> web.Response:
    """Answer ``GET /healthz``."""
    return json_response({"status": "ok"})


def create_app(store: Path, latency_ms: float, capacity: int, token: str | None = None,
               retry_after: float = 1.0) -> web.Application:
    """Create the TTS proxy stand-in application.

    Args:
        store: Directory of cached WAV files (``<key[:2]>/<key>.wav``); created if missing.
        latency_ms: Time each admitted request takes, hit or miss.
        capacity: Most requests in flight at once; more get 429 immediately.
        token: Bearer token required on TTS requests; ``None``/empty disables auth.
        retry_after: ``Retry-After`` seconds sent with capacity 429s.

    Returns:
        The aiohttp application.
    """
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    app = web.Application()
    app[STATE] = ProxyState(store=store, latency_ms=float(latency_ms), capacity=int(capacity),
                            token=token or None, retry_after=float(retry_after))
    app.router.add_post("/api/v1/tts", synthesize)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/_admin/stats", get_stats)
    app.router.add_post("/_admin/reset", reset_stats)
    app.router.add_post("/_admin/faults", add_faults)
    app.router.add_delete("/_admin/faults", clear_faults)
    app.router.add_post("/_admin/config", set_config)
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the TTS proxy stand-in from the command line.

    Args:
        argv: Command-line arguments; ``sys.argv[1:]`` when ``None``.
    """
    env = os.environ
    parser = argparse.ArgumentParser(description="TTS proxy stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--store", type=Path, default=env.get("TTS_STORE"),
                        required="TTS_STORE" not in env)
    parser.add_argument("--latency-ms", type=float, default=float(env.get("TTS_LATENCY_MS", 50)))
    parser.add_argument("--capacity", type=int, default=int(env.get("TTS_CAPACITY", 32)))
    parser.add_argument("--retry-after", type=float, default=float(env.get("TTS_RETRY_AFTER", 1.0)))
    parser.add_argument("--token", default=env.get("TTS_TOKEN"))
    args = parser.parse_args(argv)
    if args.capacity < 1 or args.latency_ms < 0 or args.retry_after < 0:
        parser.error("capacity must be >= 1, latency-ms and retry-after >= 0")
    log = setup_logging()
    log.info("tts proxy stand-in listening on http://%s:%d (store %s, latency %g ms, capacity %d, auth %s)",
             args.host, args.port, args.store, args.latency_ms, args.capacity,
             "on" if args.token else "off")
    app = create_app(args.store, args.latency_ms, args.capacity, args.token, args.retry_after)
    # A deep backlog so bursts queue in the kernel instead of being refused before we can 429 them.
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, backlog=1024)


if __name__ == "__main__":
    main()
