"""Building blocks of ``make bench``: a private TTS stand-in, the cache phase driven like
LocalExecutor would (one process per parallel slot), the naive loop, a bare asyncio client,
ingest in a subprocess, and a cProfile of our own code.

Everything runs against the shared RabbitMQ / MongoDB-protocol server but in databases,
queues and stand-in ports of its own (``BENCH_DB_PREFIX``, ``BENCH_TTS_PORT``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for p in (str(REPO / "plugins"), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

MONGO_BASE = os.environ.get("BENCH_MONGO_BASE", "mongodb://127.0.0.1:27017")
TTS_PORT = int(os.environ.get("BENCH_TTS_PORT", "18482"))
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "bench")
RUN_TAG = uuid.uuid4().hex[:6]


def configure(db: str, tts_port: int = TTS_PORT) -> None:
    """Point the project's hooks (via Airflow connections in the environment) at ``db``."""
    os.environ["AIRFLOW_CONN_MONGO_DEFAULT"] = f"{MONGO_BASE.replace('mongodb:', 'mongo:')}/{db}"
    os.environ["AIRFLOW_CONN_TTS_PROXY"] = f"http://127.0.0.1:{tts_port}"
    os.environ.setdefault("AIRFLOW_CONN_RABBITMQ_DEFAULT", "amqp://guest:guest@127.0.0.1:5672/%2F")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), str(REPO)])


def new_db(label: str) -> str:
    return f"{DB_PREFIX}_{RUN_TAG}_{label}"


def drop_db(db: str) -> None:
    import pymongo

    with pymongo.MongoClient(MONGO_BASE) as c:
        c.drop_database(db)


def bench_build() -> dict[str, Any]:
    """The demo build (3 messages: greeting, debt with rubles/date_ru, a static hold line),
    without its fixed queue so that every bench run gets a queue of its own."""
    b = json.loads((REPO / "standins/builds/4021.json").read_text(encoding="utf-8"))
    b["settings"].pop("PRECACHE_PRECACHE_QUEUE", None)
    return b


# --- the TTS stand-in ------------------------------------------------------------------------


class TtsStandin:
    def __init__(self, port: int = TTS_PORT, latency_ms: float = 50, capacity: int = 32) -> None:
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.store = tempfile.mkdtemp(prefix="bench-tts-")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "standins.tts_proxy", "--store", self.store, "--port", str(port),
             "--latency-ms", str(latency_ms), "--capacity", str(capacity)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from standins.common import wait_port

        wait_port(port, 30)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        import requests

        return requests.request(method, self.url + path, json=body, timeout=30).json()

    def stats(self) -> dict[str, Any]:
        s = self._call("GET", "/_admin/stats")
        s.pop("texts", None)
        s["per_key_max"] = max(s.pop("per_key").values(), default=0)
        return s

    def reset(self) -> None:
        self._call("POST", "/_admin/reset")

    def config(self, **kw: Any) -> None:
        self._call("POST", "/_admin/config", kw)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- data ---------------------------------------------------------------------------------------


def write_csv(path: Path, n: int) -> Path:
    from standins.samples import write_csv as w

    return w(path, n)


def rendered_requests(build: dict[str, Any], objs: list[dict[str, str]]) -> tuple[int, dict[str, Any]]:
    """(rendered phrase count, distinct key → request) computed independently of the pipeline."""
    from precache.models import Build
    from precache.rendering import Renderer

    r = Renderer(Build.model_validate(build))
    n, distinct = 0, {}
    for i, obj in enumerate(objs, 1):
        for x in r.render({"_id": str(i), "row": i, "obj": obj}):
            if x.request is not None:
                n += 1
                distinct.setdefault(x.request.key(), x.request)
    return n, distinct


# --- the pipeline, driven like LocalExecutor --------------------------------------------------------


