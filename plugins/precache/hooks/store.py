"""The integration database: records, the per-registry run summary and the phrase ledger.

Every write is keyed so that repeating it changes nothing: records by
``_id = "<registry_id>:<row>"`` (plus the unique ``(registry_id, row)`` index of
CONTRACTS §3), the summary by ``registry_id``, phrases by their content address.
On FerretDB 1.24 (SQLite) only inserts avoid scanning a collection, so the hot path
writes by insert and reads by a few queries per 100 rows (``PrecacheStore.rewrites``).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import cached_property
from itertools import islice
from typing import Any

from airflow.providers.mongo.hooks.mongo import MongoHook
from pymongo import ASCENDING, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, OperationFailure

RUNS = "precache_runs"
PHRASES = "precache_phrases"
RUN_PHRASES = "precache_run_phrases"
FAILURES = "precache_failures"
INBOX = "precache_inbox"
# Who is sending a phrase: ``_id`` = the phrase key, a token and a lease.
CLAIMS = "precache_phrase_claims"
# Outcomes of rows ``start..end`` of a run, saved by the cache task, applied to the records at completion.
RESULTS = "precache_results"
# FerretDB: a registry being rewritten with its outcomes (``_rewrite_registry``), one collection per run.
JOURNAL_PREFIX = "precache_journal_"
# The document that marks a journal or snapshot as fully written.
DONE_MARK = "complete"
LOOKUP_THREADS = 8
FEW_IDS = 8
# FerretDB: a run's records, 100 rows per document, so that a cache task need not scan the records.
SNAPSHOT_PREFIX = "precache_rows_"
WRITE_CHUNK = 1000
# FerretDB 1.24 stalls on update/replace commands carrying many statements (seen at 80;
# 40 is fine), so bulk updates go out in commands of at most this many statements.
UPDATE_CHUNK = 32
DUPLICATE_KEY = 11000


class RecordsError(ValueError):
    """Stored records that do not follow CONTRACTS §3; retrying cannot fix them."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def record_id(registry_id: str, row: int) -> str:
    return f"{registry_id}:{row}"


def claim_doc(key: str, run_id: str, lease_until: float) -> dict[str, Any]:
    return {"_id": key, "token": uuid.uuid4().hex, "run_id": run_id, "lease_until": lease_until}


def results_id(registry_id: str, run_id: str, start: int) -> str:
    return f"{registry_id}|{run_id}|{start}"


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def insert_new(coll: Collection, docs: list[dict[str, Any]]) -> set[int]:
    """``insert_many`` that tolerates existing ``_id``s: returns the indexes of those skipped."""
    if not docs:
        return set()
    try:
        coll.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return {e["index"] for e in errors}
    return set()


def bulk(coll: Collection, ops: list[Any]) -> None:
    for part in chunks(ops, UPDATE_CHUNK):
        coll.bulk_write(part, ordered=False)


