"""The run report opens cleanly in Excel: UTF-8 with BOM, ';', Cyrillic intact."""

from __future__ import annotations

from pathlib import Path

from precache.report import read_report, report_path, write_report


def test_report_roundtrip_and_excel_format(tmp_path: Path) -> None:
    path = report_path(tmp_path, "reg-1", "manual__2026-12-04T21:00:00+00:00")
    assert path == tmp_path / "reg-1" / "manual__2026-12-04T21_00_00_00_00.csv"
    totals = {"registry_id": "reg-1", "dag_run_id": "r", "status": "partial", "total": 3, "cached": 2, "failed": 1,
              "unique_phrases": 4, "duration_s": 1.5}
    write_report(path, totals, [{"row": 2, "message_id": "debt", "reason": "message 'debt': 'sum' is undefined; ещё"}])
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert "Статус;partial" in raw.decode("utf-8-sig")
    assert raw.decode("utf-8-sig").splitlines()[-1] == "2;debt;\"message 'debt': 'sum' is undefined; ещё\""
    got_totals, failures = read_report(path)
    assert got_totals["Ошибок"] == "1" and got_totals["Реестр"] == "reg-1"
    assert failures == [{"row": "2", "message_id": "debt", "reason": "message 'debt': 'sum' is undefined; ещё"}]
    assert not list(path.parent.glob("*.tmp"))
