"""``tts_precache_inbox``: daily imports of the registry files dropped in the inbox.

Wiring only: the logic is in ``plugins/precache/inbox.py``. See docs/contracts.md §7.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import dag, get_current_context, task

from precache.config import Settings
from precache.operators.trigger import precache_runs
from precache.inbox import trigger_kwargs

SETTINGS = Settings.from_env()

DOC = """
### TTS precache inbox

Every day, picks up each registry file `<name>.<csv|xlsx|json|jsonl>` whose manifest
`<name>.manifest.json` stands beside it in `PRECACHE_INBOX_DIR`, starts one `tts_precache`
run per file, waits for it, and moves the file to `processed/` or to `failed/` with
`<name>.error.txt` saying why. Content imported before is not imported again.
Trigger it by hand to import at once.
"""


def _inbox() -> Path:
    if SETTINGS.inbox_dir is None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("PRECACHE_INBOX_DIR is not set: the inbox DAG has nothing to watch")
    return SETTINGS.inbox_dir


@dag(
    dag_id="tts_precache_inbox",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["tts", "precache", "inbox"],
    doc_md=DOC,
    default_args={"owner": "voice-bot-platform", "retries": 2, "retry_delay": timedelta(seconds=30)},
)
def tts_precache_inbox() -> None:
    @task(doc_md="Lists the files with manifests; bad manifests and unknown formats go to `failed/` at once.")
    def scan() -> list[dict[str, Any]]:
        from precache import inbox, pipeline
        from precache.hooks.store import PrecacheStore

        stamp = get_current_context()["run_id"].split("__")[-1]
        with PrecacheStore() as store:
            return inbox.scan(_inbox(), store, stamp, pipeline.validate, SETTINGS.inbox_max_files)

    files = scan()
    # The outcome of each run is read by `settle`, not by a retry of its trigger.
    runs = precache_runs(
        doc_md="Starts one `tts_precache` run per file and waits for it (deferred, no worker slot held).",
    ).expand_kwargs(files.map(trigger_kwargs))

    @task(trigger_rule="all_done", doc_md="Moves each file to `processed/` or `failed/` by its run's outcome.")
    def settle(descs: list[dict[str, Any]]) -> dict[str, Any]:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        from precache import inbox
        from precache.hooks.store import PrecacheStore

        def state(run_id: str) -> str | None:
            try:
                state = RuntimeTaskInstance.get_dagrun_state("tts_precache", run_id)
                return str(getattr(state, "value", state))  # a DagRunState enum
            except Exception:  # noqa: BLE001 - no such run: its trigger failed before creating it
                return None

        with PrecacheStore() as store:
            def reason(run_id: str) -> str | None:
                doc = store.run_failure("tts_precache", run_id)
                return f"task {doc['task_id']}: {doc['error']}" if doc else None

            return inbox.settle(_inbox(), descs, state, reason, store)

    runs >> settle(files)


dag = tts_precache_inbox()
