"""Removal of the progress queue (step 14), as a deferrable teardown."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseOperator

from precache.triggers.precache import QueueDrainedTrigger


class DeleteProgressQueueOperator(BaseOperator):
    """Deletes the run's queue once its reader drained it, or after ``drain_timeout_s``.

    Waiting happens in the triggerer, not in a worker slot. Unread messages are never
    destroyed before the timeout; the queue's ``x-expires`` covers a teardown that never ran.
    """

    template_fields = ("progress_queue",)

    def __init__(self, *, progress_queue: Any, drain_timeout_s: float, rabbitmq_conn_id: str = "rabbitmq_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.progress_queue = progress_queue
        self.drain_timeout_s = drain_timeout_s
        self.rabbitmq_conn_id = rabbitmq_conn_id

    def _name(self) -> str | None:
        q = self.progress_queue
        return q.get("queue") if isinstance(q, dict) else (q or None)

    def execute(self, context: Any) -> None:
        from precache.hooks.rabbitmq import RabbitMQHook

        name = self._name()
        if not name:
            self.log.info("No progress queue was declared; nothing to delete")
            return
        with RabbitMQHook(self.rabbitmq_conn_id) as hook:
            state = hook.queue_state(name)
            if state is None:
                self.log.info("Queue %s is already gone", name)
                return
            if state[0] == 0:
                hook.delete_queue(name)
                self.log.info("Queue %s drained by its reader; deleted", name)
                return
        self.log.info("Queue %s holds %d unread messages; waiting up to %.0fs for its reader", name, state[0], self.drain_timeout_s)
        self.defer(
            trigger=QueueDrainedTrigger(name, time.time() + self.drain_timeout_s, self.rabbitmq_conn_id),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> None:
        from precache.hooks.rabbitmq import RabbitMQHook

        name = self._name()
        assert name
        with RabbitMQHook(self.rabbitmq_conn_id) as hook:
            hook.delete_queue(name)
        status = (event or {}).get("status")
        if status == "timeout":
            self.log.warning("Queue %s deleted after the drain timeout with %s unread messages", name, event.get("messages"))
        else:
            self.log.info("Queue %s deleted (%s)", name, status)
