"""The seed's request queue on the real broker: the ack-mode producer, the dead-letter queue,
redelivery after a lost triggerer, and a ``tts_precache`` run of a request on stored records."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pika
import pytest

from precache.triggers.requests import ERROR_HEADER, PrecacheRequestTrigger, RabbitRequestProducer
from tests.integration.conftest import BUILD_3, QueueReader, tts_stats

pytestmark = pytest.mark.integration
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"

REQUEST = {
    "registry_id": "it-request",
    "collection": "integration_records",
    "obj": ["fio", "sum", "Дата платежа"],
    # Speed of its own: every phrase is new to the proxy whatever ran before in the session.
    "settings": {**BUILD_3["settings"], "PRECACHE_VOICE": "alena", "PRECACHE_SPEED": "1.1"},
    "messages": [{k: m[k] for k in ("template", "audio", "value_from")} for m in BUILD_3["messages"]],
}


@pytest.fixture
def queue() -> Any:
    """A private request queue per test, so a running Airflow's watcher does not compete."""
    name = f"kv.tts.precaching.v2.it-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch = conn.channel()
    ch.queue_declare(name, durable=True)
    yield name, ch
    ch.queue_delete(name)
    ch.queue_delete(name + ".dead")
    conn.close()


def publish(ch: Any, queue: str, body: bytes, message_id: str | None = None) -> None:
    ch.basic_publish("", queue, body, pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=message_id))


