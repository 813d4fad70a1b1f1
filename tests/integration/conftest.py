"""Integration fixtures: real RabbitMQ and MongoDB-protocol server (started by
``scripts/services.sh``), and this project's own portal/TTS stand-ins on private ports
with a fresh cache, so every test can count exactly what reached the TTS proxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standins.common import wait_port

REPO = Path(__file__).resolve().parents[2]
# Overridable so that two test sessions can run side by side on one machine.
PORTAL_PORT = int(os.environ.get("PRECACHE_IT_PORTAL_PORT", "18081"))
TTS_PORT = int(os.environ.get("PRECACHE_IT_TTS_PORT", "18082"))
# Everything the DAG module reads at import time must be set before it is imported.
# setdefault: this module may be imported twice (as conftest and by name); one DB per session.
DB = os.environ.setdefault("PRECACHE_IT_DB", f"precache_it_{uuid.uuid4().hex[:8]}")
MONGO_URI = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/integration")
os.environ["AIRFLOW_CONN_MONGO_DEFAULT"] = MONGO_URI.rsplit("/", 1)[0].replace("mongodb:", "mongo:") + "/" + DB
os.environ["AIRFLOW_CONN_PORTAL_API"] = f"http://127.0.0.1:{PORTAL_PORT}"
os.environ["AIRFLOW_CONN_TTS_PROXY"] = f"http://127.0.0.1:{TTS_PORT}"
os.environ.setdefault("AIRFLOW_CONN_RABBITMQ_DEFAULT", "amqp://guest:guest@127.0.0.1:5672/%2F")
os.environ["PRECACHE_QUEUE_DRAIN_TIMEOUT"] = "5"
os.environ["PRECACHE_TTS_RETRY_BUDGET"] = "20"
os.environ.setdefault("PRECACHE_REPORTS_DIR", tempfile.mkdtemp(prefix="precache-reports-"))

BUILD_3 = {
    "build_id": "t3",
    "name": "Напоминание о задолженности",
    "speaker": {"id": "alena", "name": "Алёна"},
    "settings": {
        "PRECACHE_VOICE": "", "PRECACHE_SPEED": "1.0", "PRECACHE_MODEL_SERVER": "tts-ru-v3",
        "PRECACHE_VOLUME_LEVEL": "0", "PRECACHE_SAMPLE_RATE": "8000", "PRECACHE_CALL_CENTRE_NOISE": "no",
    },
    "messages": [
        {"id": "greeting", "template": "Здравствуйте, {{ fio }}!", "audio": "https://portal.example/a/greeting.wav", "value_from": "obj"},
        {"id": "debt", "template": "Ваша задолженность {{ sum }} рублей,  оплатите до {{ fields['Дата платежа'] }}.", "audio": None, "value_from": "obj"},
        {"id": "hold", "template": "Пожалуйста,   оставайтесь на линии.", "audio": None, "value_from": "obj"},
    ],
}


@pytest.fixture(scope="session")
def builds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("builds")
    (d / "t3.json").write_text(json.dumps(BUILD_3, ensure_ascii=False), encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def standins(builds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    store = tmp_path_factory.mktemp("tts-store")
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'plugins'}"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "standins.portal", "--builds-dir", str(builds_dir), "--port", str(PORTAL_PORT)], env=env),
        subprocess.Popen([sys.executable, "-m", "standins.tts_proxy", "--store", str(store), "--port", str(TTS_PORT),
                          "--latency-ms", "5", "--capacity", "32"], env=env),
    ]
    try:
        wait_port(PORTAL_PORT)
        wait_port(TTS_PORT)
        yield {"portal": f"http://127.0.0.1:{PORTAL_PORT}", "tts": f"http://127.0.0.1:{TTS_PORT}"}
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


@pytest.fixture(scope="session")
def mongo_db() -> Iterator[Any]:
    import pymongo

    client = pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=5000)
    client.admin.command("ping")
    # Left in place for inspection after a failure; each session uses a new database.
    yield client[DB]
    client.close()


@pytest.fixture(scope="session")
def dag(standins: dict[str, str]) -> Any:
    from airflow.utils.db import resetdb  # noqa: F401  (fails early if Airflow is not installed)

    sys.path.insert(0, str(REPO / "dags"))
    import tts_precache_dag

    return tts_precache_dag.dag


def tts_stats(standins: dict[str, str]) -> dict[str, Any]:
    import requests

    return requests.get(standins["tts"] + "/_admin/stats", timeout=5).json()


class QueueReader(threading.Thread):
    """Plays the integration script's part: waits for the queue, reads it to the end."""

    def __init__(self, mongo_db: Any, registry_id: str, not_run_id: str | None = None,
                 stop_after_completion: bool = True, timeout: float = 300) -> None:
        super().__init__(daemon=True)
        self.mongo_db = mongo_db
        self.registry_id = registry_id
        self.not_run_id = not_run_id
        self.queue = ""
        self.messages: list[dict[str, Any]] = []
        self.timeout = timeout
        self.stop_after_completion = stop_after_completion

    def run(self) -> None:
        import pika

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:  # the run names its queue in its summary
            doc = self.mongo_db.precache_runs.find_one({"_id": self.registry_id})
            if doc and doc.get("dag_run_id") != self.not_run_id and doc.get("queue"):
                self.queue = doc["queue"]
                break
            time.sleep(0.1)
        conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
        try:
            while time.monotonic() < deadline:
                ch = conn.channel()
                try:
                    ch.queue_declare(self.queue, passive=True)
                    break
                except pika.exceptions.ChannelClosedByBroker:
                    time.sleep(0.1)
            ch = conn.channel()
            for method, props, body in ch.consume(self.queue, inactivity_timeout=1):
                if time.monotonic() > deadline:
                    break
                if method is None:
                    continue
                assert props.content_type == "application/json"
                assert props.delivery_mode == 2
                msg = json.loads(body)
                self.messages.append(msg)
                ch.basic_ack(method.delivery_tag)
                if msg["event"] == "completed" and self.stop_after_completion:
                    break
            ch.cancel()
        finally:
            conn.close()

    @property
    def progress(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["event"] == "progress"]

    @property
    def completions(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["event"] == "completed"]


def queue_exists(name: str) -> bool:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
    try:
        conn.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        conn.close()
