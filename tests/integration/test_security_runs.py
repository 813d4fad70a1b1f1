"""Secrets never leave their connections (issue 4): a whole ``tts_precache`` run with a password
or bearer token on every connection, then the task log output, the Airflow DB (XCom, conf,
task instances), the messages read from the queue, every MongoDB document and the run's
report are searched for each secret.

The run goes through private services that enforce the secrets: the RabbitMQ node and
FerretDB of test_faults (user + password), a portal and a TTS stand-in that require bearer tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pymongo
import pytest
import requests

from tests.integration.conftest import BUILD_3, REPO
from tests.integration.test_faults import (  # noqa: F401  (fixtures)
    MONGO_PORT,
    TTS_PORT,
    RMQ_PASSWORD,
    PrivateProcess,
    Reader,
    private_mongo,
    private_rabbit,
    start_tts,
)

pytestmark = pytest.mark.integration

PORTAL_PORT = TTS_PORT + 1
PORTAL_TOKEN = "portal-Bearer-7c1d-SECRET"
TTS_TOKEN = "tts-Bearer-52aa-SECRET"
MONGO_PASSWORD = "Mongo-Pw-88e3-SECRET"
SECRETS = {"portal token": PORTAL_TOKEN, "tts token": TTS_TOKEN, "rabbitmq password": RMQ_PASSWORD, "mongo password": MONGO_PASSWORD}

RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import tts_precache_dag
dr = tts_precache_dag.dag.test(run_conf=json.loads(sys.argv[2]))
print("RUN-STATE", dr.state, dr.run_id)
"""


def run_rows(run_id: str) -> str:
    """Every row of the Airflow DB that belongs to the run (dag_run, its conf, task instances, XCom...)."""
    import sqlite3

    path = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    if not path.exists():
        pytest.skip("the Airflow DB is not the default SQLite file")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = []
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            cols = [c[1] for c in con.execute(f"PRAGMA table_info('{table}')")]
            if "run_id" in cols:
                for row in con.execute(f"SELECT * FROM '{table}' WHERE run_id = ?", (run_id,)):
                    out.append(f"{table}: " + " | ".join(x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in row))
        return "\n".join(out)
    finally:
        con.close()


@pytest.fixture
def secret_portal(tmp_path: Path) -> Any:
    builds = tmp_path / "builds"
    builds.mkdir()
    (builds / "t3.json").write_text(json.dumps(BUILD_3, ensure_ascii=False), encoding="utf-8")
    p = PrivateProcess([sys.executable, "-m", "standins.portal", "--builds-dir", str(builds), "--port", str(PORTAL_PORT),
                        "--token", PORTAL_TOKEN], PORTAL_PORT, tmp_path / "portal.log")
    p.start()
    yield p
    p.kill()


def test_no_secret_in_logs_xcom_messages_mongo_or_report(
    private_rabbit: str, private_mongo: PrivateProcess, secret_portal: PrivateProcess, tmp_path: Path,  # noqa: F811
) -> None:
    tts = start_tts(tmp_path, token=TTS_TOKEN)
    db = f"secrets_{uuid.uuid4().hex[:6]}"
    rid = f"it-secrets-{uuid.uuid4().hex[:6]}"
    mongo_uri = f"mongodb://precache:{MONGO_PASSWORD}@127.0.0.1:{MONGO_PORT}/{db}?authMechanism=PLAIN&authSource={db}"
    reports = tmp_path / "reports"
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
        "AIRFLOW_CONN_MONGO_DEFAULT": mongo_uri.replace("mongodb:", "mongo:", 1) + "&serverSelectionTimeoutMS=3000",
        "AIRFLOW_CONN_PORTAL_API": json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": PORTAL_PORT, "password": PORTAL_TOKEN}),
        "AIRFLOW_CONN_TTS_PROXY": json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": TTS_PORT, "password": TTS_TOKEN}),
        "AIRFLOW_CONN_RABBITMQ_DEFAULT": private_rabbit,
        "PRECACHE_QUEUE_DRAIN_TIMEOUT": "3",
        "PRECACHE_REPORTS_DIR": str(reports),
        "PRECACHE_TTS_MAX_ATTEMPTS": "2",
    }
    # a permanent TTS refusal and a record missing a field: failure reasons are stored too
    requests.post(f"http://127.0.0.1:{TTS_PORT}/_admin/faults", json={"status": 422, "count": -1, "match_text": "Отказ"}, timeout=5)
    recs = [{"fio": f"Секретов {rid} {i}", "sum": "10", "Дата платежа": "05.12.2026"} for i in range(1, 5)]
    recs[1]["fio"] = f"Отказ {rid}"
    del recs[2]["sum"]
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    reader = Reader(private_rabbit, client[db], rid)
    reader.start()
    try:
        out = subprocess.run([sys.executable, "-c", RUNNER, str(REPO / "dags"),
                              json.dumps({"registry_id": rid, "build_id": "t3", "registry": {"records": recs}})],
                             env=env, capture_output=True, text=True, timeout=240)
        reader.join(60)
        logs = out.stdout + out.stderr
        assert "RUN-STATE success" in logs, logs[-3000:]
        # the search is not vacuous: the task logs, the stored documents and the messages are there
        assert "Ingested 4 records" in logs and "Progress queue project.tts.precache." in logs
        docs = {name: list(client[db][name].find()) for name in client[db].list_collection_names()}
        mongo_text = json.dumps(docs, ensure_ascii=False, default=str)
        assert "TTS proxy refused the phrase (HTTP 422)" in mongo_text and "'sum' is undefined" in mongo_text
        messages = json.dumps(reader.messages, ensure_ascii=False)
        assert reader.completions and reader.completions[0]["status"] == "partial"
        run_id = logs.split("RUN-STATE success ", 1)[1].split()[0]
        airflow_db = run_rows(run_id).encode()
        assert rid.encode() in airflow_db and b"xcom" in airflow_db  # the run, its conf and XCom are in there
        report = "".join(p.read_text(encoding="utf-8-sig") for p in reports.rglob("*.csv"))
        assert "HTTP 422" in report
        for what, secret in SECRETS.items():
            assert secret not in logs, f"{what} in the task logs"
            assert secret not in mongo_text, f"{what} in MongoDB"
            assert secret not in messages, f"{what} in a queue message"
            assert secret.encode() not in airflow_db, f"{what} in the Airflow DB (XCom, conf, task instances)"
            assert secret not in report, f"{what} in the run report"
    finally:
        client.close()
        tts.kill()