def prepare_run(db: str, registry_id: str, conf_registry: dict[str, Any], build: dict[str, Any]) -> dict[str, Any]:
    """validate → ingest → parse_build → declare → plan, in this process. Returns the run's context."""
    from precache import pipeline
    from precache.config import Settings
    from precache.hooks.rabbitmq import RabbitMQHook
    from precache.hooks.store import PrecacheStore

    configure(db)
    settings = Settings.from_env()
    conf = {"registry_id": registry_id, "build_id": build["build_id"], "registry": conf_registry}
    desc = pipeline.validate(conf)
    run_id = f"bench__{registry_id}__{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    with PrecacheStore() as store:
        total = pipeline.ingest(conf, store, settings)["total"]
    t_ingest = time.perf_counter() - t0
    build_raw = pipeline.parse_build(build, build["build_id"])
    with PrecacheStore() as store, RabbitMQHook() as rabbit:
        queue = pipeline.declare(desc, build_raw, total, run_id, store, rabbit, settings)["queue"]
    t0 = time.perf_counter()
    with PrecacheStore() as store:
        pipeline.snapshot(desc, total, run_id, store, settings)
    t_snapshot = time.perf_counter() - t0
    batches = pipeline.plan(total, settings)
    return {"snapshot_s": t_snapshot, "db": db, "desc": desc, "build": build_raw, "run_id": run_id, "queue": queue, "batches": batches,
            "total": total, "ingest_s": t_ingest}


def _cache_task(db: str, desc: dict, build: dict, bounds: dict, run_id: str, queue: str, in_flight: int) -> tuple[dict, float]:
    """One mapped ``cache`` task instance, as the DAG's task body runs it (the DAG's ``cache``)."""
    configure(db)
    from precache import pipeline
    from precache.config import Settings
    from precache.hooks.rabbitmq import RabbitMQHook
    from precache.hooks.store import PrecacheStore
    from precache.hooks.tts import TtsProxyHook

    s = Settings.from_env()
    c0 = time.process_time()
    tts = TtsProxyHook(max_in_flight=in_flight, timeout_s=s.tts_timeout_s, max_attempts=s.tts_max_attempts,
                       retry_budget_s=s.tts_retry_budget_s)
    with PrecacheStore() as store, RabbitMQHook() as rabbit:
        counts = pipeline.cache_batch(desc, build, bounds, run_id, queue, store, rabbit, tts, s)
    return counts, time.process_time() - c0


def _warm(db: str, plugins_dir: str | None) -> int:
    configure(db)
    if plugins_dir:  # another version of the code (the bench's "before"): first on the path
        sys.path.insert(0, plugins_dir)
    import precache.pipeline  # noqa: F401  (imports paid once per worker, as a warm executor slot would)

    return os.getpid()


_POOLS: dict[tuple[int, str | None], ProcessPoolExecutor] = {}


def worker_pool(parallel: int, plugins_dir: Path | None = None) -> ProcessPoolExecutor:
    """``parallel`` warm worker processes (started once, reused by every cache run of that code)."""
    import multiprocessing as mp

    key = (parallel, str(plugins_dir) if plugins_dir else None)
    if key not in _POOLS:
        ex = ProcessPoolExecutor(parallel, mp_context=mp.get_context("spawn"), initializer=_warm, initargs=("", key[1]))
        list(ex.map(_pid, range(parallel)))  # every worker started and imported before any clock starts
        _POOLS[key] = ex
    return _POOLS[key]


def close_pools(plugins_dir: Path | None = None) -> None:
    for key in [k for k in _POOLS if plugins_dir is None or k[1] == str(plugins_dir)]:
        _POOLS.pop(key).shutdown()


