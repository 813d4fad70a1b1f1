"""RabbitMQ hook on pika: progress queues, confirmed publishing, drain checks."""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions
from airflow.sdk import BaseHook

from precache.models import check_queue_name

log = logging.getLogger(__name__)
# pika logs every connection open/close at INFO, drowning the task log.
logging.getLogger("pika").setLevel(logging.WARNING)

# Errors after which a fresh connection may well succeed (broker restart, network blip).
TRANSIENT = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.ChannelClosed,
    pika.exceptions.NackError,
    pika.exceptions.UnroutableError,
    ConnectionError,
    OSError,
)


class RabbitMQHook(BaseHook):
    """Talks to the broker of the ``rabbitmq_default`` (``amqp``) connection.

    Every operation reconnects and retries on transient failures for up to
    ``retry_window_s`` seconds, so a broker restart mid-run costs a pause, not a task.
    """

    conn_name_attr = "rabbitmq_conn_id"
    default_conn_name = "rabbitmq_default"
    conn_type = "amqp"
    hook_name = "RabbitMQ"

    def __init__(self, rabbitmq_conn_id: str = default_conn_name, retry_window_s: float = 120.0) -> None:
        super().__init__()
        self.rabbitmq_conn_id = rabbitmq_conn_id
        self.retry_window_s = retry_window_s
        self._conn: pika.BlockingConnection | None = None
        self._channel: Any = None

    def parameters(self) -> pika.URLParameters:
        c = self.get_connection(self.rabbitmq_conn_id)
        vhost = c.schema if c.schema not in (None, "") else "/"
        auth = f"{quote(c.login or 'guest', safe='')}:{quote(c.password or 'guest', safe='')}@"
        url = f"amqp://{auth}{c.host or '127.0.0.1'}:{c.port or 5672}/{quote(vhost, safe='')}"
        params = pika.URLParameters(url)
        params.heartbeat = 60
        params.blocked_connection_timeout = 60
        params.connection_attempts = 1
        return params

    def channel(self) -> Any:
        if self._channel is None or self._channel.is_closed:
            if self._conn is None or self._conn.is_closed:
                self._conn = pika.BlockingConnection(self.parameters())
            self._channel = self._conn.channel()
            self._channel.confirm_delivery()
        return self._channel

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:  # already broken; nothing to release
                pass

    def __enter__(self) -> RabbitMQHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retrying(self, what: str, fn: Any) -> Any:
        deadline = time.monotonic() + self.retry_window_s
        delay = 0.5
        while True:
            try:
                return fn(self.channel())
            except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError,
                    pika.exceptions.ProbableAccessDeniedError) as exc:
                # Wrong credentials or vhost: retrying for minutes cannot fix them.
                self.close()
                raise ValueError(
                    f"RabbitMQ refused the login of connection {self.rabbitmq_conn_id!r} to {what}: "
                    f"{type(exc).__name__}; check its user, password and vhost"
                ) from None
            except TRANSIENT as exc:
                self.close()
                if isinstance(exc, pika.exceptions.ChannelClosedByBroker) and exc.reply_code in (403, 404, 405, 406):
                    # access refused, not found, precondition failed: the broker's answer, not a blip
                    raise ValueError(f"RabbitMQ refused to {what}: {exc.reply_code} {exc.reply_text}") from None
                if time.monotonic() + delay > deadline:
                    raise ConnectionError(f"RabbitMQ: {what} failed for {self.retry_window_s:.0f}s: {exc!r}") from exc
                log.warning("RabbitMQ: %s failed (%r); reconnecting in %.1fs", what, exc, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 10.0)

    def declare_queue(self, name: str, expires_s: int) -> None:
        """Declare a durable progress queue that the broker drops if abandoned."""
        check_queue_name(name)
        self._retrying(
            f"declare {name}",
            lambda ch: ch.queue_declare(name, durable=True, arguments={"x-expires": int(expires_s * 1000)}),
        )

    def publish_json(self, queue: str, body: dict[str, Any]) -> None:
        """Publish persistently with a publisher confirm, retrying until confirmed."""
        check_queue_name(queue)
        data = json.dumps(body, ensure_ascii=False).encode()
        props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8", delivery_mode=2)
        self._retrying(
            f"publish to {queue}",
            lambda ch: ch.basic_publish("", queue, data, properties=props, mandatory=True),
        )

    def queue_state(self, name: str) -> tuple[int, int] | None:
        """``(messages ready, consumers)``, or None when the queue does not exist."""
        check_queue_name(name)

        def passive(ch: Any) -> tuple[int, int] | None:
            try:
                ok = ch.queue_declare(name, passive=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    return None
                raise
            return ok.method.message_count, ok.method.consumer_count

        return self._retrying(f"inspect {name}", passive)

    def delete_queue(self, name: str) -> None:
        check_queue_name(name)

        def delete(ch: Any) -> None:
            try:
                ch.queue_delete(name)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise

        self._retrying(f"delete {name}", delete)
