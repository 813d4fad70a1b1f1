"""Deployment settings read from the environment (documented in docs/contracts.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from None


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Knobs an operator may set per deployment; defaults suit a small proxy."""

    registry_roots: list[Path] = field(default_factory=list)
    batch_size: int = 100
    max_batches: int = 1000
    tts_max_in_flight: int = 32
    cache_parallel_tasks: int = 4
    tts_timeout_s: float = 30.0
    tts_max_attempts: int = 8
    tts_retry_budget_s: float = 120.0
    queue_expires_s: int = 86_400
    queue_drain_timeout_s: float = 600.0
    phrase_lease_s: float = 120.0
    download_max_bytes: int = 2 << 30
    reports_dir: Path = Path("precache-reports")
    tts_pool: str = "default_pool"
    inbox_dir: Path | None = None
    inbox_max_files: int = 100
    request_queue: str = "kv.tts.precaching.v2"

    @classmethod
    def from_env(cls) -> Settings:
        roots = [Path(p) for p in os.environ.get("PRECACHE_REGISTRY_ROOTS", "").split(os.pathsep) if p]
        return cls(
            registry_roots=roots,
            batch_size=_int("PRECACHE_BATCH_SIZE", 100),
            max_batches=_int("PRECACHE_MAX_BATCHES", 1000),
            tts_max_in_flight=_int("PRECACHE_TTS_MAX_IN_FLIGHT", 32),
            cache_parallel_tasks=_int("PRECACHE_CACHE_PARALLEL_TASKS", 4),
            tts_timeout_s=_float("PRECACHE_TTS_TIMEOUT", 30.0),
            tts_max_attempts=_int("PRECACHE_TTS_MAX_ATTEMPTS", 8),
            tts_retry_budget_s=_float("PRECACHE_TTS_RETRY_BUDGET", 120.0),
            queue_expires_s=_int("PRECACHE_QUEUE_EXPIRES", 86_400),
            queue_drain_timeout_s=_float("PRECACHE_QUEUE_DRAIN_TIMEOUT", 600.0),
            phrase_lease_s=_float("PRECACHE_PHRASE_LEASE", 120.0),
            download_max_bytes=_int("PRECACHE_DOWNLOAD_MAX_BYTES", 2 << 30),
            reports_dir=Path(
                os.environ.get("PRECACHE_REPORTS_DIR")
                or Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "precache-reports"
            ),
            tts_pool=os.environ.get("PRECACHE_TTS_POOL", "default_pool"),
            inbox_dir=Path(os.environ["PRECACHE_INBOX_DIR"]) if os.environ.get("PRECACHE_INBOX_DIR") else None,
            inbox_max_files=_int("PRECACHE_INBOX_MAX_FILES", 100),
            request_queue=os.environ.get("PRECACHE_REQUEST_QUEUE", "kv.tts.precaching.v2"),
        )

    @property
    def in_flight_per_task(self) -> int:
        """Requests one cache task may have open so that all parallel tasks stay within the cap."""
        return max(1, self.tts_max_in_flight // max(1, self.cache_parallel_tasks))