def run_cache_phase(run: dict[str, Any], parallel: int = 4, in_flight_per_task: int = 8,
                    plugins_dir: Path | None = None) -> dict[str, Any]:
    """All batches through ``parallel`` worker processes (LocalExecutor's parallel slots).

    ``plugins_dir``: run another version of ``precache`` (e.g. the code before a fix)."""
    ex = worker_pool(parallel, plugins_dir)
    t0 = time.perf_counter()
    futs = [ex.submit(_cache_task, run["db"], run["desc"], run["build"], b, run["run_id"], run["queue"],
                      in_flight_per_task) for b in run["batches"]]
    res = [f.result() for f in futs]
    t1 = time.perf_counter()
    # The records' statuses are part of the phase: on FerretDB they are written at the end, by `complete`.
    configure(run["db"])
    from precache.hooks.store import PrecacheStore

    with PrecacheStore() as store:
        store.apply_results(run["desc"]["collection"], run["desc"]["registry_id"], run["run_id"])
    wall = time.perf_counter() - t0
    totals = {k: sum(c[k] for c, _ in res) for k in ("processed", "cached", "failed")}
    return {"wall_s": wall, "apply_s": wall - (t1 - t0), "cpu_s": sum(cpu for _, cpu in res), **totals}


def _pid(_: int) -> int:
    time.sleep(0.2)  # so that every worker has started (and imported) before the clock starts
    return os.getpid()


def delete_queue(name: str) -> None:
    import pika

    try:
        conn = pika.BlockingConnection(pika.URLParameters(os.environ.get(
            "AIRFLOW_CONN_RABBITMQ_DEFAULT", "amqp://guest:guest@127.0.0.1:5672/%2F")))
    except Exception:  # noqa: BLE001
        return
    try:
        conn.channel().queue_delete(name)
    finally:
        conn.close()


# --- baselines ------------------------------------------------------------------------------------


def naive_loop(url: str, requests_: list[Any], seconds: float) -> dict[str, Any]:
    """The seed's loop: one phrase at a time, wait for the answer, next phrase."""
    import requests

    sent, t0 = 0, time.perf_counter()
    with requests.Session() as s:
        for req in requests_:
            r = s.post(url + "/api/v1/tts", json=req.model_dump(), timeout=30)
            r.raise_for_status()
            sent += 1
            if time.perf_counter() - t0 >= seconds:
                break
    wall = time.perf_counter() - t0
    return {"phrases": sent, "wall_s": wall, "rate": sent / wall}


async def _bare(url: str, bodies: list[dict], concurrency: int) -> None:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def one(b: dict) -> None:
            async with sem, s.post(url + "/api/v1/tts", json=b) as r:
                await r.read()
                assert r.status == 200, r.status

        await asyncio.gather(*(one(b) for b in bodies))


def bare_client(url: str, requests_: list[Any], concurrency: int) -> dict[str, Any]:
    """The practical ceiling: nothing but aiohttp, a semaphore of C, and the phrases."""
    bodies = [r.model_dump() for r in requests_]
    t0 = time.perf_counter()
    asyncio.run(_bare(url, bodies, concurrency))
    wall = time.perf_counter() - t0
    return {"phrases": len(bodies), "wall_s": wall, "rate": len(bodies) / wall}


# --- ingest ----------------------------------------------------------------------------------------

