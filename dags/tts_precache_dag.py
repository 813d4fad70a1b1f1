"""``tts_precache``: one registry in, every personalised phrase in the TTS proxy's cache.

Wiring only: the logic is in ``plugins/precache``. See docs/contracts.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, setup, task

from precache.config import Settings
from precache.models import INLINE_RECORDS_LIMIT, REGISTRY_ID_PATTERN
from precache.operators.queue import DeleteProgressQueueOperator
from precache.sensors.precache import PrecacheCompletionSensor

SETTINGS = Settings.from_env()

DOC = """
### TTS precache

Puts every phrase a voice-bot build will say to the people of one **registry** into the
TTS proxy's cache before the calls start (CONTRACTS, the seed diagram steps 1–14).

1. `validate` checks the conf · 2. `lookup_build` / `parse_build` read the bot build from the portal
3. `ingest` streams the registry into MongoDB (only once the build is known to be good)
4. `declare_queue` makes the RabbitMQ progress queue · 5. `plan` cuts rows into batches
6. `cache` (mapped) renders and sends each distinct phrase once, progress every 100 rows
7. `complete` writes `precache_runs` and the completion message · 8. `cleanup` deletes the queue

**Rerun** with the same `registry_id`: nothing is duplicated and phrases already cached are
not sent again (set `force` to resynthesize). Clearing a failed `cache` batch resumes it.
"""

PARAMS = {
    "registry_id": Param(
        type="string", pattern=REGISTRY_ID_PATTERN, minLength=1, maxLength=128,
        title="Registry id", section="Registry",
        description="The client's id of the registry; the idempotency key (letters, digits, . _ : -).",
    ),
    "build_id": Param(
        type="string", minLength=1, title="Build id", section="Registry",
        description="The voice-bot build to look up in the portal API.",
    ),
    "registry": Param(
        type="object", title="Registry source", section="Registry",
        description=(
            'Exactly one of {"path": "/data/inbox/x.csv"}, {"url": "https://..."}, '
            f'{{"records": [...]}} (at most {INLINE_RECORDS_LIMIT} records) or {{"stored": true}} '
            '(records already in the collection). Optional "format" '
            '(csv, xlsx, json, jsonl), "encoding" and "delimiter" (auto-detected).'
        ),
        minProperties=1,
    ),
    "collection": Param(
        "registry_records", type="string", pattern=r"^[A-Za-z0-9_.-]{1,120}$",
        title="Integration collection", section="Options",
        description="MongoDB collection the records are written to.",
    ),
    "force": Param(
        False, type="boolean", title="Force resynthesis", section="Options",
        description="Send phrases again even when this system already cached them.",
    ),
    "build": Param(
        None, type=["null", "object"], title="Inline build", section="Advanced",
        description="A build in the portal's format used instead of looking the build id up "
        "(set by tts_precache_requests from a queue request). Leave empty to ask the portal.",
    ),
}


def record_failure(context: Any) -> None:
    """Keep why the run failed where the inbox DAG and operators can read it."""
    from precache.pipeline import record_failure as record

    record(context)


def _conf() -> dict[str, Any]:
    return {k: v for k, v in get_current_context()["params"].items() if k in PARAMS}


@dag(
    dag_id="tts_precache",
    schedule=None,
    catchup=False,
    params=PARAMS,
    tags=["tts", "precache"],
    doc_md=DOC,
    max_active_runs=8,
    default_args={
        "owner": "voice-bot-platform",
        "retries": 2,
        "retry_delay": timedelta(seconds=10),
        "retry_exponential_backoff": True,
        "on_failure_callback": record_failure,
    },
)
def tts_precache() -> None:
    @task(retries=0, doc_md="Checks the conf; a bad one fails here, naming the field, before anything is written.")
    def validate() -> dict[str, Any]:
        from precache import pipeline

        return pipeline.validate(_conf())

    @task(doc_md="Streams the registry into the integration collection; a rerun replaces, never duplicates.")
    def ingest(desc: dict[str, Any]) -> dict[str, Any]:
        from precache import pipeline
        from precache.hooks.store import PrecacheStore

        with PrecacheStore() as store:
            return pipeline.ingest(_conf(), store, SETTINGS)

    @task(doc_md="Fetches the build from the portal (`portal_api`), unless the conf carries it inline; "
          "404 fails naming the build id.")
    def lookup_build(desc: dict[str, Any]) -> dict[str, Any]:
        from precache import pipeline

        return pipeline.fetch_build(_conf())

    @task(retries=0, doc_md="Parses messages, audio, voice and settings; compiles every template.")
    def parse_build(raw: dict[str, Any], desc: dict[str, Any]) -> dict[str, Any]:
        from precache import pipeline

        return pipeline.parse_build(raw, desc["build_id"])

    @setup
    @task(doc_md="Declares the durable progress queue and the `precache_runs` summary.")
    def declare_queue(desc: dict[str, Any], build: dict[str, Any], ingested: dict[str, Any]) -> dict[str, Any]:
        from precache import pipeline
        from precache.hooks.rabbitmq import RabbitMQHook
        from precache.hooks.store import PrecacheStore

        run_id = get_current_context()["run_id"]
        with PrecacheStore() as store, RabbitMQHook() as rabbit:
            return pipeline.declare(desc, build, ingested["total"], run_id, store, rabbit, SETTINGS)

    @task(doc_md="Cuts rows into batches (bounds only go through XCom); on FerretDB also copies the "
          "records in slices of 100 rows, so that the cache tasks need not scan the records collection.")
    def plan(ingested: dict[str, Any], queue: dict[str, Any], desc: dict[str, Any]) -> list[dict[str, int]]:
        from precache import pipeline
        from precache.hooks.store import PrecacheStore

        with PrecacheStore() as store:
            pipeline.snapshot(desc, ingested["total"], get_current_context()["run_id"], store, SETTINGS)
        return pipeline.plan(ingested["total"], SETTINGS)

    @task(
        max_active_tis_per_dag=SETTINGS.cache_parallel_tasks,
        pool=SETTINGS.tts_pool,
        map_index_template="{{ rows_label }}",
        doc_md="Renders one batch of rows and sends each new distinct phrase to the TTS proxy once. "
        "Clearing it resumes where it stopped.",
    )
    def cache(bounds: dict[str, int], desc: dict[str, Any], build: dict[str, Any], queue: dict[str, Any]) -> dict[str, int]:
        from precache import pipeline
        from precache.hooks.rabbitmq import RabbitMQHook
        from precache.hooks.store import PrecacheStore
        from precache.hooks.tts import TtsProxyHook

        context = get_current_context()
        context["rows_label"] = f"rows {bounds['start']}–{bounds['end']}"  # type: ignore[typeddict-unknown-key]
        tts = TtsProxyHook(
            max_in_flight=SETTINGS.in_flight_per_task, timeout_s=SETTINGS.tts_timeout_s,
            max_attempts=SETTINGS.tts_max_attempts, retry_budget_s=SETTINGS.tts_retry_budget_s,
        )
        with PrecacheStore() as store, RabbitMQHook() as rabbit:
            return pipeline.cache_batch(desc, build, bounds, context["run_id"], queue["queue"], store, rabbit, tts, SETTINGS)

    desc = validate()
    build = parse_build(lookup_build(desc), desc)
    ingested = ingest(desc)
    # A bad build fails before the stored records of an earlier run are touched.
    build >> ingested
    queue = declare_queue(desc, build, ingested)
    batches = plan(ingested, queue, desc)
    cached = cache.partial(desc=desc, build=build, queue=queue).expand(bounds=batches)
    complete = PrecacheCompletionSensor(
        task_id="complete", trigger_rule="all_done",
        doc_md="Waits until every record is processed, writes the summary, publishes the completion.",
    )
    cleanup = DeleteProgressQueueOperator(
        task_id="cleanup", progress_queue=queue, drain_timeout_s=SETTINGS.queue_drain_timeout_s,
        doc_md="Deletes the progress queue once drained (or after the drain timeout), also after a failure.",
    )
    cached >> complete >> cleanup.as_teardown(setups=queue)


dag = tts_precache()
