"""The inbox's scan and settle steps on real files (CONTRACTS §7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from precache import inbox, pipeline

CSV = "fio;sum\nИванов Иван;100\n".encode("cp1251")


class Ledger:
    """The two ledger methods of PrecacheStore, in memory (the Mongo side is covered in integration)."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    def inbox_imported(self, sha256: str) -> dict[str, Any] | None:
        return self.docs.get(sha256)

    def mark_inbox_imported(self, sha256: str, fields: dict[str, Any]) -> None:
        self.docs.setdefault(sha256, fields)


def drop(d: Path, name: str, data: bytes = CSV, manifest: Any = None, ext: str = "csv") -> Path:
    f = d / f"{name}.{ext}"
    f.write_bytes(data)
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (d / f"{name}.manifest.json").write_text(text, encoding="utf-8")
    return f


def scan(d: Path, ledger: Ledger | None = None) -> list[dict[str, Any]]:
    return inbox.scan(d, ledger or Ledger(), "2026-12-04T00:00:00+00:00", pipeline.validate)


def test_empty_inbox_finds_nothing(tmp_path: Path) -> None:
    assert scan(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_inbox_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="PRECACHE_INBOX_DIR .*nope.* is not a directory"):
        scan(tmp_path / "nope")


def test_file_without_manifest_waits(tmp_path: Path) -> None:
    drop(tmp_path, "debtors")
    assert scan(tmp_path) == []
    assert (tmp_path / "debtors.csv").exists()


def test_manifest_without_file_waits(tmp_path: Path) -> None:
    (tmp_path / "late.manifest.json").write_text('{"build_id": "4021"}')
    assert scan(tmp_path) == []
    assert (tmp_path / "late.manifest.json").exists()


def test_valid_file_gives_a_descriptor_with_conf(tmp_path: Path) -> None:
    f = drop(tmp_path, "debtors", manifest={"build_id": "4021", "collection": "c1"})
    [d] = scan(tmp_path)
    assert d["conf"] == {"registry_id": "debtors", "build_id": "4021", "registry": {"path": str(f)},
                         "force": False, "collection": "c1"}
    assert d["run_id"] == f"inbox__debtors__{d['sha256'][:12]}__2026-12-04T00:00:00+00:00"
    assert d["sha256"] == inbox.sha256_of(f)
    assert f.exists()  # stays until its run ends


def test_manifest_registry_id_and_format_options_are_used(tmp_path: Path) -> None:
    drop(tmp_path, "x", manifest={"build_id": "1", "registry_id": "reg-7", "encoding": "cp1251", "delimiter": ";"})
    [d] = scan(tmp_path)
    assert d["registry_id"] == "reg-7"
    assert d["conf"]["registry"]["encoding"] == "cp1251" and d["conf"]["registry"]["delimiter"] == ";"


def test_cyrillic_file_name_gets_a_valid_registry_id(tmp_path: Path) -> None:
    drop(tmp_path, "должники декабрь", manifest={"build_id": "1"})
    [d] = scan(tmp_path)
    assert d["registry_id"].startswith("inbox-") and len(d["registry_id"]) == 18


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ("{not json", "manifest bad.manifest.json: invalid JSON at line 1, column 2"),
        ("[1]", "manifest bad.manifest.json: expected a JSON object, got list"),
        ({"registry_id": "r"}, "invalid manifest bad.manifest.json: build_id: Field required"),
        ({"build_id": "1", "registry_id": "bad id"}, "invalid manifest bad.manifest.json: registry_id: String should match pattern"),
        ({"build_id": "1", "colour": "red"}, "invalid manifest bad.manifest.json: colour: Extra inputs are not permitted"),
    ],
)
def test_bad_manifest_goes_to_failed_with_reason(tmp_path: Path, manifest: Any, reason: str) -> None:
    drop(tmp_path, "bad", manifest=manifest)
    assert scan(tmp_path) == []
    failed = tmp_path / "failed"
    assert sorted(p.name for p in failed.iterdir()) == ["bad.csv", "bad.error.txt", "bad.manifest.json"]
    assert reason in (failed / "bad.error.txt").read_text(encoding="utf-8")
    assert not (tmp_path / "bad.csv").exists()


