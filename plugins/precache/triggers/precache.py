"""Triggers of the precache DAG; they live in ``plugins/`` so the triggerer can import them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class RunCompleteTrigger(BaseTrigger):
    """Fires when the run summary says every record was processed, or at ``deadline``."""

    def __init__(self, registry_id: str, run_id: str, deadline: float, mongo_conn_id: str = "mongo_default", poll_s: float = 1.0) -> None:
        super().__init__()
        self.registry_id = registry_id
        self.run_id = run_id
        self.deadline = deadline
        self.mongo_conn_id = mongo_conn_id
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "precache.triggers.precache.RunCompleteTrigger",
            {"registry_id": self.registry_id, "run_id": self.run_id, "deadline": self.deadline,
             "mongo_conn_id": self.mongo_conn_id, "poll_s": self.poll_s},
        )

    def _check(self) -> bool:
        from precache.hooks.store import PrecacheStore
        from precache.pipeline import run_is_complete

        with PrecacheStore(self.mongo_conn_id) as store:
            return run_is_complete(self.registry_id, self.run_id, store)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            if await asyncio.to_thread(self._check):
                yield TriggerEvent({"status": "complete"})
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout"})
                return
            await asyncio.sleep(self.poll_s)


class QueueDrainedTrigger(BaseTrigger):
    """Fires when a queue holds no ready messages (or is gone), or at ``deadline``."""

    def __init__(self, queue: str, deadline: float, rabbitmq_conn_id: str = "rabbitmq_default", poll_s: float = 2.0) -> None:
        super().__init__()
        self.queue = queue
        self.deadline = deadline
        self.rabbitmq_conn_id = rabbitmq_conn_id
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "precache.triggers.precache.QueueDrainedTrigger",
            {"queue": self.queue, "deadline": self.deadline, "rabbitmq_conn_id": self.rabbitmq_conn_id, "poll_s": self.poll_s},
        )

    def _state(self) -> tuple[int, int] | None:
        from precache.hooks.rabbitmq import RabbitMQHook

        with RabbitMQHook(self.rabbitmq_conn_id, retry_window_s=30) as hook:
            return hook.queue_state(self.queue)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            state = await asyncio.to_thread(self._state)
            if state is None or state[0] == 0:
                yield TriggerEvent({"status": "drained" if state else "gone"})
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "messages": state[0]})
                return
            await asyncio.sleep(self.poll_s)
