"""cProfile of the cache phase in one process: CPU (``time.process_time``) and wall clock,
split into rendering, hashing, MongoDB bookkeeping (per store method), progress and TTS sends."""

from __future__ import annotations

import cProfile
import pstats
import time
from typing import Any

from bench import core

# (label, file suffix, function name): cumulative time of each; store methods separately.
SPOTS = [
    ("render (Jinja + filters)", "precache/rendering.py", "render"),
    ("dedup: request key (sha256 of canonical JSON)", "precache/models.py", "key"),
    ("store.read_rows", "hooks/store.py", "read_rows"),
    ("store.claim_new", "hooks/store.py", "claim_new"),
    ("store.settle_phrases", "hooks/store.py", "settle_phrases"),
    ("store.save_results", "hooks/store.py", "save_results"),
    ("store.mark_run_phrases", "hooks/store.py", "mark_run_phrases"),
    ("progress (lock, counts, publish)", "precache/pipeline.py", "report_progress"),
    ("TTS sends (asyncio.run of the send loop)", "asyncio/runners.py", "run"),
]


def _cum(stats: pstats.Stats, suffix: str, name: str) -> float:
    # max, not sum: nested entries of one name (asyncio's run() and Runner.run) would count twice
    return max((v[3] for (f, _, fn), v in stats.stats.items() if f.endswith(suffix) and fn == name), default=0.0)  # type: ignore[attr-defined]


def profile_cache(run: dict[str, Any], timer: str = "cpu", in_flight: int = 8) -> dict[str, Any]:
    """Every batch of ``run`` in this process under cProfile, timing CPU (``timer="cpu"``) or wall clock."""
    from precache import pipeline
    from precache.config import Settings
    from precache.hooks.rabbitmq import RabbitMQHook
    from precache.hooks.store import PrecacheStore
    from precache.hooks.tts import TtsProxyHook

    core.configure(run["db"])
    s = Settings.from_env()
    tts = TtsProxyHook(max_in_flight=in_flight)
    prof = cProfile.Profile(time.process_time if timer == "cpu" else time.perf_counter)
    with PrecacheStore() as store, RabbitMQHook() as rabbit:
        w0, c0 = time.perf_counter(), time.process_time()
        prof.enable()
        for b in run["batches"]:
            pipeline.cache_batch(run["desc"], run["build"], b, run["run_id"], run["queue"], store, rabbit, tts, s)
        prof.disable()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    st = pstats.Stats(prof)
    return {"wall_s": wall, "cpu_s": cpu, "spots": {label: _cum(st, suf, fn) for label, suf, fn in SPOTS}, "stats": st}
