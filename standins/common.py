"""Helpers shared by the stand-in services."""

from __future__ import annotations

import hmac
import json
import logging
import socket
import time
from functools import partial
from typing import Any

from aiohttp import web

# Cyrillic texts stay readable in admin output and in error reasons.
_dumps = partial(json.dumps, ensure_ascii=False)


def json_response(data: Any, status: int = 200, **kwargs: Any) -> web.Response:
    """Build a JSON response that keeps non-ASCII characters as they are.

    Args:
        data: JSON-serialisable payload.
        status: HTTP status code.
        **kwargs: Passed through to ``web.json_response`` (e.g. ``headers``).

    Returns:
        The response.
    """
    return web.json_response(data, status=status, dumps=_dumps, **kwargs)


def unauthorized(request: web.Request, token: str | None) -> web.Response | None:
    """Check the bearer token of a request.

    Args:
        request: The incoming request.
        token: The expected token; ``None`` or empty disables the check.

    Returns:
        A 401 response when the token is required and missing or wrong, else ``None``.
    """
    if not token:
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison: a stand-in, but no reason to teach bad habits.
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    return json_response(
        {"error": "missing or invalid bearer token"},
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def read_json(request: web.Request) -> tuple[Any, web.Response | None]:
    """Parse a request body as JSON.

    Args:
        request: The incoming request.

    Returns:
        ``(payload, None)`` on success, ``(None, 400 response)`` when the body is not JSON.
    """
    try:
        return json.loads(await request.read()), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, json_response({"error": f"body is not valid JSON: {exc}"}, status=400)


def setup_logging() -> logging.Logger:
    """Configure root logging for a stand-in process.

    Returns:
        The ``standins`` logger.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return logging.getLogger("standins")


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Block until something listens on 127.0.0.1:``port`` (a stand-in just started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")