def counts(ch: Any, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


async def take(producer: RabbitRequestProducer, n: int) -> list[tuple[dict[str, Any], Any]]:
    out = []
    stream = producer.open_stream()
    async for item in stream:
        out.append(item)
        if len(out) == n:
            break
    await stream.aclose()
    return out


def test_valid_request_acked_only_after_advance_malformed_dead_lettered_with_reason(queue: Any) -> None:
    from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

    name, ch = queue
    publish(ch, name, json.dumps(REQUEST, ensure_ascii=False).encode(), "req-1")
    publish(ch, name, b'{"registry_id": "x"}', "req-2")

    async def scenario() -> list[dict[str, Any]]:
        producer = PrecacheRequestTrigger.create_shared_stream_producer(
            {"queue": name, "rabbitmq_conn_id": "rabbitmq_default", "poll_s": 0.1})
        try:
            got = await take(producer, 2)
            # both delivered, neither acked yet: the broker still owns them
            await producer.advance([
                AdvanceItem(got[0][1], AdvanceOutcome(acked=1, failed=0)),
                AdvanceItem(got[1][1], AdvanceOutcome(acked=0, failed=0, rejected=1)),
            ])
            return [g[0] for g in got]
        finally:
            await producer.aclose()

    events = asyncio.run(scenario())
    assert events[0]["request_id"] == "req-1" and events[0]["conf"]["registry"] == {"stored": True}
    assert "error" not in events[0]
    assert events[1]["error"].startswith("invalid request: settings: Field required; messages: Field required")
    assert counts(ch, name) == 0
    method, props, body = ch.basic_get(name + ".dead", auto_ack=True)
    assert body == b'{"registry_id": "x"}' and props.message_id == "req-2"
    assert props.headers[ERROR_HEADER] == events[1]["error"]
    assert props.headers["x-precache-queue"] == name


def test_request_not_acked_is_redelivered_to_the_next_triggerer(queue: Any) -> None:
    """A triggerer that dies after receiving a request, before its event is stored: no loss."""
    name, ch = queue
    publish(ch, name, json.dumps(REQUEST, ensure_ascii=False).encode(), "req-crash")

    async def receive_and_die() -> dict[str, Any]:
        producer = RabbitRequestProducer(name, "rabbitmq_default", name + ".dead", 0.1)
        [(event, _)] = await take(producer, 1)
        await producer.aclose()  # connection closed with the delivery unacked
        return event

    first = asyncio.run(receive_and_die())
    assert counts(ch, name) == 1  # back in the queue
    second = asyncio.run(receive_and_die())
    assert second == first  # same request id, hence the same tts_precache run id


def test_failed_persist_is_requeued_not_lost(queue: Any) -> None:
    from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

    name, ch = queue
    publish(ch, name, json.dumps(REQUEST, ensure_ascii=False).encode(), "req-timeout")

    async def scenario() -> None:
        producer = RabbitRequestProducer(name, "rabbitmq_default", name + ".dead", 0.1)
        try:
            [(_, payload)] = await take(producer, 1)
            await producer.advance([AdvanceItem(payload, AdvanceOutcome(acked=0, failed=1))])
        finally:
            await producer.aclose()

    asyncio.run(scenario())
    assert counts(ch, name) == 1
    assert counts(ch, name + ".dead") == 0


def test_filter_rejects_malformed_and_yields_valid() -> None:
    trigger = PrecacheRequestTrigger(queue="q")

    async def stream() -> Any:
        yield {"request_id": "a", "error": "invalid request: registry_id: Field required"}
        yield {"request_id": "b", "registry_id": "r", "conf": {"x": 1}}

    async def collect() -> list[Any]:
        return [e async for e in trigger.filter_shared_stream(stream())]

    [event] = asyncio.run(collect())
    assert event.payload == {"request_id": "b", "registry_id": "r", "conf": {"x": 1}}


def test_a_request_runs_on_the_stored_records_without_the_portal(dag: Any, standins: dict[str, str], mongo_db: Any) -> None:
    """The seed's flow: the integration wrote the records, the request brings the build."""
    from precache.triggers.requests import parse_request

    coll = mongo_db[REQUEST["collection"]]
    coll.delete_many({"registry_id": "it-request"})
    coll.insert_many([
        {"registry_id": "it-request", "row": i, "obj": {"fio": f"Запросов {i}", "sum": str(100 + i), "Дата платежа": "01.01.2027"}}
        for i in range(1, 131)
    ])
    portal_before = standins_portal_hits(standins)
    before = tts_stats(standins)
    event = parse_request(json.dumps(REQUEST, ensure_ascii=False).encode(), "req-run")
    reader = QueueReader(mongo_db, "it-request")
    reader.start()
    dr = dag.test(run_conf=event["conf"])
    reader.join(60)
    assert str(dr.state) == "success"
    docs = list(coll.find({"registry_id": "it-request"}))
    assert len(docs) == 130 and {d["precache"]["status"] for d in docs} == {"cached"}
    assert {d["obj"]["fio"] for d in docs} == {f"Запросов {i}" for i in range(1, 131)}  # nothing rewritten
    [done] = reader.completions
    assert done["status"] == "success" and done["total"] == 130 and done["cached"] == 130
    # 130 greetings + 130 debts + 1 shared hold phrase, all new to the proxy
    assert tts_stats(standins)["requests"] - before["requests"] == 261
    assert standins_portal_hits(standins) == portal_before


def test_a_request_for_records_not_written_fails_at_ingest(dag: Any, mongo_db: Any) -> None:
    from precache.triggers.requests import parse_request

    event = parse_request(json.dumps({**REQUEST, "registry_id": "it-nothing"}, ensure_ascii=False).encode(), "req-none")
    dr = dag.test(run_conf=event["conf"])
    assert str(dr.state) == "failed"
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states["validate"] == "success" and states["ingest"] == "failed"
    doc = mongo_db.precache_failures.find_one({"_id": f"tts_precache/{dr.run_id}"})
    assert doc["task_id"] == "ingest"
    assert doc["error"] == ("collection 'integration_records' holds no records of registry 'it-nothing': "
                            "write them there before requesting the precache")


def standins_portal_hits(standins: dict[str, str]) -> int:
    import requests

    return int(requests.get(standins["portal"] + "/_admin/stats", timeout=5).json().get("requests", 0))
