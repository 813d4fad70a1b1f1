"""The run report: failed records and totals as a CSV that opens cleanly in Excel.

UTF-8 with BOM and ``;`` as delimiter: Excel in a Russian locale opens it with the
Cyrillic intact and the columns split, with no import wizard.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

FIELDS = ("row", "message_id", "reason")


def report_path(reports_dir: Path, registry_id: str, run_id: str) -> Path:
    safe_run = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)
    return reports_dir / registry_id / f"{safe_run}.csv"


def write_report(path: Path, totals: dict[str, Any], failures: list[dict[str, Any]]) -> Path:
    """Write totals (label;value lines), a blank line, then one line per failed record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, delimiter=";")
        for label, key in (
            ("Реестр", "registry_id"), ("Запуск", "dag_run_id"), ("Статус", "status"), ("Записей", "total"),
            ("Закэшировано", "cached"), ("Ошибок", "failed"), ("Уникальных фраз", "unique_phrases"),
            ("Длительность, с", "duration_s"),
        ):
            w.writerow([label, totals.get(key, "")])
        w.writerow([])
        w.writerow(FIELDS)
        for item in failures:
            w.writerow([item["row"], item.get("message_id") or "", item["reason"]])
    tmp.replace(path)  # readers never see a half-written report
    return path


def read_report(path: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Parse a report back (for tests and tools): ``(totals by label, failure rows)``."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    blank = rows.index([])
    totals = {r[0]: r[1] for r in rows[:blank]}
    header = rows[blank + 1]
    return totals, [dict(zip(header, r)) for r in rows[blank + 2:]]
