"""Event-driven start of precache runs from the seed's request queue ``kv.tts.precaching.v2``.

``PrecacheRequestTrigger`` is the trigger of an ``AssetWatcher``: the triggerer consumes the
queue and every valid request becomes an asset event that schedules ``tts_precache_requests``.
It runs in the triggerer's *ack mode* (``airflow.triggers.shared_stream``): a message is acked
on the broker only after the asset event derived from it is stored in Airflow's metadata
database. If the triggerer dies in between, the broker still holds the message unacked and
redelivers it, so nothing is lost; the redelivered request maps to the same run id, so it is
not run twice. A malformed request is rejected: it goes to the dead-letter queue
``<queue>.dead`` with its reason in the ``x-precache-error`` header, and is acked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer, reject_shared_stream_event

log = logging.getLogger(__name__)

ERROR_HEADER = "x-precache-error"


def parse_request(body: bytes, message_id: str | None) -> dict[str, Any]:
    """A raw request → ``{"request_id", "registry_id", "conf"}`` or ``{"request_id", "error"}``.

    The request id is the AMQP ``message_id`` when the sender set one, else the SHA-256 of
    the body: a redelivered or resent message keeps its id.
    """
    from pydantic import ValidationError

    from precache.models import PrecacheRequest, describe_validation_error

    request_id = message_id or hashlib.sha256(body).hexdigest()[:32]
    try:
        raw = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return {"request_id": request_id, "error": f"request is not UTF-8 ({exc.reason} at byte {exc.start})"}
    except json.JSONDecodeError as exc:
        return {"request_id": request_id, "error": f"request is not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"}
    if not isinstance(raw, dict):
        return {"request_id": request_id, "error": f"request must be a JSON object, got {type(raw).__name__}"}
    try:
        req = PrecacheRequest.model_validate(raw)
    except ValidationError as exc:
        return {"request_id": request_id, "error": describe_validation_error(exc, "request")}
    return {"request_id": request_id, "registry_id": req.registry_id, "conf": req.to_conf()}


def request_run_id(request_id: str) -> str:
    """The ``tts_precache`` run id of a request: the same request never starts two runs."""
    safe = "".join(c if c.isalnum() or c in "._:-" else "-" for c in request_id)[:200]
    return f"request__{safe}"


class RabbitRequestProducer(SharedStreamProducer):
    """Pulls requests with ``basic_get`` (manual ack) and acks or dead-letters them on ``advance``.

    pika's blocking connection is not thread-safe, so every broker call goes through one
    dedicated thread.
    """

    def __init__(self, queue: str, rabbitmq_conn_id: str, dead_letter_queue: str, poll_s: float) -> None:
        self.queue = queue
        self.conn_id = rabbitmq_conn_id
        self.dead_letter_queue = dead_letter_queue
        self.poll_s = poll_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="precache-requests")
        self._conn: Any = None
        self._channel: Any = None
        # Delivery tags belong to one channel; after a reconnect the old ones are void and
        # the broker redelivers those messages by itself.
        self._generation = 0

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _connect(self) -> None:
        import pika

        from precache.hooks.rabbitmq import RabbitMQHook

        self._conn = pika.BlockingConnection(RabbitMQHook(self.conn_id).parameters())
        ch = self._conn.channel()
        # The request queue belongs to the integration: declare it only when it is missing,
        # never with arguments of ours (a mismatch would close the channel).
        try:
            ch.queue_declare(self.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            ch = self._conn.channel()
            ch.queue_declare(self.queue, durable=True)
        ch.queue_declare(self.dead_letter_queue, durable=True)
        ch.confirm_delivery()
        self._channel = ch
        self._generation += 1
        log.info("Consuming precache requests from %s (dead letters: %s)", self.queue, self.dead_letter_queue)

    def _disconnect(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    def _get(self) -> tuple[int, Any, bytes] | None:
        if self._channel is None:
            self._connect()
        self._conn.process_data_events(0)  # heartbeats while the queue is empty
        method, props, body = self._channel.basic_get(self.queue, auto_ack=False)
        if method is None:
            return None
        return method.delivery_tag, props, body

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        import pika.exceptions

        backoff = 1.0
        while True:
            try:
                got = await self._call(self._get)
                backoff = 1.0
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("Request queue %s: %s; reconnecting in %.0fs", self.queue, exc, backoff)
                await self._call(self._disconnect)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if got is None:
                await asyncio.sleep(self.poll_s)
                continue
            tag, props, body = got
            event = parse_request(body, getattr(props, "message_id", None))
            if "error" in event:
                log.warning("Request %s refused: %s", event["request_id"], event["error"])
            yield event, {"tag": tag, "generation": self._generation, "body": body, "props": props,
                          "error": event.get("error")}

    def _settle(self, batch: Sequence[AdvanceItem]) -> None:
        import pika

        for item in batch:
            p = item.broker_payload
            if p["generation"] != self._generation or self._channel is None:
                continue  # its channel is gone: the broker redelivers it
            if item.outcome.rejected:
                headers = dict(getattr(p["props"], "headers", None) or {})
                headers[ERROR_HEADER] = (p["error"] or "rejected")[:1000]
                headers["x-precache-queue"] = self.queue
                self._channel.basic_publish(
                    "", self.dead_letter_queue, p["body"],
                    pika.BasicProperties(
                        content_type=getattr(p["props"], "content_type", None) or "application/json",
                        delivery_mode=2, headers=headers, message_id=getattr(p["props"], "message_id", None),
                    ),
                )
                self._channel.basic_ack(p["tag"])
            elif item.outcome.is_clean:
                self._channel.basic_ack(p["tag"])
            else:
                self._channel.basic_nack(p["tag"], requeue=True)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        await self._call(self._settle, batch)

    async def aclose(self) -> None:
        await self._call(self._disconnect)
        self._pool.shutdown(wait=False)


class PrecacheRequestTrigger(BaseEventTrigger):
    """Fires once per valid precache request on ``queue`` (see the module docstring)."""

    def __init__(
        self,
        queue: str = "kv.tts.precaching.v2",
        rabbitmq_conn_id: str = "rabbitmq_default",
        dead_letter_queue: str | None = None,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.queue = queue
        self.rabbitmq_conn_id = rabbitmq_conn_id
        self.dead_letter_queue = dead_letter_queue or f"{queue}.dead"
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "precache.triggers.requests.PrecacheRequestTrigger",
            {"queue": self.queue, "rabbitmq_conn_id": self.rabbitmq_conn_id,
             "dead_letter_queue": self.dead_letter_queue, "poll_s": self.poll_s},
        )

    def shared_stream_key(self) -> Hashable | None:
        return ("rabbitmq", self.rabbitmq_conn_id, self.queue)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        return RabbitRequestProducer(
            kwargs.get("queue", "kv.tts.precaching.v2"),
            kwargs.get("rabbitmq_conn_id", "rabbitmq_default"),
            kwargs.get("dead_letter_queue") or f"{kwargs.get('queue', 'kv.tts.precaching.v2')}.dead",
            float(kwargs.get("poll_s", 1.0)),
        )

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for event in shared_stream:
            if event.get("error"):
                reject_shared_stream_event()
                continue
            yield TriggerEvent(event)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Never called: a non-None shared_stream_key routes the triggerer to
        # filter_shared_stream, the only path that acks after the event is stored.
        raise NotImplementedError("PrecacheRequestTrigger runs as a shared stream (ack mode) only")
        yield  # pragma: no cover - makes this an async generator
