"""The steps of ``tts_precache``, as plain functions the DAG's tasks call.

Each step takes the small descriptors that travel through XCom and returns one;
registry content only ever moves between the source, MongoDB and the TTS proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from pydantic import ValidationError

from precache.config import Settings
from precache.hooks.rabbitmq import RabbitMQHook
from precache.hooks.store import PrecacheStore, RecordsError, now
from precache.hooks.tts import TtsProxyHook, bearer_headers
from precache.models import (
    QUEUE_PREFIX,
    Build,
    CompletionMessage,
    Failure,
    PrecacheConf,
    ProgressMessage,
    TtsRequest,
    check_queue_name,
    describe_validation_error,
    utcnow_iso,
)
from precache.planning import plan_batches
from precache.registry import RegistryError, allowed_path, opened_registry
from precache.rendering import Renderer, TemplateError
from precache.report import report_path, write_report

log = logging.getLogger(__name__)
FAILURES_IN_COMPLETION = 100


class PrecacheError(AirflowFailException, ValueError):
    """An input problem that retrying cannot fix; the message names its cause.

    Being an ``AirflowFailException`` makes the task fail at once, without retries.
    """


def parse_conf(conf: dict[str, Any]) -> PrecacheConf:
    try:
        return PrecacheConf.model_validate(conf)
    except ValidationError as exc:
        raise PrecacheError(describe_validation_error(exc, "conf")) from None


def validate(conf: dict[str, Any]) -> dict[str, Any]:
    """Step 0: the conf as a descriptor without registry content."""
    c = parse_conf(conf)
    try:
        fmt = c.registry.resolved_format()
    except ValueError as exc:
        raise PrecacheError(f"invalid conf: registry: {exc}") from None
    if c.registry.path is not None:
        try:
            allowed_path(c.registry.path, Settings.from_env().registry_roots)
        except RegistryError as exc:
            raise PrecacheError(f"invalid conf: {exc}") from None
    if c.build is not None:
        try:
            Build.model_validate(c.build)
        except ValidationError as exc:
            raise PrecacheError(describe_validation_error(exc, "conf: build")) from None
    return {
        "registry_id": c.registry_id,
        "build_id": c.build_id,
        "collection": c.collection,
        "force": c.force,
        "source": c.registry.describe(),
        "format": fmt,
    }


def ingest(conf: dict[str, Any], store: PrecacheStore, settings: Settings) -> dict[str, Any]:
    """Steps 1–3: stream the registry into the integration collection.

    The source is read twice: once to check every row, then to write. A registry that
    breaks at row 90,000 therefore fails before it replaces a single stored record.
    """
    c = parse_conf(conf)
    started = time.monotonic()
    if c.registry.stored:
        try:
            total = store.adopt_records(c.collection, c.registry_id)
        except RecordsError as exc:
            raise PrecacheError(str(exc)) from None
        log.info("Registry %s: %d records already in %s", c.registry_id, total, c.collection)
        return {"total": total}
    try:
        with opened_registry(c.registry, settings.registry_roots, settings.download_max_bytes) as records:
            total = sum(1 for _ in records())
            if total == 0:
                raise PrecacheError(f"{c.registry.describe()}: the registry holds no records")
            store.ensure_indexes(c.collection)
            written = store.write_records(c.collection, c.registry_id, records())
    except RegistryError as exc:
        raise PrecacheError(str(exc)) from None
    if written != total:
        raise PrecacheError(f"{c.registry.describe()}: changed while reading ({total} then {written} records)")
    log.info("Ingested %d records of %s into %s in %.1fs", total, c.registry.describe(), c.collection, time.monotonic() - started)
    return {"total": total}


def fetch_build(conf: dict[str, Any]) -> dict[str, Any]:
    """The build given inline in the conf (a queue request), else the portal's."""
    c = parse_conf(conf)
    if c.build is not None:
        log.info("Build %r given inline in the conf; the portal is not asked", c.build_id)
        return c.build
    return lookup_build(c.build_id)