class PrecacheStore:
    """Typed access to the collections of one ``mongo_default``-style connection."""

    def __init__(self, mongo_conn_id: str = "mongo_default", database: str | None = None) -> None:
        self.hook = MongoHook(mongo_conn_id=mongo_conn_id)
        self.db: Database = self.hook.get_conn()[database or self.hook.connection.schema or "integration"]

    def close(self) -> None:
        if "_lookups" in self.__dict__:
            self._lookups.shutdown()
        self.hook.close()

    @cached_property
    def rewrites(self) -> bool:
        """Whether to take the FerretDB write path (by default: whether the server is FerretDB).

        On FerretDB 1.24 (SQLite) every update, delete and query scans its whole collection
        (about 40 µs per stored document, 4 µs for an ``_id`` equality; ``update_many`` once per
        matched document); only inserts use an index (the unique ``_id``). There the records'
        outcomes are written in one rewrite of the registry at the end of the run;
        on MongoDB, where updates are indexed, each saved range is applied as it comes.
        ``PRECACHE_STORE_REWRITES`` = 1/0 forces either way.
        """
        forced = os.environ.get("PRECACHE_STORE_REWRITES", "auto")
        if forced in ("0", "1"):
            return forced == "1"
        return self.is_ferretdb

    @cached_property
    def is_ferretdb(self) -> bool:
        try:
            return "ferretdbFeatures" in self.db.client.server_info()
        except Exception:  # noqa: BLE001 - unknown server: the plain, always-correct path
            return False

    def __enter__(self) -> PrecacheStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- records -------------------------------------------------------------------

    def records(self, collection: str) -> Collection:
        return self.db[collection]

    def ensure_indexes(self, collection: str) -> None:
        self.records(collection).create_index(
            [("registry_id", ASCENDING), ("row", ASCENDING)], unique=True, name="registry_row_unique"
        )

    def write_records(self, collection: str, registry_id: str, records: Iterable[dict[str, Any]]) -> int:
        """Write rows 1..N as documents, replacing any earlier version of the same row.

        New rows go in with ``insert_many`` (the fast path); rows that already exist
        come back as duplicate-key errors and are replaced by ``_id``. Rows beyond N
        left by a longer earlier version of the registry go with the clearing delete. Returns N.
        """
        coll = self.records(collection)
        # Clearing first and inserting is one scan plus fast inserts; replacing row by row
        # costs a collection scan per row on FerretDB. The source was fully validated
        # before this runs, and a crash in between is repaired by rerunning the task.
        coll.delete_many({"registry_id": registry_id})
        total = 0
        for batch in chunks(records, WRITE_CHUNK):
            docs = []
            for obj in batch:
                total += 1
                docs.append(
                    {
                        "_id": record_id(registry_id, total),
                        "registry_id": registry_id,
                        "row": total,
                        "obj": obj,
                        "precache": {"status": "pending"},
                    }
                )
            bulk(coll, [ReplaceOne({"_id": docs[i]["_id"]}, docs[i]) for i in sorted(insert_new(coll, docs))])
        # No "rows beyond N" clean-up here: the delete_many above removed every earlier row, and on
        # FerretDB that query is one more scan of the whole collection (a third of a 1M-row ingest).
        return total

    def record_failure(self, key: str, task_id: str, error: str, registry_id: str) -> None:
        """Keep the first failure of a run (``<dag_id>/<run_id>``): the earliest task says most."""
        self.db[FAILURES].update_one(
            {"_id": key},
            {"$setOnInsert": {"task_id": task_id, "error": error[:2000], "registry_id": registry_id, "at": now()}},
            upsert=True,
        )

    def run_failure(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        return self.db[FAILURES].find_one({"_id": f"{dag_id}/{run_id}"})

    def inbox_imported(self, sha256: str) -> dict[str, Any] | None:
        return self.db[INBOX].find_one({"_id": sha256})

    def mark_inbox_imported(self, sha256: str, fields: dict[str, Any]) -> None:
        self.db[INBOX].update_one({"_id": sha256}, {"$setOnInsert": fields}, upsert=True)

    def adopt_records(self, collection: str, registry_id: str) -> int:
        """Check records written by the integration script (the seed's step 7) and count them.

        They must follow CONTRACTS §3: ``registry_id``, ``row`` 1..N (unique) and an ``obj``.
        Their fields are never changed: a run only adds their ``precache`` sub-document.
        """
        coll = self.records(collection)
        total = coll.count_documents({"registry_id": registry_id})
        if total == 0:
            raise RecordsError(
                f"collection {collection!r} holds no records of registry {registry_id!r}: "
                "write them there before requesting the precache"
            )
        try:
            self.ensure_indexes(collection)
        except OperationFailure as exc:
            raise RecordsError(
                f"collection {collection!r}: records of registry {registry_id!r} repeat a row number "
                f"({exc.code}): (registry_id, row) must be unique"
            ) from None
        numbered = coll.count_documents({"registry_id": registry_id, "row": {"$gte": 1, "$lte": total}})
        if numbered != total:
            raise RecordsError(
                f"collection {collection!r}: registry {registry_id!r} has {total} records but only "
                f"{numbered} carry a row number in 1..{total}; number them 1..N (CONTRACTS §3)"
            )
        bad = coll.find_one({"registry_id": registry_id, "obj": {"$not": {"$type": "object"}}}, {"row": 1})
        if bad is not None:
            raise RecordsError(
                f"collection {collection!r}: registry {registry_id!r} row {bad.get('row')}: "
                "the record has no 'obj' object with its fields"
            )
        return total

    def read_rows(
        self, collection: str, registry_id: str, start: int, end: int, run_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Records of rows ``start..end``: from the run's row snapshot when there is one."""
        if run_id is not None and self.rewrites:
            snap = self._run_collection(SNAPSHOT_PREFIX, collection, registry_id, run_id).find_one({"_id": str(start)})
            if snap is not None and snap.get("end") == end:
                return snap["rows"]
        return list(
            self.records(collection).find({"registry_id": registry_id, "row": {"$gte": start, "$lte": end}})
        )

    def _run_collection(self, prefix: str, collection: str, registry_id: str, run_id: str) -> Collection:
        """A working collection of one run over one registry (a snapshot or a journal)."""
        return self.db[prefix + hashlib.sha256(f"{collection}|{registry_id}|{run_id}".encode()).hexdigest()[:16]]

    def snapshot_rows(self, collection: str, registry_id: str, run_id: str, total: int, size: int) -> int:
        """FerretDB: the registry's records copied, ``size`` rows per document, for the cache tasks.

        There a cache task's range query scans the whole records collection (about 40 µs
        per stored record, for every 100 rows); the snapshot costs one such scan per run,
        and a task then reads its rows from a collection of ``total / size`` documents.
        Returns the documents written (0 on MongoDB, where range queries use the index).
        A repeat finishes an interrupted snapshot; ``apply_results`` drops it.
        """
        if not self.rewrites:
            return 0
        snap = self._run_collection(SNAPSHOT_PREFIX, collection, registry_id, run_id)
        if snap.find_one({"_id": DONE_MARK}) is not None:
            return 0
        groups: dict[int, list[dict[str, Any]]] = {}
        written = 0
        for doc in self.records(collection).find({"registry_id": registry_id}):
            row = doc.get("row")
            if not isinstance(row, int) or not 1 <= row <= total:
                continue
            start = (row - 1) // size * size + 1
            group = groups.setdefault(start, [])
            group.append(doc)
            if len(group) == min(size, total - start + 1):  # rows come in order: at most one group open
                written += not insert_new(snap, [self._snapshot_doc(start, groups.pop(start))])
        for start, group in groups.items():  # rows missing from the registry: their range goes short
            written += not insert_new(snap, [self._snapshot_doc(start, group)])
        snap.insert_one({"_id": DONE_MARK})
        return written

    @staticmethod
    def _snapshot_doc(start: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        rows.sort(key=lambda d: d["row"])
        # A string _id: FerretDB matches those in SQL, other types only after decoding each document.
        return {"_id": str(start), "end": rows[-1]["row"] if len(rows) == rows[-1]["row"] - start + 1 else -1, "rows": rows}

    @cached_property
    def _lookups(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="precache-lookup")

    def save_results(
        self, registry_id: str, run_id: str, start: int, end: int, processed: int, failures: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Record the outcome of rows ``start..end`` of a run as one insert-only document.

        ``failures``: ``{"id": record _id, "error", "message_id"}`` of the failed rows; every other row of
        the range is cached. When an earlier try already saved this range, its document stands
        and is returned. The records themselves get their ``precache`` at ``apply_results``.
        """
        doc = {"_id": results_id(registry_id, run_id, start), "registry_id": registry_id, "run_id": run_id,
               "start": start, "end": end, "processed": processed, "at": now(), "failures": failures}
        if insert_new(self.db[RESULTS], [doc]):
            return self.db[RESULTS].find_one({"_id": doc["_id"]}) or doc
        return doc

    def saved_results(self, registry_id: str, run_id: str, start: int) -> dict[str, Any] | None:
        return self.db[RESULTS].find_one({"_id": results_id(registry_id, run_id, start)})

    def apply_results(self, collection: str, registry_id: str, run_id: str, only: dict[str, Any] | None = None) -> int:
        """Write the saved outcomes of a run into its records' ``precache``; returns rows covered.

        On MongoDB each saved range is two indexed updates (``only``: just that one, so that
        statuses show while the run goes). On FerretDB, where every update or delete scans
        the collection, the registry is rewritten once, at the end (``only`` is ignored):
        see ``_rewrite_registry``. Then the applied result documents are dropped. Repeatable.
        """
        if self.rewrites:
            if only is not None:
                return 0
            rows = self._rewrite_registry(collection, registry_id, run_id)
            self._run_collection(SNAPSHOT_PREFIX, collection, registry_id, run_id).drop()
            return rows
        docs = [only] if only is not None else list(self.db[RESULTS].find({"registry_id": registry_id, "run_id": run_id}))
        coll, rows = self.records(collection), 0
        for d in docs:
            cached = {"status": "cached", "error": None, "message_id": None, "run_id": run_id, "updated_at": d["at"]}
            coll.update_many({"registry_id": registry_id, "row": {"$gte": d["start"], "$lte": d["end"]}},
                             {"$set": {"precache": cached}})
            bulk(coll, [UpdateOne({"_id": f["id"]}, {"$set": {"precache": {
                **cached, "status": "failed", "error": f["error"], "message_id": f["message_id"]}}}) for f in d["failures"]])
            rows += d["end"] - d["start"] + 1
        if only is None and docs:
            self.db[RESULTS].delete_many({"registry_id": registry_id, "run_id": run_id})
        return rows

    def _rewrite_registry(self, collection: str, registry_id: str, run_id: str) -> int:
        """FerretDB: all of a registry's records rewritten with their outcomes, in a fixed number of scans.

        1. every record, with its outcome, goes into a journal collection of this run, then a
           mark; 2. the registry's records are deleted (one scan); 3. the journal is inserted back;
           4. the result documents and the journal are dropped. A try killed anywhere is finished
           by the next one: with the mark present it restarts at 2, without it at 1.
        """
        coll, res = self.records(collection), self.db[RESULTS]
        journal = self._run_collection(JOURNAL_PREFIX, collection, registry_id, run_id)
        results = sorted(res.find({"registry_id": registry_id, "run_id": run_id}), key=lambda d: d["start"])
        if journal.find_one({"_id": DONE_MARK}) is None:
            if not results:
                return 0
            journal.drop()
            starts = [d["start"] for d in results]
            failed = {f["id"]: (f["error"], f["message_id"]) for d in results for f in d["failures"]}
            for part in chunks(coll.find({"registry_id": registry_id}), WRITE_CHUNK):
                for doc in part:
                    i = bisect.bisect_right(starts, doc.get("row", 0)) - 1
                    if i >= 0 and doc["row"] <= results[i]["end"]:
                        err, mid = failed.get(doc["_id"], (None, None))
                        doc["precache"] = {"status": "failed" if err else "cached", "error": err, "message_id": mid,
                                           "run_id": run_id, "updated_at": results[i]["at"]}
                journal.insert_many([{"_id": {"k": d["_id"]}, "doc": d} for d in part], ordered=False)
            journal.insert_one({"_id": DONE_MARK})
        coll.delete_many({"registry_id": registry_id})
        for part in chunks(journal.find({"_id": {"$ne": DONE_MARK}}), WRITE_CHUNK):
            insert_new(coll, [j["doc"] for j in part])
        rows = sum(d["end"] - d["start"] + 1 for d in results)
        if results:
            res.delete_many({"registry_id": registry_id, "run_id": run_id})
        journal.drop()
        return rows

    def failed_records(self, collection: str, registry_id: str, run_id: str) -> list[dict[str, Any]]:
        cur = self.records(collection).find(
            {"registry_id": registry_id, "precache.run_id": run_id, "precache.status": "failed"},
            {"row": 1, "precache": 1},
        )
        return sorted(cur, key=lambda d: d["row"])

    # --- run summary -----------------------------------------------------------------

    def start_run(self, registry_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create the summary for ``fields["dag_run_id"]``, or keep it if this run made it."""
        runs = self.db[RUNS]
        doc = runs.find_one({"_id": registry_id})
        if doc is not None and doc.get("dag_run_id") == fields["dag_run_id"]:
            return doc
        doc = {
            "_id": registry_id,
            **fields,
            "status": "running",
            "processed": 0,
            "cached": 0,
            "failed": 0,
            "unique_phrases": 0,
            "started_at": now(),
            "finished_at": None,
            "published_processed": -1,
            "batches": {},
        }
        runs.replace_one({"_id": registry_id}, doc, upsert=True)
        return doc

    def get_run(self, registry_id: str) -> dict[str, Any] | None:
        return self.db[RUNS].find_one({"_id": registry_id}, {"batches": 0})

    def update_run(self, registry_id: str, run_id: str, fields: dict[str, Any]) -> None:
        self.db[RUNS].update_one({"_id": registry_id, "dag_run_id": run_id}, {"$set": fields})

    def acquire_lock(
        self, registry_id: str, run_id: str, batch: str, lease_s: float = 180.0, wait_s: float = 300.0,
    ) -> tuple[str, dict[str, Any]]:
        """A lease on the summary: holders publish progress one at a time, in order.

        Returns the lease's token and the summary's counters as of taking it (what
        ``set_batch_counts`` needs). Waiting backs off up to 0.2 s: on FerretDB every
        attempt is a write, and a tight loop of them slows the holder it waits for. The
        lease outlasts the publisher's 120 s reconnect window, so a holder stuck on a
        broker outage is never overtaken (which would let ``processed`` go backwards).
        """
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        delay = 0.01
        while True:
            t = time.time()
            doc = self.db[RUNS].find_one_and_update(
                {"_id": registry_id, "dag_run_id": run_id, "$or": [{"lock_until": None}, {"lock_until": {"$lt": t}}]},
                {"$set": {"lock_until": t + lease_s, "lock_owner": token}},
                # FerretDB 1.24 has no projection in findAndModify: the whole summary comes back there.
                projection=None if self.is_ferretdb else self._counter_fields(batch), return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return token, doc
            if time.monotonic() > deadline:
                raise TimeoutError(f"progress lock of registry {registry_id!r} not acquired in {wait_s:.0f}s")
            time.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 0.2)

    def release_lock(self, registry_id: str, token: str, fields: dict[str, Any] | None = None) -> None:
        """Give the lease back, setting ``fields`` in the same write."""
        self.db[RUNS].update_one(
            {"_id": registry_id, "lock_owner": token}, {"$set": {**(fields or {}), "lock_until": None, "lock_owner": None}},
        )

    @staticmethod
    def _counter_fields(batch: str) -> dict[str, int]:
        return {f"batches.{batch}": 1, "processed": 1, "cached": 1, "failed": 1, "total": 1, "published_processed": 1}

    def set_batch_counts(
        self, registry_id: str, run_id: str, batch: str, counts: dict[str, int], doc: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record a batch's absolute counts and move the run totals by the difference.

        Call it holding the progress lock (``doc``: the counters ``acquire_lock`` returned).
        Setting absolute per-batch numbers (not adding) is what keeps a retried batch from
        counting its records twice.
        """
        runs = self.db[RUNS]
        if doc is None:
            doc = runs.find_one({"_id": registry_id, "dag_run_id": run_id}, self._counter_fields(batch))
        if doc is None:
            raise LookupError(f"no running summary for registry {registry_id!r} and run {run_id!r}")
        old = (doc.get("batches") or {}).get(batch) or {}
        inc = {k: counts[k] - old.get(k, 0) for k in ("processed", "cached", "failed")}
        runs.update_one({"_id": registry_id, "dag_run_id": run_id}, {"$set": {f"batches.{batch}": counts}, "$inc": inc})
        for k, v in inc.items():
            doc[k] += v
        return doc

    # --- phrase ledger -----------------------------------------------------------------

    def claim_phrases(
        self, keys: list[str], run_id: str, force: bool, lease_s: float,
    ) -> tuple[dict[str, str], dict[str, str | None], set[str]]:
        """Sort phrase keys into: to send now (key → claim token), settled (key → error or None), held.

        A phrase is sent at most once per run and, unless ``force``, never again once cached by
        any run. The first claim of a phrase is an insert into ``precache_phrase_claims`` and its
        outcome another insert into ``precache_phrases``; only a claim that must be taken over
        (its holder died, or the phrase is sent again) is an update. Both collections are read
        by ``_id`` only, and only for phrases claimed before. ``claim_new`` and ``check_claimed``
        are its two halves, for a caller that sends the new ones while the others are looked up.
        """
        mine, claimed = self.claim_new(keys, run_id, lease_s)
        taken, done, held = self.check_claimed(claimed, run_id, force, lease_s)
        return mine | taken, done, held

    def claim_new(self, keys: list[str], run_id: str, lease_s: float) -> tuple[dict[str, str], list[str]]:
        """Claim phrases never claimed before (one insert): theirs to send (key → token), and the rest."""
        if not keys:
            return {}, []
        t = time.time()
        new = [claim_doc(k, run_id, t + lease_s) for k in keys]
        dup_idx = insert_new(self.db[CLAIMS], new)
        return {c["_id"]: c["token"] for i, c in enumerate(new) if i not in dup_idx}, [keys[i] for i in sorted(dup_idx)]

    def check_claimed(
        self, keys: list[str], run_id: str, force: bool, lease_s: float,
    ) -> tuple[dict[str, str], dict[str, str | None], set[str]]:
        """Phrases claimed before: taken over (key → token), settled (key → error or None), held."""
        claims, ledger = self.db[CLAIMS], self.db[PHRASES]
        t = time.time()
        mine: dict[str, str] = {}
        done: dict[str, str | None] = {}
        held: set[str] = set()
        if not keys:
            return mine, done, held
        outcomes = dict(self._find_by_ids(ledger, keys))
        unsettled = []
        for k, outcome in outcomes.items():
            status = outcome.get("status") if outcome else None
            owner = outcome.get("run_id") if outcome else None
            if status == "cached" and (not force or owner == run_id):
                done[k] = None
            elif status == "failed" and owner == run_id:
                done[k] = outcome.get("error") or "failed"
            else:
                unsettled.append(k)
        for k, held_by in self._find_by_ids(claims, unsettled):
            outcome = outcomes[k]
            if held_by is None:
                held.add(k)  # its claim is being taken over right now: look again
            elif (held_by.get("lease_until") or 0) > t and (outcome is None or outcome.get("token") != held_by.get("token")):
                held.add(k)  # being sent by another task, and not settled yet
            else:
                c = claim_doc(k, run_id, t + lease_s)
                won = claims.update_one({"_id": k, "token": held_by.get("token")}, {"$set": c})
                if won.modified_count:
                    mine[k] = c["token"]
                else:
                    held.add(k)
        return mine, done, held

    def _find_by_ids(self, coll: Collection, ids: list[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """``(id, document or None)`` for each id.

        FerretDB 1.24 finds an ``_id`` by scanning too, but about ten times faster per stored
        document than ``$in`` (which it matches in Go): a few ids are looked up one by one,
        concurrently; more in one ``$in`` query.
        """
        if len(ids) <= FEW_IDS:
            yield from self._lookups.map(lambda i: (i, coll.find_one({"_id": i})), ids)
            return
        found = {d["_id"]: d for d in coll.find({"_id": {"$in": ids}})}
        for i in ids:
            yield i, found.get(i)

    def settle_phrases(self, run_id: str, results: dict[str, str | None], tokens: dict[str, str]) -> None:
        """Record outcomes (key → error, None when cached) of phrases this run claimed and sent.

        The outcome carries its claim's token: a claim whose token has an outcome is finished.
        A phrase settled before (sent again after a failure, or forced) is replaced in place.
        """
        if not results:
            return
        ledger, t = self.db[PHRASES], now()
        docs = [{"_id": k, "status": "failed" if e else "cached", "error": e, "run_id": run_id, "token": tokens.get(k), "at": t}
                for k, e in results.items()]
        again = insert_new(ledger, docs)
        bulk(ledger, [ReplaceOne({"_id": docs[i]["_id"]}, docs[i]) for i in sorted(again)])

    def mark_run_phrases(self, run_id: str, keys: Iterable[str]) -> None:
        """Remember which distinct phrases this run needed (for ``unique_phrases``)."""
        insert_new(self.db[RUN_PHRASES], [{"_id": f"{run_id}|{k}", "run_id": run_id} for k in keys])

    def count_run_phrases(self, run_id: str) -> int:
        return self.db[RUN_PHRASES].count_documents({"run_id": run_id})

