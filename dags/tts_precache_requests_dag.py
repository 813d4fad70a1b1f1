"""``tts_precache_requests``: the seed's own entry, a precache request on ``kv.tts.precaching.v2``.

Wiring only. An ``AssetWatcher`` runs ``PrecacheRequestTrigger`` (plugins/precache/triggers)
in the triggerer; each valid request is an asset event, and this DAG starts one
``tts_precache`` run per request on the records the integration already wrote.
See docs/contracts.md §8 for the message format.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, AssetWatcher, dag, get_current_context, task

from precache.config import Settings
from precache.operators.trigger import precache_runs
from precache.triggers.requests import PrecacheRequestTrigger

SETTINGS = Settings.from_env()

REQUESTS = Asset(
    name="precache_requests",
    uri=f"rabbitmq://rabbitmq_default/{SETTINGS.request_queue}",
    watchers=[
        AssetWatcher(
            name="precache_request_queue",
            trigger=PrecacheRequestTrigger(queue=SETTINGS.request_queue, rabbitmq_conn_id="rabbitmq_default"),
        )
    ],
)

DOC = f"""
### TTS precache requests

Scheduled by requests on the RabbitMQ queue `{SETTINGS.request_queue}` (the seed's step 7): the
integration script wrote a registry's records into the integration collection and asks for
them to be precached with the build settings and messages it sends. Each request starts one
`tts_precache` run (`run_id` = `request__<message id>`, so a redelivered request is not run
twice). Malformed requests never get here: they are moved to `{SETTINGS.request_queue}.dead`
with the reason in the `x-precache-error` header.
"""


@dag(
    dag_id="tts_precache_requests",
    schedule=[REQUESTS],
    catchup=False,
    tags=["tts", "precache", "requests"],
    doc_md=DOC,
    default_args={"owner": "voice-bot-platform", "retries": 2, "retry_delay": timedelta(seconds=10)},
)
def tts_precache_requests() -> None:
    @task(doc_md="Turns the triggering asset events into one `tts_precache` conf per request.")
    def requests() -> list[dict[str, Any]]:
        from precache.requests import runs_from_events

        return runs_from_events(get_current_context()["triggering_asset_events"])

    precache_runs(
        skip_when_already_exists=True,
        doc_md="Starts the request's `tts_precache` run and waits for it (deferred).",
    ).expand_kwargs(requests())


dag = tts_precache_requests()
