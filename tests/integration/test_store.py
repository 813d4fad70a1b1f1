"""The store's write paths on the real MongoDB-protocol server: saved outcomes reach the records
(FerretDB path and MongoDB path), a rewrite killed half-way loses nothing, the row snapshot, and the
phrase claims (one sender, waiting, takeover of a dead holder)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from precache.hooks import store as store_mod
from precache.hooks.store import PrecacheStore


@pytest.fixture(params=["1", "0"], ids=["ferretdb-path", "mongodb-path"])
def store(request: pytest.FixtureRequest, mongo_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrecacheStore]:
    monkeypatch.setenv("PRECACHE_STORE_REWRITES", request.param)
    with PrecacheStore() as s:
        yield s


def registry(store: PrecacheStore, n: int) -> str:
    rid = f"st-{uuid.uuid4().hex[:8]}"
    store.ensure_indexes("store_records")
    store.write_records("store_records", rid, ({"fio": f"Строков {i}"} for i in range(1, n + 1)))
    return rid


def statuses(mongo_db: Any, rid: str) -> dict[int, tuple[str, str | None]]:
    return {d["row"]: (d["precache"]["status"], d["precache"].get("error"))
            for d in mongo_db.store_records.find({"registry_id": rid})}


def test_saved_outcomes_reach_every_record_once_at_completion(store: PrecacheStore, mongo_db: Any) -> None:
    rid = registry(store, 250)
    for start, end in ((1, 100), (101, 200), (201, 250)):
        fails = [{"id": f"{rid}:{start + 1}", "error": "message 'debt': boom", "message_id": "debt"}]
        saved = store.save_results(rid, "run-1", start, end, end - start + 1, fails)
        store.apply_results("store_records", rid, "run-1", only=saved)
    # a second save of a slice keeps the first outcome (a retried task)
    again = store.save_results(rid, "run-1", 1, 100, 100, [])
    assert again["failures"][0]["id"] == f"{rid}:2"
    assert store.apply_results("store_records", rid, "run-1") == 250
    st = statuses(mongo_db, rid)
    assert len(st) == 250 and mongo_db.store_records.count_documents({"registry_id": rid}) == 250
    assert {r for r, (s, _) in st.items() if s == "failed"} == {2, 102, 202}
    assert st[2] == ("failed", "message 'debt': boom") and st[3] == ("cached", None)
    assert mongo_db[store_mod.RESULTS].count_documents({"registry_id": rid}) == 0
    assert store.apply_results("store_records", rid, "run-1") == 0  # repeatable: nothing left to apply
    assert len(statuses(mongo_db, rid)) == 250
    assert [f["row"] for f in store.failed_records("store_records", rid, "run-1")] == [2, 102, 202]


def test_a_rewrite_killed_after_the_delete_is_finished_by_the_next_try(mongo_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRECACHE_STORE_REWRITES", "1")
    with PrecacheStore() as store:
        rid = registry(store, 120)
        store.save_results(rid, "run-k", 1, 100, 100, [])
        store.save_results(rid, "run-k", 101, 120, 20, [{"id": f"{rid}:110", "error": "x", "message_id": "m"}])
        real = store_mod.insert_new
        monkeypatch.setattr(store_mod, "insert_new", lambda coll, docs: (_ for _ in ()).throw(RuntimeError("killed (injected)")))
        with pytest.raises(RuntimeError, match="killed"):
            store.apply_results("store_records", rid, "run-k")
        assert mongo_db.store_records.count_documents({"registry_id": rid}) == 0  # deleted, not yet back
        monkeypatch.setattr(store_mod, "insert_new", real)
        assert store.apply_results("store_records", rid, "run-k") == 120
    st = statuses(mongo_db, rid)
    assert len(st) == 120 and st[110] == ("failed", "x") and st[1] == ("cached", None)
    assert not [c for c in mongo_db.list_collection_names() if c.startswith(store_mod.JOURNAL_PREFIX)]


def test_the_row_snapshot_serves_a_tasks_rows_and_goes_at_completion(store: PrecacheStore, mongo_db: Any) -> None:
    rid = registry(store, 230)
    written = store.snapshot_rows("store_records", rid, "run-s", 230, 100)
    assert written == (3 if store.rewrites else 0)
    assert store.snapshot_rows("store_records", rid, "run-s", 230, 100) == 0  # already complete
    rows = store.read_rows("store_records", rid, 201, 230, "run-s")
    assert [d["row"] for d in sorted(rows, key=lambda d: d["row"])] == list(range(201, 231))
    assert rows[0]["obj"] == {"fio": "Строков 201"}
    store.save_results(rid, "run-s", 1, 230, 230, [])
    store.apply_results("store_records", rid, "run-s")
    assert not [c for c in mongo_db.list_collection_names() if c.startswith(store_mod.SNAPSHOT_PREFIX)]
    assert len(store.read_rows("store_records", rid, 1, 100, "run-s")) == 100  # the records, then


def test_a_phrase_has_one_sender_others_wait_and_a_dead_holder_is_taken_over(store: PrecacheStore) -> None:
    keys = [uuid.uuid4().hex for _ in range(12)]  # more than FEW_IDS: the $in lookups too
    mine, done, held = store.claim_phrases(keys, "run-a", False, lease_s=60)
    assert set(mine) == set(keys) and not done and not held
    mine2, done2, held2 = store.claim_phrases(keys, "run-b", False, lease_s=60)
    assert not mine2 and not done2 and held2 == set(keys)  # being sent by run-a
    store.settle_phrases("run-a", {k: None for k in keys[:10]} | {k: "HTTP 422" for k in keys[10:]}, mine)
    mine3, done3, held3 = store.claim_phrases(keys, "run-b", False, lease_s=60)
    assert done3 == {k: None for k in keys[:10]}
    assert set(mine3) == set(keys[10:]) and not held3  # failed in another run: sent again
    # run-b's holder dies: after its lease another task takes the phrase over, and only one does
    store.db[store_mod.CLAIMS].update_many({"_id": {"$in": keys[10:]}}, {"$set": {"lease_until": 0}})
    mine4, _, held4 = store.claim_phrases(keys[10:], "run-b", False, lease_s=60)
    mine5, _, held5 = store.claim_phrases(keys[10:], "run-b", False, lease_s=60)
    assert set(mine4) == set(keys[10:]) and not held4 and not mine5 and held5 == set(keys[10:])
    # force sends a cached phrase again, once per run
    mine6, done6, _ = store.claim_phrases(keys[:1], "run-c", True, lease_s=60)
    assert set(mine6) == set(keys[:1]) and not done6
    store.settle_phrases("run-c", {keys[0]: None}, mine6)
    _, done7, _ = store.claim_phrases(keys[:1], "run-c", True, lease_s=60)
    assert done7 == {keys[0]: None}