def lookup_build(build_id: str, conn_id: str = "portal_api", timeout_s: float = 30.0) -> dict[str, Any]:
    """Steps 4–5: ``GET /api/v1/builds/{build_id}`` on the portal, via the HTTP provider."""
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="GET", http_conn_id=conn_id)
    headers = {"Accept": "application/json", **bearer_headers(hook.get_connection(conn_id).password)}
    endpoint = f"api/v1/builds/{requests.utils.quote(build_id, safe='')}"
    try:
        resp = hook.run(endpoint, headers=headers, extra_options={"check_response": False, "timeout": timeout_s})
    except requests.Timeout:
        raise ConnectionError(f"portal API: build {build_id!r}: no answer within {timeout_s:.0f}s") from None
    except requests.RequestException as exc:
        raise ConnectionError(f"portal API: build {build_id!r}: {type(exc).__name__}") from None
    if resp.status_code == 404:
        raise PrecacheError(f"portal API: build {build_id!r} not found (HTTP 404)")
    if resp.status_code in (401, 403):
        raise PrecacheError(f"portal API: build {build_id!r}: access refused (HTTP {resp.status_code}); check the portal_api token")
    if resp.status_code != 200:
        raise ConnectionError(f"portal API: build {build_id!r}: HTTP {resp.status_code}")
    try:
        body = resp.json()
    except ValueError:
        kind = resp.headers.get("Content-Type", "unknown content")
        raise PrecacheError(f"portal API: build {build_id!r}: answer is not JSON ({kind})") from None
    if not isinstance(body, dict):
        raise PrecacheError(f"portal API: build {build_id!r}: answer is not a JSON object")
    return body


def parse_build(raw: dict[str, Any], build_id: str) -> dict[str, Any]:
    """Step 6: messages, reference audio, voice and coerced TTS settings."""
    try:
        build = Build.model_validate(raw)
    except ValidationError as exc:
        raise PrecacheError(describe_validation_error(exc, f"build {build_id!r}")) from None
    try:
        renderer = Renderer(build)
    except TemplateError as exc:
        raise PrecacheError(f"build {build_id!r}: {exc}") from None
    static = [cm.message.id for cm in renderer.messages if cm.static]
    log.info(
        "Build %s: %d messages (%d static), voice %s, settings %s",
        build_id, len(build.messages), len(static), build.voice, build.settings.model_dump(),
    )
    return build.model_dump(by_alias=True)


def queue_name(build: Build, registry_id: str, run_id: str) -> str:
    """The build's queue, else one unique per run (and the same on a task retry)."""
    if build.settings.queue:
        return check_queue_name(build.settings.queue)
    uid = hashlib.sha256(f"{registry_id}|{run_id}".encode()).hexdigest()[:12]
    return check_queue_name(f"{QUEUE_PREFIX}{registry_id}.{uid}")


def declare(
    desc: dict[str, Any], build_raw: dict[str, Any], total: int, run_id: str,
    store: PrecacheStore, rabbit: RabbitMQHook, settings: Settings,
) -> dict[str, Any]:
    """Step 7: the progress queue (before any phrase is sent) and the run summary."""
    build = Build.model_validate(build_raw)
    queue = queue_name(build, desc["registry_id"], run_id)
    rabbit.declare_queue(queue, settings.queue_expires_s)
    store.start_run(
        desc["registry_id"],
        {"build_id": desc["build_id"], "dag_run_id": run_id, "queue": queue, "total": total, "collection": desc["collection"]},
    )
    log.info("Progress queue %s declared (x-expires %ss)", queue, settings.queue_expires_s)
    return {"queue": queue}


def plan(total: int, settings: Settings) -> list[dict[str, int]]:
    batches = plan_batches(total, settings.batch_size, settings.max_batches)
    log.info("%d records → %d batches", total, len(batches))
    return batches


def snapshot(desc: dict[str, Any], total: int, run_id: str, store: PrecacheStore, settings: Settings) -> None:
    """On FerretDB, copy the records in slices of ``batch_size`` rows for the cache tasks to read."""
    started = time.monotonic()
    written = store.snapshot_rows(desc["collection"], desc["registry_id"], run_id, total, settings.batch_size)
    if written:
        log.info("Row snapshot: %d slices of %d rows in %.1fs", written, settings.batch_size, time.monotonic() - started)


def resolve_phrases(
    requests: dict[str, TtsRequest], run_id: str, force: bool,
    store: PrecacheStore, tts: TtsProxyHook, settings: Settings,
) -> dict[str, str | None]:
    """Make sure every phrase is in the proxy's cache; key → error, None when cached.

    Phrases another task of this deployment is sending right now are waited for, not
    sent twice; a claim whose holder died is taken over when its lease runs out.
    """
    return asyncio.run(_resolve(requests, run_id, force, store, tts, settings.phrase_lease_s))


