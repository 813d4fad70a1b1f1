"""The integration database: records, the per-registry run summary and the phrase ledger.

Every write is keyed so that repeating it changes nothing: records by
``_id = "<registry_id>:<row>"`` (plus the unique ``(registry_id, row)`` index of
CONTRACTS §3), the summary by ``registry_id``, phrases by their content address.
Lookups by ``_id`` are also the ones FerretDB's SQLite backend serves without a scan.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from functools import cached_property
from itertools import islice
from typing import Any

from airflow.providers.mongo.hooks.mongo import MongoHook
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, OperationFailure

RUNS = "precache_runs"
PHRASES = "precache_phrases"
RUN_PHRASES = "precache_run_phrases"
FAILURES = "precache_failures"
INBOX = "precache_inbox"
# Records being rewritten (delete + insert, see ``PrecacheStore.rewrites``): restored if a task dies in between.
JOURNAL = "precache_rewrite_journal"
# Phrases whose ledger entry a settle is rewriting (delete + insert): a claim that lands in between waits.
SETTLING = "precache_phrases_settling"
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
        self.hook.close()

    @cached_property
    def rewrites(self) -> bool:
        """Write many documents as one delete + one insert instead of one update each.

        On FerretDB 1.24 (SQLite) every update statement scans its whole collection (its
        ``UPDATE ... WHERE sjson->'$._id' = ?`` misses the ``_id`` index) and ``update_many``
        runs one such statement per matched document, while ``delete_many({_id: {$in}})``
        is one scan for all and inserts use the index. On MongoDB updates are indexed:
        the plain update path stays. ``PRECACHE_STORE_REWRITES`` = 1/0 forces either way.
        """
        forced = os.environ.get("PRECACHE_STORE_REWRITES", "auto")
        if forced in ("0", "1"):
            return forced == "1"
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
        Nothing is rewritten, so what the integration wrote is never lost.
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

    def read_rows(self, collection: str, registry_id: str, start: int, end: int) -> list[dict[str, Any]]:
        return list(
            self.records(collection).find({"registry_id": registry_id, "row": {"$gte": start, "$lte": end}})
        )

    def set_record_results(
        self, collection: str, results: list[tuple[str, dict[str, Any]]], docs: dict[str, dict[str, Any]],
    ) -> None:
        """``results``: ``(_id, precache sub-document)`` pairs.

        Records sharing one outcome (all the cached ones, typically) are written by a
        single ``update_many``; the rest one by one. With ``rewrites``, the records are
        rewritten whole instead (``docs``: the records as read, by ``_id``), journaled.
        """
        if self.rewrites and results:
            self._rewrite_records(collection, [{**docs[rid], "precache": p} for rid, p in results])
            return
        groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for rid, p in results:
            groups.setdefault(repr(sorted(p.items())), (p, []))[1].append(rid)
        singles = []
        for p, ids in groups.values():
            if len(ids) == 1:
                singles.append(UpdateOne({"_id": ids[0]}, {"$set": {"precache": p}}))
            else:
                self.records(collection).update_many({"_id": {"$in": ids}}, {"$set": {"precache": p}})
        bulk(self.records(collection), singles)

    def _rewrite_records(self, collection: str, new_docs: list[dict[str, Any]]) -> None:
        """Replace records by ``_id`` with one delete + one insert; the new versions sit in the
        journal meanwhile, so a task killed in between loses nothing (``restore_records``)."""
        coll, journal = self.records(collection), self.db[JOURNAL]
        ids = [d["_id"] for d in new_docs]
        jids = [f"{collection}|{i}" for i in ids]
        journal.delete_many({"_id": {"$in": jids}})  # leftovers of a killed try of these rows
        journal.insert_many([{"_id": j, "coll": collection, "doc": d} for j, d in zip(jids, new_docs)], ordered=False)
        coll.delete_many({"_id": {"$in": ids}})
        # Written again in between (a concurrent try of this batch): keep that document, set our outcome.
        bulk(coll, [UpdateOne({"_id": new_docs[i]["_id"]}, {"$set": {"precache": new_docs[i]["precache"]}})
                    for i in sorted(insert_new(coll, new_docs))])
        journal.delete_many({"_id": {"$in": jids}})

    def restore_records(self, collection: str, registry_id: str, start: int, end: int) -> int:
        """Put back records of rows ``start..end`` a killed rewrite left only in the journal."""
        if not self.rewrites:
            return 0
        journal = self.db[JOURNAL]
        left = list(journal.find({"coll": collection, "doc.registry_id": registry_id, "doc.row": {"$gte": start, "$lte": end}}))
        if not left:
            return 0
        # Those still present were never deleted: nothing to restore for them.
        insert_new(self.records(collection), [j["doc"] for j in left])
        journal.delete_many({"_id": {"$in": [j["_id"] for j in left]}})
        return len(left)

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

    def acquire_lock(self, registry_id: str, run_id: str, lease_s: float = 180.0, wait_s: float = 300.0) -> str:
        """A lease on the summary: holders publish progress one at a time, in order.

        The lease outlasts the publisher's 120 s reconnect window, so a holder stuck on a
        broker outage is never overtaken (which would let ``processed`` go backwards).
        """
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while True:
            t = time.time()
            got = self.db[RUNS].update_one(
                {"_id": registry_id, "dag_run_id": run_id, "$or": [{"lock_until": None}, {"lock_until": {"$lt": t}}]},
                {"$set": {"lock_until": t + lease_s, "lock_owner": token}},
            )
            if got.modified_count == 1:
                return token
            if time.monotonic() > deadline:
                raise TimeoutError(f"progress lock of registry {registry_id!r} not acquired in {wait_s:.0f}s")
            time.sleep(0.01)

    def release_lock(self, registry_id: str, token: str) -> None:
        self.db[RUNS].update_one({"_id": registry_id, "lock_owner": token}, {"$set": {"lock_until": None, "lock_owner": None}})

    def set_batch_counts(self, registry_id: str, run_id: str, batch: str, counts: dict[str, int]) -> dict[str, Any]:
        """Record a batch's absolute counts and move the run totals by the difference.

        Call it holding the progress lock. Setting absolute per-batch numbers (not
        adding) is what keeps a retried batch from counting its records twice.
        """
        runs = self.db[RUNS]
        doc = runs.find_one(
            {"_id": registry_id, "dag_run_id": run_id},
            {f"batches.{batch}": 1, "processed": 1, "cached": 1, "failed": 1, "total": 1, "published_processed": 1},
        )
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
        self, keys: list[str], run_id: str, force: bool, lease_s: float, seen_held: Iterable[str] = (),
    ) -> tuple[set[str], dict[str, str | None], set[str]]:
        """Sort phrase keys into: to send now, already settled (key → error or None), held by another task.

        A phrase is sent at most once per run and, unless ``force``, never again once
        cached by any run. Claims are leases so a killed worker's phrases are taken over.
        ``seen_held``: keys found held earlier; one missing now is being settled by a
        rewrite (``settle_phrases``), so the claim just inserted stays held, not sent.
        """
        ledger = self.db[PHRASES]
        t = time.time()
        claim = {"status": "pending", "run_id": run_id, "lease_until": t + lease_s, "error": None}
        mine: set[str] = set()
        done: dict[str, str | None] = {}
        held: set[str] = set()
        if not keys:
            return mine, done, held
        dup_idx = insert_new(ledger, [{"_id": k, **claim} for k in keys])
        mine = {k for i, k in enumerate(keys) if i not in dup_idx}
        vanished = mine & set(seen_held)
        if mine and self.rewrites:
            # Inserted while a settle had the entry deleted: that settle writes the outcome over
            # our claim, so wait for it instead of sending the phrase again.
            vanished |= {d["_id"] for d in self.db[SETTLING].find({"_id": {"$in": list(mine)}, "until": {"$gt": t}}, {"_id": 1})}
        mine -= vanished
        held |= vanished
        if not dup_idx:
            return mine, done, held
        dups = [keys[i] for i in sorted(dup_idx)]
        for doc in ledger.find({"_id": {"$in": dups}}):
            k, status, owner = doc["_id"], doc.get("status"), doc.get("run_id")
            if status == "cached" and (not force or owner == run_id):
                done[k] = None
            elif status == "failed" and owner == run_id:
                done[k] = doc.get("error") or "failed"
            elif status == "pending" and (doc.get("lease_until") or 0) > t:
                held.add(k)
            else:
                won = ledger.update_one(
                    {"_id": k, "status": status, "run_id": owner, "lease_until": doc.get("lease_until")},
                    {"$set": claim},
                )
                (mine.add if won.modified_count else held.add)(k)
        return mine, done, held

    def settle_phrases(self, run_id: str, results: dict[str, str | None]) -> None:
        """Record outcomes (key → error, None when cached) of phrases this run sent.

        With ``rewrites`` (FerretDB): one delete + one insert for all; a phrase claimed again
        in between (by a task that never saw it held) keeps that claim's document, updated.
        Otherwise the cached ones share one ``update_many``; failures are set one by one.
        """
        if not results:
            return
        ledger, t = self.db[PHRASES], now()

        def outcome(err: str | None) -> dict[str, Any]:
            return {"status": "failed" if err else "cached", "error": err, "run_id": run_id, "lease_until": None, "at": t}

        if self.rewrites and len(results) > 1:
            # Markers first: a claim inserted while the entries are gone finds its marker and waits.
            # A marker stays (until it expires) where such a claim was met, for that claimer to see.
            keys = list(results)
            settling = self.db[SETTLING]
            settling.delete_many({"until": {"$lt": time.time()}})
            settling.delete_many({"_id": {"$in": keys}})
            settling.insert_many([{"_id": k, "until": time.time() + 600.0} for k in keys], ordered=False)
            ledger.delete_many({"_id": {"$in": keys}})
            met = {keys[i] for i in insert_new(ledger, [{"_id": k, **outcome(e)} for k, e in results.items()])}
            bulk(ledger, [UpdateOne({"_id": k}, {"$set": outcome(results[k])}) for k in sorted(met)])
            settling.delete_many({"_id": {"$in": [k for k in keys if k not in met]}})
            return
        cached = [k for k, e in results.items() if not e]
        if cached:
            ledger.update_many({"_id": {"$in": cached}}, {"$set": outcome(None)})
        bulk(ledger, [UpdateOne({"_id": k}, {"$set": outcome(e)}) for k, e in results.items() if e])

    def mark_run_phrases(self, run_id: str, keys: Iterable[str]) -> None:
        """Remember which distinct phrases this run needed (for ``unique_phrases``)."""
        insert_new(self.db[RUN_PHRASES], [{"_id": f"{run_id}|{k}", "run_id": run_id} for k in keys])

    def count_run_phrases(self, run_id: str) -> int:
        return self.db[RUN_PHRASES].count_documents({"run_id": run_id})

