"""Triggering ``tts_precache`` through Airflow's REST API on a running Airflow (CONTRACTS §2, §3, §6).

What an integration script does: a JWT from ``POST /auth/token``, ``POST /api/v2/dags/tts_precache/dagRuns``
with a conf, poll the run; then the effects in MongoDB and on the run's RabbitMQ queue.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.integration.conftest import QueueReader

pytestmark = pytest.mark.integration

DAG = "tts_precache"
RECORDS = [
    {"fio": "Иванов Иван Иванович", "sum": "5683", "Дата платежа": "05.12.2026"},
    {"fio": "Петрова Анна Сергеевна", "sum": "120", "Дата платежа": "10.12.2026"},
    {"fio": "Сидоров Пётр", "sum": "77", "Дата платежа": "31.12.2026"},
]


def test_token_is_required_and_issued(live_airflow: Any) -> None:
    base = live_airflow.base_url
    assert requests.get(f"{base}/api/v2/dags/{DAG}", timeout=10).status_code == 401
    bad = requests.post(f"{base}/auth/token", json={"username": live_airflow.username, "password": "wrong"}, timeout=10)
    assert bad.status_code == 401, bad.text
    token = live_airflow.token(fresh=True)
    assert token.count(".") == 2  # a JWT
    r = requests.get(f"{base}/api/v2/dags/{DAG}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200 and r.json()["dag_id"] == DAG


@pytest.fixture(scope="module")
def rest_run(live_airflow: Any, mongo_db: Any) -> dict[str, Any]:
    registry_id = f"rest-{uuid.uuid4().hex[:8]}"
    reader = QueueReader(mongo_db, registry_id, timeout=300)
    reader.start()
    conf = {"registry_id": registry_id, "build_id": "t3", "registry": {"records": RECORDS}}
    r = requests.post(
        f"{live_airflow.base_url}/api/v2/dags/{DAG}/dagRuns",
        headers={"Authorization": f"Bearer {live_airflow.token()}"},
        json={"logical_date": None, "conf": conf}, timeout=30,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    run_id = body["dag_run_id"]
    state = live_airflow.wait(DAG, run_id, timeout=300)
    reader.join(60)
    return {"registry_id": registry_id, "conf": conf, "created": body, "run_id": run_id, "state": state, "reader": reader}


def test_rest_run_succeeds(rest_run: dict[str, Any], live_airflow: Any) -> None:
    created = rest_run["created"]
    assert created["dag_id"] == DAG
    assert created["conf"] == rest_run["conf"]
    assert created["run_type"] == "manual"
    assert created["logical_date"] is None
    assert rest_run["state"] == "success", live_airflow.task_states(DAG, rest_run["run_id"])
    states = live_airflow.task_states(DAG, rest_run["run_id"])
    assert {k: v for k, v in states.items() if v != "success"} == {}
    assert {"validate", "ingest", "lookup_build", "parse_build", "declare_queue", "plan", "cache[0]", "complete", "cleanup"} <= set(states)


def test_rest_run_records_are_cached_in_mongo(rest_run: dict[str, Any], mongo_db: Any) -> None:
    docs = sorted(mongo_db.registry_records.find({"registry_id": rest_run["registry_id"]}), key=lambda d: d["row"])
    assert [d["row"] for d in docs] == [1, 2, 3]
    assert [d["obj"] for d in docs] == RECORDS
    assert {d["precache"]["status"] for d in docs} == {"cached"}
    assert {d["precache"]["run_id"] for d in docs} == {rest_run["run_id"]}
    summary = mongo_db.precache_runs.find_one({"_id": rest_run["registry_id"]})
    assert summary["dag_run_id"] == rest_run["run_id"]
    assert (summary["status"], summary["total"], summary["cached"], summary["failed"]) == ("success", 3, 3, 0)


def test_rest_run_completion_message_on_its_queue(rest_run: dict[str, Any]) -> None:
    reader = rest_run["reader"]
    assert reader.queue.startswith("project.tts.precache.")
    [done] = reader.completions
    assert done["registry_id"] == rest_run["registry_id"]
    assert done["dag_run_id"] == rest_run["run_id"]
    assert (done["status"], done["total"], done["cached"], done["failed"], done["failures"]) == ("success", 3, 3, 0, [])
    # 3 records × 3 messages; the static "hold" phrase is one for the whole run
    assert done["unique_phrases"] == 7
    assert reader.progress and reader.progress[-1]["processed"] == 3


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        ({"registry_id": "bad id", "build_id": "t3", "registry": {"records": RECORDS}}, "registry_id"),
        ({"registry_id": "rest-no-build", "registry": {"records": RECORDS}}, "build_id"),
        ({"registry_id": "rest-bad-force", "build_id": "t3", "registry": {"records": RECORDS}, "force": "yes"}, "force"),
    ],
    ids=["registry_id-with-space", "build_id-missing", "force-not-boolean"],
)
def test_conf_breaking_params_schema_is_refused_with_400_and_creates_no_run(
    live_airflow: Any, conf: dict[str, Any], field: str
) -> None:
    before, count = {r["dag_run_id"] for r in live_airflow.runs(DAG)}, live_airflow.run_count(DAG)
    r = live_airflow.request("POST", f"/api/v2/dags/{DAG}/dagRuns", json={"logical_date": None, "conf": conf})
    assert r.status_code == 400, r.text
    assert field in r.json()["detail"], r.text
    assert {r["dag_run_id"] for r in live_airflow.runs(DAG)} == before
    assert live_airflow.run_count(DAG) == count
