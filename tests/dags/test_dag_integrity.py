"""Every DAG file imports cleanly, cheaply, and has the structure the contracts promise."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from airflow.models.dagbag import DagBag

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert {"tts_precache", "tts_precache_inbox", "tts_precache_requests"} <= set(dagbag.dags)


def test_every_dag_has_owner_retries_and_tags(dagbag: DagBag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md, dag_id
        for task in dag.tasks:
            assert task.owner not in (None, "", "airflow"), task.task_id
            assert task.doc_md, f"{dag_id}.{task.task_id} has no doc_md"
        assert any(t.retries > 0 for t in dag.tasks), dag_id


def test_tts_precache_structure(dagbag: DagBag) -> None:
    dag = dagbag.dags["tts_precache"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None
    assert set(dag.params) == {"registry_id", "build_id", "registry", "collection", "force", "build"}
    assert dag.get_task("cache").pool == "default_pool"  # PRECACHE_TTS_POOL unset here
    order = ["validate", "lookup_build", "parse_build", "ingest", "declare_queue", "plan", "cache", "complete", "cleanup"]
    for up, down in zip(order, order[1:]):
        assert down in dag.get_task(up).get_flat_relative_ids(upstream=False), (up, down)
    assert dag.get_task("lookup_build").downstream_task_ids == {"parse_build"}
    assert dag.get_task("declare_queue").is_setup
    assert dag.get_task("cleanup").is_teardown
    assert dag.get_task("validate").retries == 0
    assert dag.get_task("complete").trigger_rule == "all_done"


def test_inbox_structure(dagbag: DagBag) -> None:
    dag = dagbag.dags["tts_precache_inbox"]
    assert type(dag.timetable).__name__ == "CronTriggerTimetable" and dag.timetable.expression == "0 0 * * *"  # @daily
    assert dag.catchup is False and dag.max_active_runs == 1
    run = dag.get_task("run_precache")
    assert type(run).__name__ == "MappedOperator"
    assert run.partial_kwargs["trigger_dag_id"] == "tts_precache"
    assert run.partial_kwargs["wait_for_completion"] is True and run.partial_kwargs["deferrable"] is True
    settle = dag.get_task("settle")
    assert settle.trigger_rule == "all_done" and {"scan", "run_precache"} <= settle.upstream_task_ids


def test_requests_dag_is_scheduled_by_the_request_queue(dagbag: DagBag) -> None:
    dag = dagbag.dags["tts_precache_requests"]
    [asset] = dag.timetable.asset_condition.objects
    assert asset.uri == "rabbitmq://rabbitmq_default/kv.tts.precaching.v2"
    [watcher] = asset.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "precache.triggers.requests.PrecacheRequestTrigger"
    assert kwargs["queue"] == "kv.tts.precaching.v2" and kwargs["dead_letter_queue"] == "kv.tts.precaching.v2.dead"
    run = dag.get_task("run_precache")
    assert run.partial_kwargs["skip_when_already_exists"] is True  # a redelivered request runs once
    # the build's own Jinja templates travel in the conf: Airflow must not render them
    assert "conf" not in run.template_fields and "trigger_run_id" in run.template_fields


def test_import_is_cheap() -> None:
    """Parsing the DAG folder must not touch services; a fresh interpreter does it quickly."""
    env = {**os.environ, "AIRFLOW_CONN_MONGO_DEFAULT": "mongo://203.0.113.1:1/x"}  # unreachable on purpose
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path[:0]=['plugins','dags']; import tts_precache_dag, tts_precache_inbox_dag, tts_precache_requests_dag"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    print(f"DAG module import: {time.monotonic() - started:.2f}s")