async def _resolve(
    requests: dict[str, TtsRequest], run_id: str, force: bool, store: PrecacheStore, tts: TtsProxyHook, lease_s: float,
) -> dict[str, str | None]:
    outcome: dict[str, str | None] = {}
    pending = sorted(requests)
    async with tts.sender() as send:
        while pending:
            # New phrases (one insert tells) go out at once; looking up the others (on FerretDB a
            # scan of the ledger) runs meanwhile, in a thread.
            mine, claimed = store.claim_new(pending, run_id, lease_s)
            sending = asyncio.ensure_future(send({k: requests[k] for k in mine}))
            try:
                taken, done, held = await asyncio.to_thread(store.check_claimed, claimed, run_id, force, lease_s)
            except BaseException:
                sending.cancel()
                raise
            results = await sending
            if taken:
                results += await send({k: requests[k] for k in taken})
            settled = {r.key: r.error for r in results}
            store.settle_phrases(run_id, settled, mine | taken)
            outcome.update(done)
            outcome.update(settled)
            pending = sorted(held)
            if pending:
                await asyncio.sleep(0.2)
    return outcome


def cache_batch(
    desc: dict[str, Any], build_raw: dict[str, Any], bounds: dict[str, int], run_id: str, queue: str,
    store: PrecacheStore, rabbit: RabbitMQHook, tts: TtsProxyHook, settings: Settings,
) -> dict[str, int]:
    """Steps 9–11 for rows ``bounds.start..bounds.end``, reporting every ``batch_size`` rows.

    Each slice of ``batch_size`` rows ends with its outcome saved as one document
    (``store.save_results``); a later try of the task counts a saved slice and skips it.
    """
    renderer = Renderer(Build.model_validate(build_raw))
    rid, coll = desc["registry_id"], desc["collection"]
    batch_key = f"b{bounds['start']}"
    counts = {"processed": 0, "cached": 0, "failed": 0}
    for sub_start in range(bounds["start"], bounds["end"] + 1, settings.batch_size):
        sub_end = min(sub_start + settings.batch_size - 1, bounds["end"])
        saved = store.saved_results(rid, run_id, sub_start)
        if saved is None:
            saved = cache_rows(rid, coll, sub_start, sub_end, run_id, desc["force"], renderer, store, tts, settings)
        counts["processed"] += saved["processed"]
        counts["failed"] += len(saved["failures"])
        counts["cached"] += saved["processed"] - len(saved["failures"])
        report_progress(desc, run_id, queue, batch_key, counts, store, rabbit)
    return counts


def cache_rows(
    rid: str, coll: str, start: int, end: int, run_id: str, force: bool,
    renderer: Renderer, store: PrecacheStore, tts: TtsProxyHook, settings: Settings,
) -> dict[str, Any]:
    """Render rows ``start..end``, get their distinct phrases cached, save the outcome."""
    requests: dict[str, TtsRequest] = {}
    todo = []
    for doc in store.read_rows(coll, rid, start, end, run_id):
        rendered = renderer.render(doc)
        keys = []
        for r in rendered:
            if r.request is not None:
                key = r.request.key()
                requests.setdefault(key, r.request)
                keys.append(key)
            else:
                keys.append(None)
        todo.append((doc["_id"], rendered, keys))
    outcome = resolve_phrases(requests, run_id, force, store, tts, settings)
    failures = []
    for record_id, rendered, keys in todo:
        errors = []
        for r, key in zip(rendered, keys):
            err = r.error if key is None else outcome.get(key)
            if err:
                errors.append((r.message_id, err if err.startswith("message ") else f"message {r.message_id!r}: {err}"))
        if errors:
            failures.append({"id": record_id, "error": "; ".join(e for _, e in errors), "message_id": errors[0][0]})
    store.mark_run_phrases(run_id, requests)
    saved = store.save_results(rid, run_id, start, end, len(todo), failures)
    store.apply_results(coll, rid, run_id, only=saved)
    return saved