_INGEST_CHILD = r"""
import json, resource, sys, time
sys.path[:0] = {paths!r}
from bench.core import configure
configure({db!r})
from precache import pipeline
from precache.config import Settings
from precache.hooks.store import PrecacheStore
conf = {{"registry_id": {rid!r}, "build_id": "4021", "registry": {{"path": {path!r}}}}}
t0 = time.perf_counter()
with PrecacheStore() as store:
    total = pipeline.ingest(conf, store, Settings.from_env())["total"]
wall = time.perf_counter() - t0
print(json.dumps({{"total": total, "wall_s": wall, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def snapshot_in(db: str, registry_id: str, total: int) -> float:
    """Seconds of ``pipeline.snapshot`` (the row snapshot of ``plan``) for a registry ingested into ``db``."""
    from precache import pipeline
    from precache.config import Settings
    from precache.hooks.store import PrecacheStore

    configure(db)
    t0 = time.perf_counter()
    with PrecacheStore() as store:
        desc = {"collection": "registry_records", "registry_id": registry_id}
        pipeline.snapshot(desc, total, "bench-snapshot", store, Settings())
    return time.perf_counter() - t0


def ingest_subprocess(db: str, registry_id: str, path: Path, plugins_dir: Path | None = None) -> dict[str, Any]:
    """``pipeline.ingest`` in a fresh interpreter; peak RSS is that process's ``ru_maxrss``."""
    code = _INGEST_CHILD.format(paths=[str(plugins_dir or REPO / "plugins"), str(REPO)], db=db, rid=registry_id, path=str(path))
    env = {**os.environ, "PRECACHE_REGISTRY_ROOTS": str(path.parent)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def bare_insert(db: str, registry_id: str, path: Path) -> dict[str, Any]:
    """``insert_many`` (1,000 per call, unordered) of the documents ingest writes; only the inserts are timed."""
    import pymongo

    from precache.hooks.store import WRITE_CHUNK, chunks, record_id
    from precache.registry import iter_csv

    with open(path, "rb") as f:
        docs = [{"_id": record_id(registry_id, i), "registry_id": registry_id, "row": i, "obj": obj,
                 "precache": {"status": "pending"}} for i, obj in enumerate(iter_csv(f, str(path)), 1)]
    with pymongo.MongoClient(MONGO_BASE) as c:
        coll = c[db]["bare_insert"]
        coll.create_index([("registry_id", 1), ("row", 1)], unique=True)
        t0 = time.perf_counter()
        for part in chunks(docs, WRITE_CHUNK):
            coll.insert_many(part, ordered=False)
        wall = time.perf_counter() - t0
    return {"total": len(docs), "wall_s": wall}


def rusage_children_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# --- the server's statement costs (why the fix is what it is) ---------------------------------------


def probe_statements(db: str, n: int = 20_000, k: int = 100) -> dict[str, float]:
    """Milliseconds per statement shape on a collection of ``n`` small documents, ``k`` of them touched."""
    import pymongo
    from pymongo import UpdateOne

    out: dict[str, float] = {}
    with pymongo.MongoClient(MONGO_BASE) as c:
        t = c[db]["probe"]
        t.drop()
        t.insert_many([{"_id": f"k{i:06d}", "registry_id": "r", "row": i, "status": "pending"} for i in range(n)])
        ks = [f"k{i:06d}" for i in range(n - k, n)]  # the last ones: a scan cannot stop early

        def tm(label: str, f: Any) -> None:
            t0 = time.perf_counter()
            f()
            out[label] = 1000 * (time.perf_counter() - t0)

        tm(f"find_one by _id (x1)", lambda: t.find_one({"_id": ks[-1]}))
        tm(f"find {{_id: {{$in: {k} ids}}}}", lambda: list(t.find({"_id": {"$in": ks}})))
        tm(f"{k} x UpdateOne by _id (bulk_write, 32 per command)", lambda: [
            t.bulk_write([UpdateOne({"_id": x}, {"$set": {"status": "cached"}}) for x in ks[i:i + 32]], ordered=False)
            for i in range(0, k, 32)])
        tm(f"update_many {{_id: {{$in: {k} ids}}}}", lambda: t.update_many({"_id": {"$in": ks}}, {"$set": {"status": "x"}}))
        tm(f"delete_many {{_id: {{$in: {k} ids}}}} + insert_many {k}", lambda: (
            t.delete_many({"_id": {"$in": ks}}),
            t.insert_many([{"_id": x, "registry_id": "r", "row": 0, "status": "cached"} for x in ks])))
        t.drop()
    return out


# --- the pipeline with MongoDB taken away: what our code and the proxy alone allow -------------------


class MemoryStore:
    """Just enough of ``PrecacheStore`` for ``cache_batch``, in memory (one process)."""

    def __init__(self, docs: list[dict[str, Any]], total: int) -> None:
        self.rows = {d["row"]: d for d in docs}
        self.ledger: dict[str, dict[str, Any]] = {}
        self.results: dict[int, dict[str, Any]] = {}
        self.run = {"processed": 0, "cached": 0, "failed": 0, "total": total, "batches": {}}

    def read_rows(self, collection: str, registry_id: str, start: int, end: int, run_id: str | None = None) -> list[dict[str, Any]]:
        return [self.rows[r] for r in range(start, end + 1) if r in self.rows]

    def claim_phrases(self, keys, run_id, force, lease_s):  # type: ignore[no-untyped-def]
        mine = {k: "t" for k in keys if k not in self.ledger}
        self.ledger.update({k: {"status": "pending"} for k in mine})
        return mine, {k: None for k in keys if k not in mine}, set()

    def claim_new(self, keys, run_id, lease_s):  # type: ignore[no-untyped-def]
        mine, done, _ = self.claim_phrases(keys, run_id, False, lease_s)
        return mine, list(done)

    def check_claimed(self, keys, run_id, force, lease_s):  # type: ignore[no-untyped-def]
        return {}, {k: None for k in keys}, set()

    def settle_phrases(self, run_id: str, results: dict[str, str | None], tokens: dict[str, str]) -> None:
        self.ledger.update({k: {"status": "failed" if e else "cached", "error": e} for k, e in results.items()})

    def saved_results(self, registry_id: str, run_id: str, start: int) -> dict[str, Any] | None:
        return self.results.get(start)

    def save_results(self, registry_id, run_id, start, end, processed, failures):  # type: ignore[no-untyped-def]
        return self.results.setdefault(start, {"start": start, "end": end, "processed": processed, "failures": failures})

    def apply_results(self, collection, registry_id, run_id, only=None):  # type: ignore[no-untyped-def]
        return 0  # the records' statuses are not what this measures

    def mark_run_phrases(self, run_id: str, keys: Any) -> None:
        pass

    def acquire_lock(self, registry_id: str, run_id: str, batch: str) -> tuple[str, dict[str, Any]]:
        return "t", self.run

    def release_lock(self, registry_id: str, token: str, fields: dict[str, Any] | None = None) -> None:
        self.run.update(fields or {})

    def set_batch_counts(self, registry_id, run_id, batch, counts, doc=None):  # type: ignore[no-untyped-def]
        old = self.run["batches"].get(batch, {})
        for k in ("processed", "cached", "failed"):
            self.run[k] += counts[k] - old.get(k, 0)
        self.run["batches"][batch] = counts
        return self.run

    def update_run(self, registry_id: str, run_id: str, fields: dict[str, Any]) -> None:
        self.run.update(fields)


class NullRabbit:
    published = 0

    def publish_json(self, queue: str, body: dict[str, Any]) -> None:
        self.published += 1


def memory_cache_phase(n: int, in_flight: int = 32) -> dict[str, Any]:
    """``cache_batch`` over ``n`` generated records with the in-memory store, one task at ``in_flight``."""
    from precache import pipeline
    from precache.config import Settings
    from precache.hooks.tts import TtsProxyHook
    from standins.samples import rows

    build = bench_build()
    docs = [{"_id": f"m:{i}", "registry_id": "m", "row": i, "obj": o, "precache": {"status": "pending"}}
            for i, o in enumerate(rows(n), 1)]
    store, rabbit = MemoryStore(docs, n), NullRabbit()
    s = Settings()
    tts = TtsProxyHook(max_in_flight=in_flight)
    desc = {"registry_id": "m", "collection": "c", "force": False}
    build_raw = pipeline.parse_build(build, build["build_id"])
    t0, c0 = time.perf_counter(), time.process_time()
    for b in pipeline.plan_batches(n, s.batch_size, s.max_batches):
        pipeline.cache_batch(desc, build_raw, b, "mem", "q", store, rabbit, tts, s)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    distinct = len(store.ledger)
    return {"records": n, "distinct": distinct, "wall_s": wall, "cpu_s": time.process_time() - c0,
            "rate": distinct / wall, "in_flight": in_flight, "progress_messages": rabbit.published}
