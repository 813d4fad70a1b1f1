"""The benchmark (``make bench``) at tiny sizes: it runs, writes its table, and the invariants hold.

Runs ``python -m bench.run --smoke`` in a subprocess on a stand-in port of its own
(``PRECACHE_IT_TTS_PORT`` + 400), in databases of its own that it drops.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import REPO, TTS_PORT


def test_bench_smoke(tmp_path: Path) -> None:
    out, figures = tmp_path / "PERFORMANCE.md", tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update({"BENCH_TTS_PORT": str(TTS_PORT + 400), "BENCH_DB_PREFIX": "bench_smoke",
                "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])})
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out), "--json", str(figures)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    for row in ("1 pipeline / C/L", "1 pipeline / bare client", "1 pipeline / naive loop", "1 TTS calls / distinct phrases",
                "1 peak in flight", "2 ingest / bare", "2 peak RSS of ingest", "3 mapped cache tasks for 1,000,000 records",
                "3 ingest+plan+render µs/record", "4 own CPU per phrase", "5 dedup: rendered / distinct / TTS calls"):
        assert row in text, row
        assert row in proc.stdout, row  # the table is printed too
    R = json.loads(figures.read_text())
    p = R["throughput"]["pipeline"]
    assert p["processed"] == p["records"] and p["failed"] == 0
    assert p["tts_requests"] == p["distinct"] and p["per_key_max"] == 1
    assert 0 < p["peak_in_flight"] <= 32 and p["rejected_429"] == 0
    d = R["dedup"]["run"]
    assert d["distinct"] == round(0.3 * d["rendered"]) and d["tts_requests"] == d["distinct"]
    assert R["scale_1m"]["batches"] <= 1024 and R["scale_1m"]["progress_every"] == 100