def report_progress(
    desc: dict[str, Any], run_id: str, queue: str, batch_key: str, counts: dict[str, int],
    store: PrecacheStore, rabbit: RabbitMQHook,
) -> None:
    """Step 11: update the run totals and publish them, one publisher at a time.

    Parallel batches finish in any order; holding the summary's lease while counting
    and publishing is what makes ``processed`` non-decreasing on the queue.
    """
    rid = desc["registry_id"]
    token, counters = store.acquire_lock(rid, run_id, batch_key)
    published: dict[str, Any] = {}
    try:
        run = store.set_batch_counts(rid, run_id, batch_key, dict(counts), counters)
        if run["processed"] > run.get("published_processed", -1):
            msg = ProgressMessage(
                registry_id=rid, dag_run_id=run_id, processed=run["processed"], total=run["total"],
                cached=run["cached"], failed=run["failed"],
                percent=round(100.0 * run["processed"] / max(run["total"], 1), 1),
            )
            rabbit.publish_json(queue, msg.model_dump())
            published = {"published_processed": run["processed"]}
    finally:
        store.release_lock(rid, token, published)


def run_is_complete(registry_id: str, run_id: str, store: PrecacheStore) -> bool:
    run = store.get_run(registry_id)
    return bool(run and run.get("dag_run_id") == run_id and run["processed"] >= run["total"])


def run_failures(store: PrecacheStore, collection: str, registry_id: str, run_id: str) -> list[Failure]:
    """Every failed record of the run, by row: what the report and the completion list."""
    return [
        Failure(row=d["row"], message_id=d["precache"].get("message_id"), reason=d["precache"].get("error") or "")
        for d in store.failed_records(collection, registry_id, run_id)
    ]


def complete(
    desc: dict[str, Any], run_id: str, store: PrecacheStore, rabbit: RabbitMQHook, reports_dir: Path | None = None,
) -> dict[str, Any]:
    """Steps 12–13: write the summary and publish the completion message once.

    The message is stored before it is published, so a retry re-sends the same content.
    """
    rid = desc["registry_id"]
    run = store.get_run(rid)
    if run is None or run.get("dag_run_id") != run_id:
        raise PrecacheError(f"no summary of run {run_id!r} for registry {rid!r}")
    # The saved outcomes of the cache tasks reach the records now, before they are reported.
    store.apply_results(desc["collection"], rid, run_id)
    msg = run.get("completion")
    if msg is not None and msg["status"] == "failed" and run["processed"] >= run["total"]:
        msg = None  # a cleared batch finished the records since: report the run as it now stands
    if msg is None:
        failures = run_failures(store, desc["collection"], rid, run_id)
        if run["processed"] < run["total"]:
            status = "failed"
        else:
            status = "partial" if run["failed"] else "success"
        finished = now()
        started = run["started_at"]
        if started.tzinfo is None:
            started = started.replace(tzinfo=finished.tzinfo)
        msg = CompletionMessage(
            registry_id=rid, dag_run_id=run_id, status=status, total=run["total"], cached=run["cached"],
            failed=run["failed"], unique_phrases=store.count_run_phrases(run_id),
            duration_s=round((finished - started).total_seconds(), 3), failures=failures[:FAILURES_IN_COMPLETION],
            timestamp=utcnow_iso(),
        ).model_dump()
        if reports_dir is not None:
            path = write_report(report_path(reports_dir, rid, run_id), msg, [f.model_dump() for f in failures])
            msg["report"] = str(path)
        store.update_run(rid, run_id, {
            "status": status, "unique_phrases": msg["unique_phrases"], "finished_at": finished, "completion": msg,
        })
    rabbit.publish_json(run["queue"], msg)
    log.info(
        "Run %s of registry %s: %s — %d/%d cached, %d failed, %d unique phrases, %.1fs; report: %s",
        run_id, rid, msg["status"], msg["cached"], msg["total"], msg["failed"], msg["unique_phrases"], msg["duration_s"],
        msg.get("report"),
    )
    return {k: msg.get(k) for k in ("status", "total", "cached", "failed", "unique_phrases", "duration_s", "report")}


def record_failure(context: Any) -> None:
    """Task failure callback: the first failure of a run, with its reason, in ``precache_failures``.

    Best effort: a failure to record must not hide the task's own error.
    """
    try:
        ti = context["ti"]
        error = context.get("exception")
        params = context.get("params") or {}
        with PrecacheStore() as store:
            store.record_failure(
                f"{ti.dag_id}/{ti.run_id}", ti.task_id, str(error) if error else "failed",
                str(params.get("registry_id") or ""),
            )
    except Exception:  # noqa: BLE001 - the callback must never raise
        log.warning("Could not record the failure reason", exc_info=True)
