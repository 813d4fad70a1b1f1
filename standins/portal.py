"""Portal API stand-in: serves bot builds from a directory of JSON files.

Run it with ``python -m standins.portal --builds-dir DIR --host 127.0.0.1 --port 8081``.

Endpoints:
    ``GET /api/v1/builds/{build_id}``: the contents of ``DIR/{build_id}.json`` as is.
    ``GET /healthz``: liveness.
    ``POST /_admin/faults``: ``{"status", "count", "delay_s", "html"}``; the next ``count``
    build requests (``-1`` = all) wait ``delay_s`` and answer with ``status`` and/or an HTML page.
    ``DELETE /_admin/faults``: clear the fault.
    ``GET /_admin/stats``: ``{"requests", "faulted"}``; ``POST /_admin/reset`` zeroes them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from standins.common import json_response, read_json, setup_logging, unauthorized

DEFAULT_BUILDS_DIR = Path(__file__).resolve().parent / "builds"
# No slash, no backslash: an id can only ever name a file directly inside the builds dir.
_BUILD_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Portal</h1></body></html>"


@dataclass
class Fault:
    """An injected misbehaviour applied to the next ``count`` build requests."""

    status: int | None = None
    count: int = 1
    delay_s: float = 0.0
    html: bool = False


@dataclass
class PortalState:
    """Mutable state of one portal app."""

    builds_dir: Path
    token: str | None
    fault: Fault | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"requests": 0, "faulted": 0})


STATE = web.AppKey("portal_state", PortalState)


def _not_found(build_id: str) -> web.Response:
    return json_response({"error": "build not found", "build_id": build_id}, status=404)


def _take_fault(state: PortalState) -> Fault | None:
    fault = state.fault
    if fault is None:
        return None
    if fault.count > 0:
        fault.count -= 1
        if fault.count == 0:
            state.fault = None
    return fault


async def get_build(request: web.Request) -> web.Response:
    """Answer ``GET /api/v1/builds/{build_id}``.

    Args:
        request: The incoming request.

    Returns:
        The build JSON, or a 401/404 (or injected) error.
    """
    state = request.app[STATE]
    state.stats["requests"] += 1
    fault = _take_fault(state)
    if fault is not None:
        state.stats["faulted"] += 1
        if fault.delay_s > 0:
            await asyncio.sleep(fault.delay_s)
        if fault.html:
            # Mimics a login page or error page from a reverse proxy in front of the portal.
            return web.Response(body=_HTML_PAGE, status=fault.status or 200, content_type="text/html")
        if fault.status is not None:
            return json_response({"error": "injected fault", "status": fault.status}, status=fault.status)
    denied = unauthorized(request, state.token)
    if denied is not None:
        return denied
    build_id = request.match_info["build_id"]
    if not _BUILD_ID.fullmatch(build_id):
        return _not_found(build_id)
    path = state.builds_dir / f"{build_id}.json"
    try:
        body = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return _not_found(build_id)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def set_faults(request: web.Request) -> web.Response:
    """Answer ``POST /_admin/faults``: install a fault, replacing any previous one."""
    spec, error = await read_json(request)
    if error is not None:
        return error
    if not isinstance(spec, dict):
        return json_response({"error": "fault must be a JSON object"}, status=422)
    status, count = spec.get("status"), spec.get("count", 1)
    delay_s, html = spec.get("delay_s", 0.0), spec.get("html", False)
    if status is not None and (type(status) is not int or not 100 <= status <= 599):
        return json_response({"error": "status must be an HTTP status code"}, status=422)
    if type(count) is not int or count == 0 or count < -1:
        return json_response({"error": "count must be a positive int or -1 (forever)"}, status=422)
    if isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)) or delay_s < 0:
        return json_response({"error": "delay_s must be a number >= 0"}, status=422)
    if not isinstance(html, bool):
        return json_response({"error": "html must be a boolean"}, status=422)
    fault = Fault(status=status, count=count, delay_s=float(delay_s), html=html)
    request.app[STATE].fault = fault
    return json_response({"fault": vars(fault)})


async def clear_faults(request: web.Request) -> web.Response:
    """Answer ``DELETE /_admin/faults``."""
    request.app[STATE].fault = None
    return json_response({"fault": None})


async def get_stats(request: web.Request) -> web.Response:
    """Answer ``GET /_admin/stats``."""
    return json_response(request.app[STATE].stats)


async def reset_stats(request: web.Request) -> web.Response:
    """Answer ``POST /_admin/reset``: zero the counters, keep the fault."""
    stats = request.app[STATE].stats
    for name in stats:
        stats[name] = 0
    return json_response(stats)


async def healthz(request: web.Request) -> web.Response:
    """Answer ``GET /healthz``."""
    return json_response({"status": "ok"})


def create_app(builds_dir: Path, token: str | None = None) -> web.Application:
    """Create the portal stand-in application.

    Args:
        builds_dir: Directory holding ``{build_id}.json`` files.
        token: Bearer token required on build requests; ``None``/empty disables auth.

    Returns:
        The aiohttp application.
    """
    app = web.Application()
    app[STATE] = PortalState(builds_dir=Path(builds_dir), token=token or None)
    app.router.add_get("/api/v1/builds/{build_id}", get_build)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/_admin/faults", set_faults)
    app.router.add_delete("/_admin/faults", clear_faults)
    app.router.add_get("/_admin/stats", get_stats)
    app.router.add_post("/_admin/reset", reset_stats)
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the portal stand-in from the command line.

    Args:
        argv: Command-line arguments; ``sys.argv[1:]`` when ``None``.
    """
    parser = argparse.ArgumentParser(description="Portal API stand-in")
    parser.add_argument("--builds-dir", type=Path,
                        default=Path(os.environ.get("PORTAL_BUILDS_DIR", DEFAULT_BUILDS_DIR)))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=os.environ.get("PORTAL_TOKEN"))
    args = parser.parse_args(argv)
    log = setup_logging()
    log.info("portal stand-in listening on http://%s:%d (builds from %s, auth %s)",
             args.host, args.port, args.builds_dir, "on" if args.token else "off")
    web.run_app(create_app(args.builds_dir, args.token), host=args.host, port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
