"""Whole ``tts_precache`` runs (``dag.test()``) on real RabbitMQ, MongoDB-protocol server and stand-ins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from standins.samples import write_csv
from tests.integration.conftest import BUILD_3, QueueReader, queue_exists, tts_stats

pytestmark = pytest.mark.integration


def run(dag: Any, conf: dict[str, Any]) -> Any:
    return dag.test(run_conf=conf)


def states(dr: Any) -> dict[str, str]:
    return {f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def expected_phrases(rows: list[dict[str, str]]) -> set[str]:
    from precache.models import Build
    from precache.rendering import Renderer

    r = Renderer(Build.model_validate(BUILD_3))
    return {x.request.text for row in rows for x in r.render({"obj": row}) if x.request}


@pytest.fixture(scope="module")
def csv_250(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("reg") / "debtors.csv", 250, encoding="cp1251", delimiter=";")


@pytest.fixture(scope="module")
def first_run(dag: Any, standins: dict[str, str], mongo_db: Any, csv_250: Path) -> dict[str, Any]:
    before = tts_stats(standins)
    reader = QueueReader(mongo_db, "it-250")
    reader.start()
    dr = run(dag, {"registry_id": "it-250", "build_id": "t3", "registry": {"path": str(csv_250)}})
    reader.join(60)
    return {"dr": dr, "reader": reader, "before": before, "after": tts_stats(standins)}


def test_run_succeeds_and_every_record_is_cached(first_run: dict[str, Any], mongo_db: Any) -> None:
    assert str(first_run["dr"].state) == "success", states(first_run["dr"])
    docs = list(mongo_db.registry_records.find({"registry_id": "it-250"}))
    assert len(docs) == 250
    assert sorted(d["row"] for d in docs) == list(range(1, 251))
    assert {d["precache"]["status"] for d in docs} == {"cached"}
    labels = sorted(ti.rendered_map_index for ti in first_run["dr"].get_task_instances() if ti.task_id == "cache")
    assert labels == ["rows 101–200", "rows 1–100", "rows 201–250"]
    # cp1251 + ';' were detected: Cyrillic header names and values came through intact
    assert set(docs[0]["obj"]) == {"fio", "sum", "date", "Дата платежа"}
    assert docs[0]["obj"]["fio"].split()[0] in {"Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Васильев", "Соколов", "Михайлов", "Новиков"}


def test_every_distinct_phrase_reaches_tts_exactly_once(first_run: dict[str, Any], csv_250: Path) -> None:
    from standins.samples import rows

    want = expected_phrases(list(rows(250)))
    after = first_run["after"]
    texts = set(after["texts"].values())
    assert want <= texts
    assert "Пожалуйста, оставайтесь на линии." in want  # static message, normalised
    new_keys = {k for k, n in after["per_key"].items() if n != first_run["before"]["per_key"].get(k, 0)}
    assert len(new_keys) == len(want)
    # once each by this run (the stand-in may have heard a phrase from another session's tests)
    assert all(after["per_key"][k] - first_run["before"]["per_key"].get(k, 0) == 1 for k in new_keys)


def test_progress_and_completion_messages(first_run: dict[str, Any], mongo_db: Any) -> None:
    reader = first_run["reader"]
    progress = reader.progress
    assert len(progress) >= 2
    processed = [m["processed"] for m in progress]
    assert processed == sorted(processed)
    assert processed[-1] == 250
    assert all(m["total"] == 250 and m["registry_id"] == "it-250" for m in progress)
    assert len(reader.completions) == 1
    done = reader.completions[0]
    assert done["status"] == "success"
    assert (done["total"], done["cached"], done["failed"], done["failures"]) == (250, 250, 0, [])
    summary = mongo_db.precache_runs.find_one({"_id": "it-250"})
    assert summary["status"] == "success"
    assert summary["unique_phrases"] == done["unique_phrases"] > 250
    assert summary["dag_run_id"] == done["dag_run_id"] == first_run["dr"].run_id
    assert summary["finished_at"] is not None


def test_queue_is_gone_after_the_reader_drained_it(first_run: dict[str, Any]) -> None:
    assert first_run["reader"].queue.startswith("project.tts.precache.it-250.")
    assert not queue_exists(first_run["reader"].queue)


def test_rerun_duplicates_nothing_and_sends_no_phrase(first_run: dict[str, Any], dag: Any, standins: dict[str, str], mongo_db: Any, csv_250: Path) -> None:
    before = tts_stats(standins)
    reader = QueueReader(mongo_db, "it-250", not_run_id=first_run["dr"].run_id)
    reader.start()
    dr = run(dag, {"registry_id": "it-250", "build_id": "t3", "registry": {"path": str(csv_250)}})
    reader.join(60)
    assert str(dr.state) == "success", states(dr)
    assert tts_stats(standins)["requests"] == before["requests"]
    assert mongo_db.registry_records.count_documents({"registry_id": "it-250"}) == 250
    assert mongo_db.precache_runs.count_documents({"_id": "it-250"}) == 1
    assert reader.completions[0]["cached"] == 250


def test_missing_field_fails_only_that_record(dag: Any, mongo_db: Any) -> None:
    records = [{"fio": f"Тестов Тест {i}", "sum": str(100 + i), "Дата платежа": "05.12.2026"} for i in range(5)]
    del records[2]["sum"]
    reader = QueueReader(mongo_db, "it-missing")
    reader.start()
    dr = run(dag, {"registry_id": "it-missing", "build_id": "t3", "registry": {"records": records}})
    reader.join(60)
    assert str(dr.state) == "success", states(dr)
    docs = {d["row"]: d["precache"] for d in mongo_db.registry_records.find({"registry_id": "it-missing"})}
    assert docs[3]["status"] == "failed"
    assert "message 'debt'" in docs[3]["error"] and "'sum' is undefined" in docs[3]["error"]
    assert [docs[r]["status"] for r in (1, 2, 4, 5)] == ["cached"] * 4
    done = reader.completions[0]
    assert (done["status"], done["cached"], done["failed"]) == ("partial", 4, 1)
    assert done["failures"] == [{"row": 3, "message_id": "debt", "reason": docs[3]["error"]}]
    # the run's report: Excel-friendly CSV (UTF-8 BOM, ';'), totals then the failed records
    from precache.report import read_report

    report = Path(done["report"])
    assert report.read_bytes().startswith(b"\xef\xbb\xbf")
    totals, failures = read_report(report)
    assert (totals["Статус"], totals["Записей"], totals["Ошибок"]) == ("partial", "5", "1")
    assert failures == [{"row": "3", "message_id": "debt", "reason": docs[3]["error"]}]
    # the same report on demand, from the command line
    out = report.with_name("again.csv")
    cli = subprocess.run([sys.executable, "-m", "precache.cli", "report", "--registry-id", "it-missing", "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "PARTIAL" in cli.stdout and "row      3  debt" in cli.stdout
    assert read_report(out) == (totals, failures)


def test_bad_conf_fails_before_anything_is_written(dag: Any, standins: dict[str, str], mongo_db: Any) -> None:
    from precache.pipeline import PrecacheError, validate

    before = tts_stats(standins)["requests"]
    with pytest.raises(PrecacheError, match=r"registry: .*exactly one of 'path', 'url', 'records' or 'stored'"):
        validate({"registry_id": "it-bad", "build_id": "t3", "registry": {"path": "/x.csv", "url": "http://x/y.csv"}})
    dr = run(dag, {"registry_id": "it-bad", "build_id": "t3", "registry": {"path": "/x.csv", "url": "http://x/y.csv"}})
    assert str(dr.state) == "failed"
    s = states(dr)
    assert s["validate"] == "failed" and s["ingest"] == "upstream_failed"
    assert mongo_db.registry_records.count_documents({"registry_id": "it-bad"}) == 0
    assert tts_stats(standins)["requests"] == before


def test_portal_404_fails_naming_the_build(dag: Any, standins: dict[str, str], mongo_db: Any) -> None:
    from precache.pipeline import PrecacheError, lookup_build

    before = tts_stats(standins)["requests"]
    with pytest.raises(PrecacheError, match=r"build 'nope-404' not found \(HTTP 404\)"):
        lookup_build("nope-404")
    dr = run(dag, {"registry_id": "it-404", "build_id": "nope-404", "registry": {"records": [{"fio": "А"}]}})
    assert str(dr.state) == "failed"
    s = states(dr)
    assert s["lookup_build"] == "failed"
    assert s["declare_queue"] == "upstream_failed"
    assert mongo_db.precache_runs.count_documents({"_id": "it-404"}) == 0
    assert tts_stats(standins)["requests"] == before


def test_unread_queue_is_deleted_after_the_drain_timeout(dag: Any, mongo_db: Any) -> None:
    """No reader at all: cleanup defers to the triggerer, then deletes after PRECACHE_QUEUE_DRAIN_TIMEOUT (5 s here)."""
    records = [{"fio": f"Без Читателя {i}", "sum": "1", "Дата платежа": "05.12.2026"} for i in range(3)]
    dr = run(dag, {"registry_id": "it-noreader", "build_id": "t3", "registry": {"records": records}})
    assert str(dr.state) == "success", states(dr)
    queue = mongo_db.precache_runs.find_one({"_id": "it-noreader"})["queue"]
    assert not queue_exists(queue)
    cleanup = next(ti for ti in dr.get_task_instances() if ti.task_id == "cleanup")
    assert str(cleanup.state) == "success"
    assert (cleanup.end_date - cleanup.start_date).total_seconds() >= 4  # it waited for a reader first


def test_completion_after_a_cleared_batch_reports_the_run_as_it_stands(mongo_db: Any) -> None:
    """A failed completion (records unprocessed) is not replayed once a cleared batch finished them."""
    from precache.hooks.rabbitmq import RabbitMQHook
    from precache.hooks.store import PrecacheStore
    from precache.pipeline import complete

    queue = "project.tts.precache.it-cleared"
    desc = {"registry_id": "it-cleared", "collection": "registry_records"}
    with PrecacheStore() as store, RabbitMQHook() as rabbit:
        rabbit.declare_queue(queue, 60)
        store.start_run("it-cleared", {"build_id": "t3", "dag_run_id": "r1", "queue": queue, "total": 200, "collection": "registry_records"})
        store.set_batch_counts("it-cleared", "r1", "b1", {"processed": 100, "cached": 100, "failed": 0})
        assert complete(desc, "r1", store, rabbit)["status"] == "failed"
        assert complete(desc, "r1", store, rabbit)["status"] == "failed"  # a plain retry repeats it
        store.set_batch_counts("it-cleared", "r1", "b101", {"processed": 100, "cached": 100, "failed": 0})
        summary = complete(desc, "r1", store, rabbit)
        rabbit.delete_queue(queue)
    # the run's summary, which the complete task returns (its XCom, shown on the run in the UI)
    assert {k: summary[k] for k in ("status", "total", "cached", "failed")} == {"status": "success", "total": 200, "cached": 200, "failed": 0}
    assert mongo_db.precache_runs.find_one({"_id": "it-cleared"})["status"] == "success"
