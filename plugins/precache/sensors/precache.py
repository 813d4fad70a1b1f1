"""The completion sensor: waits until every record is processed, then reports the run."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from precache.config import Settings
from precache.triggers.precache import RunCompleteTrigger


class PrecacheCompletionSensor(BaseSensorOperator):
    """Steps 12–13: deferrable wait on the run summary, then the completion message.

    Runs after every cache batch has ended (``all_done``), so it usually finds the run
    complete at once; it defers only while counters settle (a batch killed after its
    writes). When records stay unprocessed past ``settle_timeout_s`` the run is
    reported ``failed``, the message still goes out, and this task fails the DAG run.
    """

    def __init__(self, *, settle_timeout_s: float = 60.0, mongo_conn_id: str = "mongo_default",
                 rabbitmq_conn_id: str = "rabbitmq_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settle_timeout_s = settle_timeout_s
        self.mongo_conn_id = mongo_conn_id
        self.rabbitmq_conn_id = rabbitmq_conn_id

    def poke(self, context: Any) -> bool:
        from precache.hooks.store import PrecacheStore
        from precache.pipeline import run_is_complete

        with PrecacheStore(self.mongo_conn_id) as store:
            return run_is_complete(context["params"]["registry_id"], context["run_id"], store)

    def execute(self, context: Any) -> Any:
        from precache.hooks.store import PrecacheStore

        # The summary (and queue) exist only once declare_queue ran for this run.
        with PrecacheStore(self.mongo_conn_id) as store:
            run = store.get_run(context["params"]["registry_id"])
        if run is None or run.get("dag_run_id") != context["run_id"]:
            raise AirflowSkipException("the run stopped before its progress queue was declared: nothing to report")
        if run["processed"] >= run["total"]:
            return self._finish(context)
        self.defer(
            trigger=RunCompleteTrigger(context["params"]["registry_id"], context["run_id"], time.time() + self.settle_timeout_s, self.mongo_conn_id),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        return self._finish(context)

    def _finish(self, context: Any) -> dict[str, Any]:
        from precache.hooks.rabbitmq import RabbitMQHook
        from precache.hooks.store import PrecacheStore
        from precache.pipeline import complete

        params = context["params"]
        desc = {"registry_id": params["registry_id"], "collection": params["collection"]}
        with PrecacheStore(self.mongo_conn_id) as store, RabbitMQHook(self.rabbitmq_conn_id) as rabbit:
            summary = complete(desc, context["run_id"], store, rabbit, Settings.from_env().reports_dir)
        if summary["status"] == "failed":
            raise AirflowException(
                f"run failed: {summary['total'] - summary['cached'] - summary['failed']} of {summary['total']} "
                f"records were never processed (see the failed cache batches); the completion message says so"
            )
        return summary
