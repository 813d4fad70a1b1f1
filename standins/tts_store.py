"""Request validation, cache keys and the WAV store of the TTS proxy stand-in."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import threading
import wave
from array import array
from functools import lru_cache
from pathlib import Path
from typing import Any

MS_PER_CHAR = 60
MAX_DURATION_MS = 10_000
MAX_SAMPLE_RATE = 384_000
TONE_HZ = 440
TONE_AMPLITUDE = 1600  # about -26 dBFS: audible, not loud


def is_number(value: Any) -> bool:
    """Tell whether a JSON value is a finite number (booleans excluded)."""
    # bool is an int subclass, and NaN/Infinity are accepted by json.loads: neither is a number here.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate(body: Any) -> str | None:
    """Validate a TTS request body.

    Args:
        body: The parsed JSON body.

    Returns:
        ``None`` when valid, else a reason that names the offending field.
    """
    if not isinstance(body, dict):
        return "body must be a JSON object"
    checks = (
        ("text", lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
        ("voice", lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
        ("speed", lambda v: is_number(v) and v > 0, "a number > 0"),
        ("model", lambda v: isinstance(v, str), "a string"),
        ("volume", is_number, "a number"),
        ("sample_rate", lambda v: type(v) is int and 0 < v <= MAX_SAMPLE_RATE,
         f"a positive integer <= {MAX_SAMPLE_RATE}"),
        ("call_centre_noise", lambda v: isinstance(v, bool), "a boolean"),
    )
    for name, ok, expected in checks:
        if name not in body:
            return f"{name} is required"
        if not ok(body[name]):
            return f"{name} must be {expected}, got {body[name]!r}"
    if not isinstance(body.get("reference_audio"), (str, type(None))):
        return f"reference_audio must be a string or null, got {body['reference_audio']!r}"
    return None


def cache_key(body: dict[str, Any]) -> str:
    """Return the cache key of a request body: sha256 of its canonical JSON."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@lru_cache(maxsize=8)
def _one_second_tone(sample_rate: int) -> bytes:
    # A whole number of cycles per second, so one second tiles seamlessly to any length.
    step = 2 * math.pi * TONE_HZ / sample_rate
    samples = array("h", (int(TONE_AMPLITUDE * math.sin(step * i)) for i in range(sample_rate)))
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    return samples.tobytes()


def render_wav(text: str, sample_rate: int) -> tuple[bytes, int]:
    """Render a mono 16-bit PCM WAV whose length grows with the text.

    Args:
        text: The phrase; only its length matters.
        sample_rate: Frames per second.

    Returns:
        ``(wav_bytes, duration_ms)``.
    """
    frames = max(1, sample_rate * min(MS_PER_CHAR * len(text), MAX_DURATION_MS) // 1000)
    tone = _one_second_tone(sample_rate)
    pcm = (tone * (frames // sample_rate + 1))[: frames * 2]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buf.getvalue(), round(frames * 1000 / sample_rate)


def store_wav(path: Path, text: str, sample_rate: int) -> int:
    """Render a phrase's WAV and write it to ``path`` atomically.

    Args:
        path: Destination file; its directory is created if missing.
        text: The phrase.
        sample_rate: Frames per second.

    Returns:
        The duration in milliseconds.
    """
    data, duration_ms = render_wav(text, sample_rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp name + rename: readers never see a half-written file, even across processes.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return duration_ms


def wav_duration_ms(path: Path) -> int:
    """Return the duration of a stored WAV file in milliseconds."""
    with wave.open(str(path), "rb") as wav:
        return round(wav.getnframes() * 1000 / wav.getframerate())
