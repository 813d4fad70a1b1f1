"""Section 6: ``tts_precache`` through a running Airflow (LocalExecutor), trigger → completion message.

Reuses ``LiveAirflow``/``airflow_env`` of tests/integration/live/conftest.py (api-server, scheduler,
dag-processor, triggerer in a fresh AIRFLOW_HOME on free ports). The build goes inline in the
conf, so no portal is needed; the TTS stand-in and the MongoDB database are the bench's own.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import core

LIVE_TTS_PORT = int(os.environ.get("BENCH_LIVE_TTS_PORT", "18484"))


def _ts(s: str | None) -> float | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else None


def run(records: int, work: Path, parallel: int = 4) -> dict[str, Any]:
    import pymongo

    db = core.new_db("live")
    core.configure(db, LIVE_TTS_PORT)
    os.environ.setdefault("PRECACHE_IT_DB", db)
    os.environ["PRECACHE_CACHE_PARALLEL_TASKS"] = str(parallel)
    os.environ["PRECACHE_QUEUE_DRAIN_TIMEOUT"] = "5"
    from tests.integration.live.conftest import USERNAME, LiveAirflow, airflow_env, free_port

    # the integration conftest (imported above) points the connections at its own DB and stand-ins: undo
    core.configure(db, LIVE_TTS_PORT)
    home = work / "live-airflow"
    home.mkdir(parents=True, exist_ok=True)
    csv = core.write_csv(home / f"live{records}.csv", records)
    os.environ["PRECACHE_REGISTRY_ROOTS"] = str(home)
    port = free_port()
    password = secrets.token_urlsafe(12)
    pw = home / "passwords.json"
    pw.write_text(json.dumps({USERNAME: password}))
    env = airflow_env(home, port, pw)
    env["AIRFLOW_CONN_MONGO_DEFAULT"] = os.environ["AIRFLOW_CONN_MONGO_DEFAULT"]  # the fixture may pick a DB of its own
    env["AIRFLOW_CONN_TTS_PROXY"] = os.environ["AIRFLOW_CONN_TTS_PROXY"]
    af = LiveAirflow(base_url=f"http://127.0.0.1:{port}", env=env, home=home, username=USERNAME, password=password)
    tts = core.TtsStandin(LIVE_TTS_PORT, latency_ms=50, capacity=32)
    t_start = time.perf_counter()
    try:
        (home / "logs").mkdir(exist_ok=True)
        subprocess.run(["airflow", "db", "migrate"], env=env, cwd=home, capture_output=True, check=True, timeout=600)
        af.start()
        af.wait_ready(300)
        startup = time.perf_counter() - t_start
        build = core.bench_build()
        _, distinct = core.rendered_requests(build, list(__import__("standins.samples", fromlist=["rows"]).rows(records)))
        tts.reset()
        conf = {"registry_id": f"bench-live-{records}", "build_id": build["build_id"], "registry": {"path": str(csv)},
                "build": build}
        t0 = time.time()
        run_id = af.trigger("tts_precache", conf)
        state = af.wait("tts_precache", run_id, timeout=3600)
        t_state = time.time()
        with pymongo.MongoClient(core.MONGO_BASE) as c:
            summ = c[db]["precache_runs"].find_one({"_id": conf["registry_id"]}) or {}
        comp = summ.get("completion") or {}
        if not comp.get("timestamp"):
            raise RuntimeError(f"no completion message stored in {db}.precache_runs (run {state})")
        t_done = _ts(comp["timestamp"])
        r = af.request("GET", f"/api/v2/dags/tts_precache/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        tis = r.json()["task_instances"]
        st = tts.stats()

        def span(pred: Any) -> tuple[float, float]:
            sel = [t for t in tis if pred(t["task_id"]) and t.get("start_date")]
            return (min(_ts(t["start_date"]) for t in sel), max(_ts(t["end_date"]) or t_done for t in sel)) if sel else (t0, t0)

        first = min(_ts(t["start_date"]) for t in tis if t.get("start_date"))
        ing = span(lambda x: x == "ingest")
        cache = span(lambda x: x == "cache")
        compl = span(lambda x: x == "complete")
        cache_tis = [t for t in tis if t["task_id"] == "cache"]
        ideal = len(distinct) / (32 / 0.05)
        return {
            "records": records, "state": state, "status": comp.get("status"), "wall_s": t_done - t0, "ideal_s": ideal,
            "distinct": len(distinct), "tts_requests": st["requests"], "peak_in_flight": st["peak_in_flight"],
            "parallelism": env.get("AIRFLOW__CORE__PARALLELISM"), "startup_s": startup,
            "cache_tasks": len(cache_tis), "run_state_seen_s": t_state - t0,
            "phases": {
                "trigger → first task starts (scheduling)": first - t0,
                "validate … plan (ingest itself: %.1f s)" % (ing[1] - ing[0]): cache[0] - first,
                "cache tasks, first start → last end": cache[1] - cache[0],
                "  of which summed task run time / parallel slots": sum(
                    (_ts(t["end_date"]) or t_done) - _ts(t["start_date"]) for t in cache_tis if t.get("start_date")) / parallel,
                "last cache end → completion message (deferred sensor)": t_done - cache[1],
                "  complete task span": compl[1] - compl[0],
            },
        }
    finally:
        af.stop()
        tts.stop()
        core.drop_db(db)
