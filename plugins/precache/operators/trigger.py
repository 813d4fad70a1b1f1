"""Starting ``tts_precache`` runs from the inbox and request DAGs."""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator


class TriggerPrecacheRunOperator(TriggerDagRunOperator):
    """``TriggerDagRunOperator`` that passes ``conf`` through untouched.

    The stock operator renders ``conf`` as a Jinja template; a request's conf carries the
    build's own templates (``{{ fio }}``), which must reach ``tts_precache`` as written,
    and a file name in an inbox conf must never be evaluated either.
    """

    template_fields = tuple(f for f in TriggerDagRunOperator.template_fields if f != "conf")