def test_unknown_format_goes_to_failed(tmp_path: Path) -> None:
    drop(tmp_path, "list", ext="txt", manifest={"build_id": "1"})
    assert scan(tmp_path) == []
    text = (tmp_path / "failed" / "list.error.txt").read_text(encoding="utf-8")
    assert text == "list.txt: unknown format '.txt'; expected one of .csv, .xlsx, .json, .jsonl\n"


def test_two_files_for_one_manifest_fail(tmp_path: Path) -> None:
    drop(tmp_path, "dup", manifest={"build_id": "1"})
    drop(tmp_path, "dup", ext="json", data=b"[]")
    assert scan(tmp_path) == []
    assert "2 registry files for one manifest (dup.csv, dup.json)" in (tmp_path / "failed" / "dup.error.txt").read_text()


def test_registry_roots_are_enforced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRECACHE_REGISTRY_ROOTS", str(tmp_path / "elsewhere"))
    drop(tmp_path, "r", manifest={"build_id": "1"})
    assert scan(tmp_path) == []
    assert "outside the allowed roots" in (tmp_path / "failed" / "r.error.txt").read_text()


def test_content_imported_before_is_not_imported_again(tmp_path: Path) -> None:
    ledger = Ledger()
    f = drop(tmp_path, "monday", manifest={"build_id": "1"})
    ledger.mark_inbox_imported(inbox.sha256_of(f), {"file": "sunday.csv", "registry_id": "sunday", "run_id": "inbox__x"})
    assert scan(tmp_path, ledger) == []
    processed = tmp_path / "processed"
    assert sorted(p.name for p in processed.iterdir()) == ["monday.csv", "monday.duplicate.txt", "monday.manifest.json"]
    assert "imported before as 'sunday.csv', registry 'sunday'" in (processed / "monday.duplicate.txt").read_text()


def test_settle_moves_by_outcome_and_records_imports(tmp_path: Path) -> None:
    ledger = Ledger()
    drop(tmp_path, "ok", manifest={"build_id": "1"})
    drop(tmp_path, "bad", data=b"fio\nx\n", manifest={"build_id": "1"})
    drop(tmp_path, "slow", data=b"fio\ny\n", manifest={"build_id": "1"})
    descs = {d["name"]: d for d in scan(tmp_path, ledger)}
    states = {descs["ok"]["run_id"]: "success", descs["bad"]["run_id"]: "failed", descs["slow"]["run_id"]: "running"}
    reasons = {descs["bad"]["run_id"]: "task lookup_build: portal API: build '1' not found (HTTP 404)"}
    summary = inbox.settle(tmp_path, list(descs.values()), states.get, reasons.get, ledger)
    assert summary == {"imported": ["ok.csv"], "failed": ["bad.csv"]}
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == ["ok.csv", "ok.manifest.json"]
    err = (tmp_path / "failed" / "bad.error.txt").read_text()
    assert err == (f"bad.csv: tts_precache run {descs['bad']['run_id']!r} failed: "
                   "task lookup_build: portal API: build '1' not found (HTTP 404)\n")
    assert (tmp_path / "slow.csv").exists()  # its run is still going: left for the next inbox run
    assert ledger.inbox_imported(descs["ok"]["sha256"])["registry_id"] == "ok"
    assert ledger.inbox_imported(descs["bad"]["sha256"]) is None  # a failed import may be dropped again


def test_settle_run_never_started(tmp_path: Path) -> None:
    drop(tmp_path, "r", manifest={"build_id": "1"})
    descs = scan(tmp_path)
    inbox.settle(tmp_path, descs, lambda _: None, lambda _: None, Ledger())
    assert "not started: the run was never started" in (tmp_path / "failed" / "r.error.txt").read_text()


def test_a_second_file_of_the_same_name_keeps_the_first(tmp_path: Path) -> None:
    ledger = Ledger()
    for content in (CSV, CSV + b"x;1\n"):
        drop(tmp_path, "daily", data=content, manifest={"build_id": "1"})
        descs = scan(tmp_path, ledger)
        inbox.settle(tmp_path, descs, lambda _: "success", lambda _: None, ledger)
    names = sorted(p.name for p in (tmp_path / "processed").iterdir())
    assert len(names) == 4 and names[0] == "daily.csv" and names[1].startswith("daily.csv.")
