"""Fault injection on real services (issue 4), without disturbing the shared ones.

Faults that need a restart run against PRIVATE instances started here: a second RabbitMQ
node (``faults@localhost`` on 5673), a private FerretDB (27018) and a private TTS stand-in.
Retry budgets are scaled down (seconds, not minutes); docs/RELIABILITY.md states the scaling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from standins.common import wait_port
from tests.integration.conftest import BUILD_3, REPO, QueueReader, queue_exists, tts_stats

pytestmark = pytest.mark.integration

RMQ_NODE = "faults@localhost"
RMQ_PORT = int(os.environ.get("PRECACHE_IT_FAULTS_RMQ_PORT", "5673"))
MONGO_PORT = int(os.environ.get("PRECACHE_IT_FAULTS_MONGO_PORT", "27018"))
TTS_PORT = int(os.environ.get("PRECACHE_IT_FAULTS_TTS_PORT", str(int(os.environ.get("PRECACHE_IT_TTS_PORT", "18082")) + 1)))
RMQ_USER, RMQ_PASSWORD = "precache", "Rmq-S3cr3t-9f2c"
# BUILD_3 with phrases of its own: the phrase ledger is shared by the session, and these
# runs must not cache a phrase that test_pipeline counts as sent by its first run.
PREFIX = "Проверка связи. "
BUILD_F = {**BUILD_3, "build_id": "tf",
           "messages": [{**m, "template": PREFIX + m["template"]} for m in BUILD_3["messages"]]}


@pytest.fixture(scope="session", autouse=True)
def build_f(builds_dir: Path) -> str:
    (builds_dir / "tf.json").write_text(json.dumps(BUILD_F, ensure_ascii=False), encoding="utf-8")
    return "tf"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_closed(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)


# --- private services -------------------------------------------------------------------------

def rabbitmqctl(*args: str, timeout: float = 90) -> str:
    out = subprocess.run(["rabbitmqctl", "-n", RMQ_NODE, *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {out.stderr or out.stdout}")
    return out.stdout


@pytest.fixture(scope="session")
def private_rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second RabbitMQ node of our own, so that restarting it disturbs nobody."""
    if shutil.which("rabbitmq-server") is None:
        pytest.skip("rabbitmq-server is not installed")
    started = False
    base = Path()
    if not _port_open(RMQ_PORT):
        # Not under pytest's 0700 tmp root: the Debian wrapper runs the node as user rabbitmq.
        base = Path(tempfile.mkdtemp(prefix="precache-it-rmq-"))
        base.chmod(0o777)
        (base / "enabled_plugins").write_text("[].\n")  # no management plugin: no 15672 clash
        env = {**os.environ, "RABBITMQ_NODENAME": RMQ_NODE, "RABBITMQ_NODE_PORT": str(RMQ_PORT),
               "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_DIST_PORT": str(RMQ_PORT + 20000),
               "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
               "RABBITMQ_PID_FILE": str(base / "node.pid")}
        subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, timeout=60, cwd="/tmp")
        started = True
    deadline = time.monotonic() + 120
    while True:  # await_startup errors out at once while the node is not yet registered
        try:
            rabbitmqctl("await_startup", "--timeout", "60", timeout=90)
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    try:
        rabbitmqctl("add_user", RMQ_USER, RMQ_PASSWORD)
    except RuntimeError as exc:
        if "already exists" not in str(exc):
            raise
        rabbitmqctl("change_password", RMQ_USER, RMQ_PASSWORD)
    rabbitmqctl("set_permissions", RMQ_USER, ".*", ".*", ".*")
    yield f"amqp://{RMQ_USER}:{RMQ_PASSWORD}@127.0.0.1:{RMQ_PORT}/%2F"
    if started:
        subprocess.run(["rabbitmqctl", "-n", RMQ_NODE, "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


# Process-wide: pytest imports this file as ``test_faults`` and test_security_runs imports it
# as ``tests.integration.test_faults``; both copies' fixtures must share the one private server.
_SHARED: dict[str, Any] = sys.modules.setdefault("_precache_it_private", types.ModuleType("_precache_it_private")).__dict__


class PrivateProcess:
    """A service process of our own that a test may kill and start again on the same port."""

    def __init__(self, args: list[str], port: int, log: Path) -> None:
        self.args, self.port, self.log = args, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'plugins'}"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, env=env, stdout=log, stderr=log, start_new_session=True)
        wait_port(self.port)
        time.sleep(0.2)
        if self.proc.poll() is not None:  # someone else holds the port: we would test their process
            raise RuntimeError(f"{self.args[0]} exited at start (port {self.port} taken?); see {self.log}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        _wait_closed(self.port)


@pytest.fixture(scope="session")
def private_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateProcess]:
    binary = Path(os.environ.get("PRECACHE_HOME", REPO / ".run")) / "bin" / "ferretdb"
    if not binary.exists():
        pytest.skip(f"no FerretDB binary at {binary}")
    if "mongo" in _SHARED:  # a module importing this fixture gets its own copy: one process still
        yield _SHARED["mongo"]
        return
    d = tmp_path_factory.mktemp("ferretdb")
    p = PrivateProcess([str(binary), "--handler=sqlite", f"--sqlite-url=file:{d}/", f"--listen-addr=127.0.0.1:{MONGO_PORT}",
                        f"--state-dir={d}", "--debug-addr=-", "--telemetry=disable", "--log-level=warn"], MONGO_PORT, d / "log")
    p.start()
    _SHARED["mongo"] = p
    yield p
    p.kill()
    del _SHARED["mongo"]


def start_tts(tmp: Path, port: int = TTS_PORT, latency_ms: int = 20, token: str | None = None) -> PrivateProcess:
    args = [sys.executable, "-m", "standins.tts_proxy", "--store", str(tmp / "store"), "--port", str(port),
            "--latency-ms", str(latency_ms), "--capacity", "32"]
    if token:
        args += ["--token", token]
    p = PrivateProcess(args, port, tmp / "tts.log")
    p.start()
    return p


@pytest.fixture
def private_tts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateProcess]:
    p = start_tts(tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_TTS_PROXY", f"http://127.0.0.1:{TTS_PORT}")
    yield p
    p.kill()


def private_stats(port: int = TTS_PORT) -> dict[str, Any]:
    return requests.get(f"http://127.0.0.1:{port}/_admin/stats", timeout=5).json()


# --- helpers ----------------------------------------------------------------------------------

def dag_module() -> Any:
    return sys.modules["tts_precache_dag"]


@pytest.fixture
def settings(dag: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Change the DAG's deployment settings for one test (the task bodies read the module global)."""
    mod = dag_module()

    def change(**kw: Any) -> None:
        monkeypatch.setattr(mod, "SETTINGS", dataclasses.replace(mod.SETTINGS, **kw))

    return change


def records(tag: str, n: int) -> list[dict[str, str]]:
    return [{"fio": f"{tag} {i}", "sum": str(100 + i), "Дата платежа": "05.12.2026"} for i in range(1, n + 1)]


def states(dr: Any) -> dict[str, str]:
    return {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in dr.get_task_instances()}


def tts_fault(base: str, **spec: Any) -> None:
    requests.post(base + "/_admin/faults", json=spec, timeout=5).raise_for_status()


class Reader(threading.Thread):
    """Reads a run's queue on any broker, reconnecting through a broker restart."""

    def __init__(self, amqp_url: str, mongo: Any, registry_id: str, timeout: float = 120) -> None:
        super().__init__(daemon=True)
        self.amqp_url, self.mongo, self.registry_id, self.timeout = amqp_url, mongo, registry_id, timeout
        self.messages: list[dict[str, Any]] = []
        self.queue = ""

    def run(self) -> None:
        import pika

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and not self.queue:
            doc = self.mongo.precache_runs.find_one({"_id": self.registry_id})
            self.queue = (doc or {}).get("queue") or ""
            time.sleep(0.1)
        while time.monotonic() < deadline:
            try:
                conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
                try:
                    ch = conn.channel()
                    ch.queue_declare(self.queue, passive=True)
                    for method, _props, body in ch.consume(self.queue, inactivity_timeout=0.5):
                        if time.monotonic() > deadline:
                            return
                        if method is None:
                            continue
                        msg = json.loads(body)
                        ch.basic_ack(method.delivery_tag)
                        self.messages.append(msg)
                        if msg["event"] == "completed":
                            return
                finally:
                    if conn.is_open:
                        conn.close()
            except Exception:  # broker restarting, queue not declared yet: try again
                time.sleep(0.3)

    @property
    def completions(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["event"] == "completed"]

    @property
    def processed(self) -> list[int]:
        return [m["processed"] for m in self.messages if m["event"] == "progress"]


# --- TTS proxy: transient faults retried, permanent ones fail only their records ----------------

def test_retry_after_of_a_429_is_honoured(standins: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from precache.hooks.tts import TtsProxyHook
    from precache.models import TtsRequest

    text = f"Проверка Retry-After {uuid.uuid4().hex[:6]}"
    tts_fault(standins["tts"], status=429, retry_after=1.5, count=1, match_text=text)
    req = TtsRequest(text=text, voice="alena", speed=1.0, model="m", volume=0.0, sample_rate=8000, call_centre_noise=False, reference_audio=None)
    before = tts_stats(standins)
    started = time.monotonic()
    [result] = asyncio.run(TtsProxyHook(max_attempts=3, retry_budget_s=10).send_all({req.key(): req}))
    elapsed = time.monotonic() - started
    assert result.ok
    assert 1.5 <= elapsed < 3.0  # waited what the proxy asked, not the 0.2 s backoff
    after = tts_stats(standins)
    assert (after["requests"] - before["requests"], after["faulted"] - before["faulted"]) == (2, 1)


def test_transient_tts_faults_are_retried_and_every_record_is_cached(
    dag: Any, standins: dict[str, str], mongo_db: Any, settings: Any,
) -> None:
    """429, 500, 503, a response slower than the timeout, dropped connections: all retried."""
    settings(tts_timeout_s=1.0, tts_max_attempts=5, tts_retry_budget_s=20)
    tag = f"Сбойный {uuid.uuid4().hex[:6]}"
    recs = records(tag, 6)
    faults = {
        f"{tag} 1!": {"status": 429, "retry_after": 0.5, "count": 1},
        f"{tag} 2!": {"status": 500, "count": 2},
        f"{tag} 3!": {"status": 503, "count": 1},
        f"{tag} 4!": {"mode": "delay", "delay_s": 2.5, "count": 1},
        f"{tag} 5!": {"mode": "drop", "count": 2},
    }
    for text, spec in faults.items():
        tts_fault(standins["tts"], match_text=text, **spec)
    before = tts_stats(standins)
    reader = QueueReader(mongo_db, "it-transient")
    reader.start()
    dr = dag.test(run_conf={"registry_id": "it-transient", "build_id": "tf", "registry": {"records": recs}})
    reader.join(60)
    assert str(dr.state) == "success", states(dr)
    assert all(ti.try_number == 1 for ti in dr.get_task_instances())  # retried inside the hook, no task retry
    done = reader.completions[0]
    assert (done["status"], done["cached"], done["failed"]) == ("success", 6, 0)
    after = tts_stats(standins)
    assert after["faulted"] - before["faulted"] == 1 + 2 + 1 + 1 + 2
    sent = {after["texts"][k]: n - before["per_key"].get(k, 0) for k, n in after["per_key"].items() if n != before["per_key"].get(k, 0)}
    greeting = {t: n for t, n in sent.items() if t.startswith(PREFIX + "Здравствуйте")}
    # per_key counts requests that got past the faults: each phrase was synthesized once
    assert greeting == {f"{PREFIX}Здравствуйте, {tag} {i}!": 1 for i in range(1, 7)}


def test_permanent_tts_failures_fail_only_their_records_and_the_run_is_partial(
    dag: Any, standins: dict[str, str], mongo_db: Any, settings: Any,
) -> None:
    settings(tts_max_attempts=3, tts_retry_budget_s=10)
    tag = f"Отказной {uuid.uuid4().hex[:6]}"
    recs = records(tag, 4)
    tts_fault(standins["tts"], status=422, count=-1, match_text=f"{tag} 2!")
    tts_fault(standins["tts"], status=503, count=-1, match_text=f"{tag} 3!")
    before = tts_stats(standins)
    reader = QueueReader(mongo_db, "it-permanent")
    reader.start()
    try:
        dr = dag.test(run_conf={"registry_id": "it-permanent", "build_id": "tf", "registry": {"records": recs}})
    finally:
        requests.delete(standins["tts"] + "/_admin/faults", timeout=5)
    reader.join(60)
    assert str(dr.state) == "success", states(dr)
    done = reader.completions[0]
    assert (done["status"], done["total"], done["cached"], done["failed"]) == ("partial", 4, 2, 2)
    by_row = {f["row"]: f for f in done["failures"]}
    assert sorted(by_row) == [2, 3]
    assert by_row[2]["message_id"] == "greeting"
    assert by_row[2]["reason"] == 'message \'greeting\': TTS proxy refused the phrase (HTTP 422): {"error": "injected fault: status 422"}'
    assert by_row[3]["reason"] == 'message \'greeting\': TTS proxy kept failing after 3 attempts: HTTP 503: {"error": "injected fault: status 503"}'
    docs = {d["row"]: d["precache"] for d in mongo_db.registry_records.find({"registry_id": "it-permanent"})}
    assert [docs[r]["status"] for r in (1, 2, 3, 4)] == ["cached", "failed", "failed", "cached"]
    after = tts_stats(standins)
    assert after["faulted"] - before["faulted"] == 1 + 3  # the 422 was not retried, the 503 three times


def test_tts_down_mid_run_is_waited_out(
    dag: Any, private_tts: PrivateProcess, mongo_db: Any, settings: Any, tmp_path: Path,
) -> None:
    """The proxy is killed mid-run and comes back 6 s later (the issue's minute, scaled to a
    20 s budget); 3 attempts would be spent in under a second, the budget is what bounds it."""
    settings(tts_max_attempts=3, tts_retry_budget_s=20)
    tag = f"Простойный {uuid.uuid4().hex[:6]}"

    def outage() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if private_stats()["requests"] >= 30:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        private_tts.kill()
        time.sleep(6)
        private_tts.start()

    t = threading.Thread(target=outage, daemon=True)
    t.start()
    reader = QueueReader(mongo_db, "it-tts-down")
    reader.start()
    dr = dag.test(run_conf={"registry_id": "it-tts-down", "build_id": "tf", "registry": {"records": records(tag, 120)}})
    t.join(30)
    reader.join(60)
    assert str(dr.state) == "success", states(dr)
    done = reader.completions[0]
    assert (done["status"], done["cached"], done["failed"]) == ("success", 120, 0)
    assert private_stats()["requests"] > 0  # the restarted proxy got the rest


# --- RabbitMQ restarted mid-run ----------------------------------------------------------------

def test_rabbitmq_restarted_mid_run_completion_delivered_and_no_task_fails(
    dag: Any, private_rabbit: str, private_tts: PrivateProcess, mongo_db: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RABBITMQ_DEFAULT", private_rabbit)
    rid = "it-rmq-restart"
    tag = f"Брокерный {uuid.uuid4().hex[:6]}"
    restarted = threading.Event()

    def restart() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            doc = mongo_db.precache_runs.find_one({"_id": rid}) or {}
            if doc.get("published_processed", -1) >= 100 and doc.get("processed", 0) < 300:
                break
            time.sleep(0.05)
        rabbitmqctl("stop_app")
        time.sleep(2)
        rabbitmqctl("start_app")
        restarted.set()

    mongo_db.precache_runs.delete_one({"_id": rid})
    t = threading.Thread(target=restart, daemon=True)
    t.start()
    reader = Reader(private_rabbit, mongo_db, rid)
    reader.start()
    dr = dag.test(run_conf={"registry_id": rid, "build_id": "tf", "registry": {"records": records(tag, 300)}})
    t.join(60)
    reader.join(90)
    assert restarted.is_set()
    assert str(dr.state) == "success", states(dr)
    assert all(ti.try_number == 1 and str(ti.state) == "success" for ti in dr.get_task_instances()), states(dr)
    assert len(reader.completions) >= 1
    done = reader.completions[-1]
    assert (done["status"], done["total"], done["cached"], done["failed"]) == ("success", 300, 300, 0)
    assert reader.processed == sorted(reader.processed) and reader.processed[-1] == 300
    assert mongo_db.registry_records.count_documents({"registry_id": rid}) == 300


# --- a task retried mid-batch: nothing twice -----------------------------------------------------

def test_cache_task_dying_mid_batch_is_retried_without_duplicates(
    dag: Any, standins: dict[str, str], mongo_db: Any, settings: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first try of the first batch dies after writing its second slice of records but
    before counting them (the worst spot); the retry counts them, redoes nothing, sends nothing twice."""
    from precache import pipeline

    settings(batch_size=10, max_batches=2)  # 2 cache tasks of 30 rows, progress every 10
    real = pipeline.report_progress
    calls = {"n": 0}

    def dying(desc: Any, run_id: str, queue: str, batch_key: str, counts: dict[str, int], *a: Any) -> None:
        if batch_key == "b1":
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("worker killed (injected)")
        real(desc, run_id, queue, batch_key, counts, *a)

    monkeypatch.setattr(pipeline, "report_progress", dying)
    tag = f"Повторный {uuid.uuid4().hex[:6]}"
    before = tts_stats(standins)
    reader = QueueReader(mongo_db, "it-task-retry")
    reader.start()
    dr = dag.test(run_conf={"registry_id": "it-task-retry", "build_id": "tf", "registry": {"records": records(tag, 60)}})
    reader.join(60)
    assert str(dr.state) == "success", states(dr)
    first = next(ti for ti in dr.get_task_instances() if ti.task_id == "cache" and ti.map_index == 0)
    assert first.try_number == 2
    summary = mongo_db.precache_runs.find_one({"_id": "it-task-retry"})
    assert (summary["total"], summary["processed"], summary["cached"], summary["failed"]) == (60, 60, 60, 0)
    assert mongo_db.registry_records.count_documents({"registry_id": "it-task-retry"}) == 60
    assert len(reader.completions) == 1 and reader.completions[0]["cached"] == 60
    processed = [m["processed"] for m in reader.progress]
    assert processed == sorted(processed) and processed[-1] == 60
    after = tts_stats(standins)
    new = {k: n - before["per_key"].get(k, 0) for k, n in after["per_key"].items() if n != before["per_key"].get(k, 0)}
    assert set(new.values()) == {1}  # no phrase sent twice, across the two tries
    sent = {after["texts"][k] for k in new}
    greetings = {f"{PREFIX}Здравствуйте, {tag} {i}!" for i in range(1, 61)}
    debts = {f"{PREFIX}Ваша задолженность {100 + i} рублей, оплатите до 05.12.2026." for i in range(1, 61)}
    # every greeting is new; debt and hold phrases cached by an earlier test are not sent again
    assert greetings <= sent <= greetings | debts | {PREFIX + "Пожалуйста, оставайтесь на линии."}


# --- MongoDB briefly unreachable ---------------------------------------------------------------

def test_mongodb_briefly_unreachable_then_the_task_retry_finishes_the_run(
    dag: Any, private_mongo: PrivateProcess, standins: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pymongo

    from precache import pipeline

    db = f"faults_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("AIRFLOW_CONN_MONGO_DEFAULT", f"mongo://127.0.0.1:{MONGO_PORT}/{db}?serverSelectionTimeoutMS=1500")
    real = pipeline.cache_batch
    outage = {"done": False}

    def mongo_goes_away(*a: Any, **k: Any) -> Any:
        if not outage["done"]:
            outage["done"] = True
            private_mongo.kill()
            threading.Timer(3, private_mongo.start).start()
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "cache_batch", mongo_goes_away)
    rid = "it-mongo-blip"
    dr = dag.test(run_conf={"registry_id": rid, "build_id": "tf", "registry": {"records": records(f"Монгов {db}", 30)}})
    assert str(dr.state) == "success", states(dr)
    cache = next(ti for ti in dr.get_task_instances() if ti.task_id == "cache")
    assert cache.try_number == 2  # bounded: the first try failed on the outage, the retry finished
    client = pymongo.MongoClient(f"mongodb://127.0.0.1:{MONGO_PORT}", serverSelectionTimeoutMS=5000)
    try:
        summary = client[db].precache_runs.find_one({"_id": rid})
        assert (summary["status"], summary["processed"], summary["cached"]) == ("success", 30, 30)
        assert client[db].registry_records.count_documents({"registry_id": rid}) == 30
    finally:
        client.close()


def test_mongodb_down_fails_within_its_timeout_with_a_clear_error(private_mongo: PrivateProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    from pymongo.errors import ServerSelectionTimeoutError

    from precache.hooks.store import PrecacheStore

    monkeypatch.setenv("AIRFLOW_CONN_MONGO_DEFAULT", f"mongo://127.0.0.1:{MONGO_PORT}/faults_down?serverSelectionTimeoutMS=1500")
    private_mongo.kill()
    try:
        started = time.monotonic()
        with pytest.raises(ServerSelectionTimeoutError) as info, PrecacheStore() as store:
            store.get_run("x")
        assert time.monotonic() - started < 5
        assert str(info.value).startswith(f"127.0.0.1:{MONGO_PORT}: [Errno 111] Connection refused")
    finally:
        private_mongo.start()
    with PrecacheStore() as store:  # back: the same call works
        assert store.get_run("x") is None


# --- the progress queue ------------------------------------------------------------------------

def test_abandoned_queue_disappears_through_x_expires(mongo_db: Any) -> None:
    from precache.config import Settings
    from precache.hooks.rabbitmq import RabbitMQHook
    from precache.hooks.store import PrecacheStore
    from precache.models import Build
    from precache.pipeline import declare
    from tests.integration.conftest import BUILD_3

    rid = f"it-expires-{uuid.uuid4().hex[:6]}"
    build = Build.model_validate(BUILD_3).model_dump(by_alias=True)
    desc = {"registry_id": rid, "build_id": "t3", "collection": "registry_records"}
    with PrecacheStore() as store, RabbitMQHook() as rabbit:
        queue = declare(desc, build, 1, "r-expires", store, rabbit, dataclasses.replace(Settings(), queue_expires_s=1))["queue"]
    assert queue_exists(queue)
    time.sleep(2.5)  # nobody consumes, nobody deletes: the broker drops it by itself
    assert not queue_exists(queue)


def test_unread_queue_survives_until_the_drain_timeout_then_is_deleted(standins: dict[str, str]) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from precache.hooks.rabbitmq import RabbitMQHook
    from precache.operators.queue import DeleteProgressQueueOperator

    queue = f"project.tts.precache.it-drain-{uuid.uuid4().hex[:6]}"
    with RabbitMQHook() as rabbit:
        rabbit.declare_queue(queue, 60)
        rabbit.publish_json(queue, {"event": "completed"})
    op = DeleteProgressQueueOperator(task_id="cleanup", progress_queue={"queue": queue}, drain_timeout_s=2)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    trigger.poll_s = 0.2

    async def wait() -> tuple[Any, list[bool]]:
        seen = []
        async for event in trigger.run():
            return event, seen
        return None, seen

    started = time.monotonic()
    event, _ = asyncio.run(wait())
    assert time.monotonic() - started >= 1.5
    assert queue_exists(queue)  # still there, message unread, until the timeout fired
    assert event.payload == {"status": "timeout", "messages": 1}
    op.execute_complete({}, event.payload)
    assert not queue_exists(queue)


def test_drained_queue_is_deleted_at_once(standins: dict[str, str]) -> None:
    from precache.hooks.rabbitmq import RabbitMQHook
    from precache.operators.queue import DeleteProgressQueueOperator

    queue = f"project.tts.precache.it-drained-{uuid.uuid4().hex[:6]}"
    with RabbitMQHook() as rabbit:
        rabbit.declare_queue(queue, 60)
    DeleteProgressQueueOperator(task_id="cleanup", progress_queue=queue, drain_timeout_s=600).execute({})
    assert not queue_exists(queue)


def test_rabbitmq_login_refused_fails_at_once_naming_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrong credentials are not a blip: no 120 s reconnect loop per task try."""
    from precache.hooks.rabbitmq import RabbitMQHook

    monkeypatch.setenv("AIRFLOW_CONN_RABBITMQ_DEFAULT", "amqp://guest:not-the-password@127.0.0.1:5672/%2F")
    started = time.monotonic()
    with pytest.raises(ValueError) as info, RabbitMQHook() as rabbit:
        rabbit.declare_queue("project.tts.precache.it-login", 60)
    assert time.monotonic() - started < 5
    assert str(info.value) == (
        "RabbitMQ refused the login of connection 'rabbitmq_default' to declare project.tts.precache.it-login: "
        "ProbableAuthenticationError; check its user, password and vhost"
    )
    assert "not-the-password" not in str(info.value)
