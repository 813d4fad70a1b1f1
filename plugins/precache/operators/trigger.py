"""Starting ``tts_precache`` runs from the inbox and request DAGs."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator


class TriggerPrecacheRunOperator(TriggerDagRunOperator):
    """``TriggerDagRunOperator`` that passes ``conf`` through untouched.

    The stock operator renders ``conf`` as a Jinja template; a request's conf carries the
    build's own templates (``{{ fio }}``), which must reach ``tts_precache`` as written,
    and a file name in an inbox conf must never be evaluated either.
    """

    template_fields = tuple(f for f in TriggerDagRunOperator.template_fields if f != "conf")


def precache_runs(**kwargs: Any) -> Any:
    """A mapped start-and-wait of ``tts_precache`` runs, as the inbox and request DAGs use it.

    Waiting is deferred (no worker slot held). No retries: a retry would find its run
    already started; each caller reads or tolerates the outcome its own way.
    """
    return TriggerPrecacheRunOperator.partial(
        task_id="run_precache",
        trigger_dag_id="tts_precache",
        wait_for_completion=True,
        deferrable=True,
        poke_interval=10,
        allowed_states=["success"],
        failed_states=["failed"],
        retries=0,
        **kwargs,
    )
