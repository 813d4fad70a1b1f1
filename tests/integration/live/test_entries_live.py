"""The two unattended ways in, on a running Airflow: the daily inbox (CONTRACTS §7) and a
precache request on the request queue through an AssetWatcher (docs/contracts.md §8)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest

from standins.samples import write_csv
from tests.integration.conftest import BUILD_3, QueueReader

pytestmark = pytest.mark.integration


def wait_for(what: str, fn: Any, timeout: float = 180, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def manifest(inbox: Path, name: str, body: Any) -> None:
    (inbox / f"{name}.manifest.json").write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")


def test_inbox_imports_each_file_once_and_explains_failures(live_airflow: Any, mongo_db: Any) -> None:
    inbox = Path(live_airflow.env["PRECACHE_INBOX_DIR"])
    # catchup=False still runs the latest @daily slot when the DAG appears: let it finish first.
    for r in live_airflow.runs("tts_precache_inbox"):
        live_airflow.wait("tts_precache_inbox", r["dag_run_id"], timeout=120)
    tag = uuid.uuid4().hex[:6]
    # a seed of its own: phrases of the dag.test suites (seed 4021) must stay new to the proxy
    write_csv(inbox / "debtors.csv", 120, encoding="cp1251", delimiter=";", seed=77)
    manifest(inbox, "debtors", {"build_id": "t3", "registry_id": f"inbox-{tag}"})
    write_csv(inbox / "nobuild.csv", 5, seed=1)
    manifest(inbox, "nobuild", {"build_id": "no-such-build", "registry_id": f"nobuild-{tag}"})
    write_csv(inbox / "broken.csv", 5, seed=2)
    manifest(inbox, "broken", '{"build_id": ')
    (inbox / "waiting.csv").write_text("fio\nx\n")  # no manifest yet: left alone

    run_id = live_airflow.trigger("tts_precache_inbox", {})
    assert live_airflow.wait("tts_precache_inbox", run_id, timeout=400) == "success", live_airflow.task_states("tts_precache_inbox", run_id)

    processed, failed = inbox / "processed", inbox / "failed"
    assert sorted(p.name for p in processed.iterdir()) == ["debtors.csv", "debtors.manifest.json"]
    assert sorted(p.name for p in failed.iterdir()) == [
        "broken.csv", "broken.error.txt", "broken.manifest.json",
        "nobuild.csv", "nobuild.error.txt", "nobuild.manifest.json",
    ]
    assert (failed / "broken.error.txt").read_text().startswith(
        "manifest broken.manifest.json: invalid JSON at line 1, column 14")
    err = (failed / "nobuild.error.txt").read_text()
    assert err.startswith("nobuild.csv: tts_precache run 'inbox__nobuild-") and "' failed: task lookup_build: " in err
    assert "portal API: build 'no-such-build' not found (HTTP 404)" in err
    assert (inbox / "waiting.csv").exists()
    docs = list(mongo_db.registry_records.find({"registry_id": f"inbox-{tag}"}, {"precache.status": 1}))
    assert len(docs) == 120 and {d["precache"]["status"] for d in docs} == {"cached"}

    # The same content dropped again (under another name) is not imported again.
    runs_before = len(live_airflow.runs("tts_precache"))
    (inbox / "debtors-again.csv").write_bytes((processed / "debtors.csv").read_bytes())
    manifest(inbox, "debtors-again", {"build_id": "t3"})
    run2 = live_airflow.trigger("tts_precache_inbox", {})
    assert live_airflow.wait("tts_precache_inbox", run2, timeout=300) == "success"
    note = (processed / "debtors-again.duplicate.txt").read_text()
    assert "was imported before as 'debtors.csv'" in note and f"registry 'inbox-{tag}'" in note
    assert len(live_airflow.runs("tts_precache")) == runs_before

    # Nothing new: the run succeeds quickly and says so.
    (inbox / "waiting.csv").unlink()
    started = time.monotonic()
    run3 = live_airflow.trigger("tts_precache_inbox", {})
    assert live_airflow.wait("tts_precache_inbox", run3, timeout=300) == "success"
    states = live_airflow.task_states("tts_precache_inbox", run3)
    assert states["scan"] == "success" and states["settle"] == "success"
    assert len(live_airflow.runs("tts_precache")) == runs_before
    print(f"empty inbox run: {time.monotonic() - started:.1f}s from trigger to success")


def test_request_on_the_queue_starts_one_run_and_bad_ones_are_dead_lettered(live_airflow: Any, mongo_db: Any) -> None:
    queue = live_airflow.env["PRECACHE_REQUEST_QUEUE"]
    rid = f"req-{uuid.uuid4().hex[:8]}"
    coll = mongo_db["live_requests"]
    coll.insert_many([
        {"registry_id": rid, "row": i, "obj": {"fio": f"Очередев {i}", "sum": str(i), "Дата платежа": "02.02.2027"}}
        for i in range(1, 51)
    ])
    request = {
        "registry_id": rid, "collection": "live_requests", "obj": ["fio", "sum", "Дата платежа"],
        "settings": {**BUILD_3["settings"], "PRECACHE_VOICE": "alena"},
        "messages": [{k: m[k] for k in ("template", "audio", "value_from")} for m in BUILD_3["messages"]],
    }
    message_id = f"msg-{rid}"
    reader = QueueReader(mongo_db, rid, timeout=400)
    reader.start()
    conn = pika.BlockingConnection(pika.URLParameters(live_airflow.env["AIRFLOW_CONN_RABBITMQ_DEFAULT"]))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    props = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=message_id)
    ch.basic_publish("", queue, json.dumps(request, ensure_ascii=False).encode(), props)
    ch.basic_publish("", queue, b'{"registry_id": "x", "messages": "none"}',
                     pika.BasicProperties(delivery_mode=2, message_id="bad-1"))

    run_id = f"request__{message_id}"

    def started() -> bool:
        return any(r["dag_run_id"] == run_id for r in live_airflow.runs("tts_precache"))

    wait_for(f"tts_precache run {run_id}", started, timeout=300, every=2)
    assert live_airflow.wait("tts_precache", run_id, timeout=400) == "success", live_airflow.task_states("tts_precache", run_id)
    reader.join(60)
    [done] = reader.completions
    assert done["status"] == "success" and done["total"] == 50 and done["cached"] == 50
    assert {d["precache"]["status"] for d in coll.find({"registry_id": rid})} == {"cached"}

    # The malformed one went to the dead-letter queue with its reason, nothing is left unacked.
    def dead_letter() -> Any:
        got = ch.basic_get(queue + ".dead", auto_ack=True)
        return got if got[0] is not None else None

    _, dprops, body = wait_for("a dead letter", dead_letter, timeout=60)
    assert body == b'{"registry_id": "x", "messages": "none"}' and dprops.message_id == "bad-1"
    assert dprops.headers["x-precache-error"].startswith("invalid request: ")
    assert "settings: Field required" in dprops.headers["x-precache-error"]
    assert ch.queue_declare(queue, passive=True).method.message_count == 0

    # The same request again (a redelivery, or the sender retrying) does not start a second run.
    runs_of_requests = len(live_airflow.runs("tts_precache_requests"))
    ch.basic_publish("", queue, json.dumps(request, ensure_ascii=False).encode(), props)
    wait_for("a second tts_precache_requests run", lambda: len(live_airflow.runs("tts_precache_requests")) > runs_of_requests, timeout=180, every=2)
    last = max(live_airflow.runs("tts_precache_requests"), key=lambda r: r["run_after"])
    assert live_airflow.wait("tts_precache_requests", last["dag_run_id"], timeout=180) == "success"
    assert live_airflow.task_states("tts_precache_requests", last["dag_run_id"]).get("run_precache[0]") == "skipped"
    assert [r["dag_run_id"] for r in live_airflow.runs("tts_precache")].count(run_id) == 1
    conn.close()


def test_a_triggerer_killed_while_holding_a_request_loses_nothing(live_airflow: Any, mongo_db: Any) -> None:
    """SIGKILL the triggerer right after a request is published, start a new one: the request
    still becomes exactly one successful run (unacked messages return to the queue)."""
    import os
    import signal
    import subprocess

    queue = live_airflow.env["PRECACHE_REQUEST_QUEUE"]
    rid = f"kill-{uuid.uuid4().hex[:8]}"
    mongo_db["live_requests"].insert_many([
        {"registry_id": rid, "row": i, "obj": {"fio": f"Перезапусков {i}", "sum": str(i), "Дата платежа": "03.03.2027"}}
        for i in range(1, 11)
    ])
    request = {
        "registry_id": rid, "collection": "live_requests",
        "settings": {**BUILD_3["settings"], "PRECACHE_VOICE": "alena"},
        "messages": [{k: m[k] for k in ("template", "audio", "value_from")} for m in BUILD_3["messages"]],
    }
    conn = pika.BlockingConnection(pika.URLParameters(live_airflow.env["AIRFLOW_CONN_RABBITMQ_DEFAULT"]))
    ch = conn.channel()
    ch.basic_publish("", queue, json.dumps(request, ensure_ascii=False).encode(),
                     pika.BasicProperties(delivery_mode=2, message_id=f"msg-{rid}"))
    time.sleep(1.5)  # the producer polls every second: the request is most likely in its hands now
    old = live_airflow.procs["triggerer"]
    os.killpg(old.pid, signal.SIGKILL)
    old.wait(10)
    with open(live_airflow.log_path("triggerer"), "ab") as log:
        live_airflow.procs["triggerer"] = subprocess.Popen(
            ["airflow", "triggerer"], env=live_airflow.env, cwd=live_airflow.home, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    run_id = f"request__msg-{rid}"
    wait_for(f"tts_precache run {run_id}",
             lambda: any(r["dag_run_id"] == run_id for r in live_airflow.runs("tts_precache")), timeout=300, every=2)
    assert live_airflow.wait("tts_precache", run_id, timeout=300) == "success"
    assert {d["precache"]["status"] for d in mongo_db["live_requests"].find({"registry_id": rid})} == {"cached"}
    # If the kill landed after the event was stored but before the ack, the broker hands the
    # request out again: the new triggerer takes it, and its run is skipped as already there.
    wait_for("the request queue to be empty", lambda: ch.queue_declare(queue, passive=True).method.message_count == 0,
             timeout=240, every=2)
    time.sleep(15)  # time for a duplicate, if any, to become a (skipped) run
    for r in live_airflow.runs("tts_precache_requests"):
        assert live_airflow.wait("tts_precache_requests", r["dag_run_id"], timeout=180) == "success"
    assert [r["dag_run_id"] for r in live_airflow.runs("tts_precache")].count(run_id) == 1
    conn.close()
