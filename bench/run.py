"""``make bench``: the figures of docs/PERFORMANCE.md, measured side by side in one run.

    python -m bench.run                 # full sizes (see --help), writes docs/PERFORMANCE.md
    python -m bench.run --smoke         # tiny sizes, a minute or so, writes to --out only

Sections (issue 5): 1 caching throughput vs C/L beside the naive loop and a bare client
(and the pre-fix code at a smaller N), 2 ingest vs bare insert_many + peak RSS, 3 scale on
defaults, 4 own CPU per phrase under cProfile, 5 dedup, 6 a run through a live Airflow.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from bench import core

REPO = core.REPO
L_MS, C = 50, 32


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> dict[str, str]:
    import airflow
    import pymongo

    mem_kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
    try:
        with pymongo.MongoClient(core.MONGO_BASE, serverSelectionTimeoutMS=3000) as c:
            info = c.server_info()
        server = "FerretDB (SQLite handler), wire version " + info.get("version", "?") if "ferretdbFeatures" in info \
            else "MongoDB " + info.get("version", "?")
    except Exception as e:  # noqa: BLE001
        server = f"unreachable ({e})"
    ferret = ""
    binp = REPO / ".run/bin/ferretdb"
    if binp.exists():
        out = subprocess.run([str(binp), "--version"], capture_output=True, text=True).stdout
        ferret = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.lower().startswith("version")), "")
    load = open("/proc/loadavg").read().split()[:3]
    return {"cpus (nproc)": str(os.cpu_count()), "RAM": f"{mem_kb / 1024 / 1024:.1f} GiB", "Python": platform.python_version(),
            "Airflow": airflow.__version__, "pymongo": pymongo.__version__,
            "MongoDB-protocol server": server + (f" ({ferret})" if ferret else ""),
            "load average at start": " ".join(load), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def export_plugins(rev: str) -> Path:
    """``plugins/`` as of git ``rev``, in a temp dir (the working tree is not touched)."""
    d = Path(tempfile.mkdtemp(prefix="bench-before-"))
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "plugins"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as t:
        t.extractall(d)
    return d / "plugins"


# --- 1. throughput ---------------------------------------------------------------------------------


def cache_run(tts: core.TtsStandin, label: str, n: int, workdir: Path, parallel: int, in_flight: int,
              plugins_dir: Path | None = None, build: dict | None = None, rows: list | None = None) -> dict[str, Any]:
    db = core.new_db(label)
    if rows is None:
        path = core.write_csv(workdir / f"{label}.csv", n)
        reg = {"path": str(path)}
        from standins.samples import rows as gen

        objs = list(gen(n))
    else:
        reg, objs = {"records": rows}, rows
    build = build or core.bench_build()
    run = core.prepare_run(db, f"bench-{label}", reg, build)
    rendered, distinct = core.rendered_requests(build, objs)
    tts.reset()
    res = core.run_cache_phase(run, parallel, in_flight, plugins_dir)
    if plugins_dir is None:  # the row snapshot `plan` writes on FerretDB is there for this phase: counted in
        res["wall_s"] += run["snapshot_s"]
    st = tts.stats()
    core.delete_queue(run["queue"])
    core.drop_db(db)
    out = {"label": label, "records": n, "rendered": rendered, "distinct": len(distinct), **res,
           "tts_requests": st["requests"], "tts_distinct": st["distinct_keys"], "per_key_max": st["per_key_max"],
           "peak_in_flight": st["peak_in_flight"], "rejected_429": st["rejected_429"],
           "rate": len(distinct) / res["wall_s"], "ingest_s": run["ingest_s"], "snapshot_s": run["snapshot_s"], "parallel": parallel, "in_flight": in_flight}
    log(f"{label}: {out['processed']} records, {out['distinct']} distinct in {res['wall_s']:.1f}s "
        f"= {out['rate']:.0f}/s; TTS {st['requests']} req, peak {st['peak_in_flight']}")
    out["_requests"] = list(distinct.values())
    return out


def memory_section(tts: core.TtsStandin, n: int) -> dict[str, Any]:
    """``cache_batch`` with an in-memory store: the pipeline's own ceiling once MongoDB costs nothing."""
    out = {}
    for in_flight in (32, 8):
        tts.reset()
        r = core.memory_cache_phase(n, in_flight)
        st = tts.stats()
        r.update(tts_requests=st["requests"], peak_in_flight=st["peak_in_flight"])
        out[str(in_flight)] = r
        log(f"memory store, {in_flight} in flight: {r['rate']:.0f}/s, CPU {1000 * r['cpu_s'] / r['distinct']:.2f} ms/phrase")
    return out


def ingest_section(sizes: list[int], work: Path) -> list[dict[str, Any]]:
    """Sections 2-3: ingest vs bare insert_many, peak RSS, plan, render, per-record cost."""
    from precache.config import Settings
    from precache.models import Build
    from precache.planning import plan_batches
    from precache.rendering import Renderer
    from standins.samples import rows as gen

    ing = []
    renderer = Renderer(Build.model_validate(core.bench_build()))
    for n in sizes:
        path = core.write_csv(work / f"ingest{n}.csv", n)
        db1, db2 = core.new_db(f"ing{n}"), core.new_db(f"bare{n}")
        r = core.ingest_subprocess(db1, f"ing-{n}", path)
        b = core.bare_insert(db2, f"ing-{n}", path)
        t0 = time.perf_counter()
        batches = plan_batches(n, Settings().batch_size, Settings().max_batches)
        t_snap = core.snapshot_in(db1, f"ing-{n}", n)  # the rest of the `plan` task (FerretDB only)
        t_plan = time.perf_counter() - t0
        core.drop_db(db1)
        core.drop_db(db2)
        t0 = time.perf_counter()
        for i, obj in enumerate(gen(n), 1):
            renderer.render({"_id": str(i), "row": i, "obj": obj})
        t_render = time.perf_counter() - t0
        row = {"rows": n, "ingest_s": r["wall_s"], "ingest_rate": n / r["wall_s"], "maxrss_mb": r["maxrss_mb"],
               "bare_s": b["wall_s"], "bare_rate": n / b["wall_s"], "plan_s": t_plan, "snapshot_s": t_snap, "render_s": t_render,
               "batches": len(batches), "batch_rows": batches[0]["end"] - batches[0]["start"] + 1,
               "xcom_bytes": len(json.dumps(batches)),
               "per_record_us": 1e6 * (r["wall_s"] + t_plan + t_render) / n}
        path.unlink()
        ing.append(row)
        log(f"ingest {n}: {row['ingest_rate']:.0f} rows/s vs bare {row['bare_rate']:.0f}; RSS {row['maxrss_mb']:.0f} MB; "
            f"{row['per_record_us']:.0f} µs/record")
    return ing


# --- the report ------------------------------------------------------------------------------------


def fmt(x: float, nd: int = 1) -> str:
    return f"{x:,.{nd}f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes everywhere (the test suite's smoke run)")
    p.add_argument("--records", type=int, default=20_000, help="records of the throughput run (x3 messages)")
    p.add_argument("--before-records", type=int, default=6_000, help="records of the before/after comparison")
    p.add_argument("--before-rev", default="afdbe4c", help="git revision of the code before the fix")
    p.add_argument("--ingest-sizes", default="10000,100000,1000000")
    p.add_argument("--profile-records", type=int, default=1_000)
    p.add_argument("--dedup-records", type=int, default=1_000)
    p.add_argument("--live-records", type=int, default=20_000, help="0 skips the live Airflow run")
    p.add_argument("--parallel", type=int, default=4, help="parallel cache tasks (PRECACHE_CACHE_PARALLEL_TASKS)")
    p.add_argument("--naive-seconds", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=REPO / "docs/PERFORMANCE.md")
    p.add_argument("--json", type=Path, default=None, help="also dump every figure as JSON here")
    p.add_argument("--only-ingest", type=Path, default=None, help="re-measure sections 2-3 into this --json file")
    p.add_argument("--only-live", type=Path, default=None, help="re-measure section 6 into this --json file")
    p.add_argument("--from-json", type=Path, default=None, help="only re-write --out from figures saved by --json")
    a = p.parse_args(argv)
    if a.from_json:
        from bench.report import render

        R = json.loads(a.from_json.read_text())
        text, tab = render(R, smoke=R["args"].get("smoke") == "True")
        print(tab)
        a.out.write_text(text, encoding="utf-8")
        return 0
    if a.smoke:
        a.records, a.before_records, a.ingest_sizes = 200, 0, "1000"
        a.profile_records, a.dedup_records, a.live_records, a.naive_seconds = 100, 100, 0, 1.0
        a.parallel = 2
    sizes = [int(x) for x in a.ingest_sizes.split(",") if x]
    if a.only_live:  # re-measure section 6 only, into the figures of an earlier --json run
        from bench import live
        from bench.report import render

        R = json.loads(a.only_live.read_text())
        work = Path(tempfile.mkdtemp(prefix="bench-"))
        R["live"] = live.run(a.live_records, work, a.parallel)
        R["live_rerun"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        a.only_live.write_text(json.dumps(R, indent=1, ensure_ascii=False, default=str))
        text, tab = render(R)
        print(tab)
        a.out.write_text(text, encoding="utf-8")
        shutil.rmtree(work, ignore_errors=True)
        return 0
    if a.only_ingest:  # re-measure sections 2-3 only, into the figures of an earlier --json run
        R = json.loads(a.only_ingest.read_text())
        work = Path(tempfile.mkdtemp(prefix="bench-"))
        os.environ["PRECACHE_REGISTRY_ROOTS"] = str(work)
        R["ingest"] = ingest_section(sizes, work)
        n = max(x for x in sizes if x <= 100_000)
        path = core.write_csv(work / "ingest-ba.csv", n)
        before_dir = export_plugins(a.before_rev)
        ba = {}
        for label, pdir in (("before", before_dir), ("after", None), ("before2", before_dir), ("after2", None)):
            db = core.new_db(f"ingba{label}")
            ba[label] = core.ingest_subprocess(db, f"ingba-{label}", path, pdir)
            core.drop_db(db)
            log(f"ingest {label} {n}: {ba[label]['wall_s']:.1f}s")
        R["ingest_before_after"] = {"rows": n, **ba}
        R["ingest_rerun"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        a.only_ingest.write_text(json.dumps(R, indent=1, ensure_ascii=False, default=str))
        from bench.report import render

        text, tab = render(R)
        print(tab)
        a.out.write_text(text, encoding="utf-8")
        return 0
    in_flight = max(1, C // a.parallel)
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    os.environ["PRECACHE_REGISTRY_ROOTS"] = str(work)
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    core.configure(core.new_db("x"))
    R: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(a).items()}}
    log(f"machine: {R['machine']}")
    t_all = time.perf_counter()
    if not a.smoke:
        db = core.new_db("probe")
        R["probe"] = {"n": 20_000, "ms": core.probe_statements(db, 20_000)}
        core.drop_db(db)
    tts = core.TtsStandin(latency_ms=L_MS, capacity=C)
    try:
        # 1. throughput, with the baselines right beside it
        thr = cache_run(tts, f"thr{a.records}", a.records, work, a.parallel, in_flight)
        reqs = thr.pop("_requests")
        tts.reset()
        bare = core.bare_client(tts.url, reqs[: max(C * 100, 200)], C)
        bare["peak_in_flight"] = tts.stats()["peak_in_flight"]
        tts.reset()
        naive = core.naive_loop(tts.url, reqs, a.naive_seconds)
        R["throughput"] = {"pipeline": thr, "bare": bare, "naive": naive, "limit": C / (L_MS / 1000)}
        R["memory"] = memory_section(tts, min(a.records, 5_000))
        if a.before_records:
            before_dir = export_plugins(a.before_rev)
            b = cache_run(tts, f"before{a.before_records}", a.before_records, work, a.parallel, in_flight, before_dir)
            b.pop("_requests")
            f = cache_run(tts, f"after{a.before_records}", a.before_records, work, a.parallel, in_flight)
            f.pop("_requests")
            R["before_after"] = {"before": b, "after": f, "rev": a.before_rev}
            core.close_pools(before_dir)
            shutil.rmtree(before_dir.parent, ignore_errors=True)

        # 5. dedup: 70 % of the rendered phrases repeat
        n = a.dedup_records
        k = max(1, int(n * 0.3))
        rows = [{"fio": f"Клиент {i % k}", "sum": str(1000 + i % k)} for i in range(n)]
        dd_build = {"build_id": "dedup", "speaker": {"id": "alena"}, "settings": core.bench_build()["settings"], "messages": [
            {"id": "greeting", "template": "Здравствуйте, {{ fio }}!", "audio": None, "value_from": "obj"},
            {"id": "debt", "template": "Ваша задолженность {{ sum }} рублей.", "audio": None, "value_from": "obj"},
            {"id": "code", "template": "Код клиента: {{ fio }}.", "audio": None, "value_from": "obj"}]}
        dd = cache_run(tts, f"dedup{n}", n, work, a.parallel, in_flight, build=dd_build, rows=rows)
        dreqs = dd.pop("_requests")
        # "sending every rendered phrase": the bare client at C over rendered-many phrases (hits cost L too)
        every = (dreqs * (dd["rendered"] // len(dreqs) + 1))[: dd["rendered"]]
        tts.reset()
        all_bare = core.bare_client(tts.url, every, C)
        tts.reset()
        distinct_bare = core.bare_client(tts.url, dreqs, C)
        R["dedup"] = {"run": dd, "bare_all": all_bare, "bare_distinct": distinct_bare}

        # 4. own CPU per phrase under cProfile, zero-latency stand-in
        from bench import profiling

        tts.config(latency_ms=0)
        prof = {}
        for timer in ("cpu",) if a.smoke else ("cpu", "wall"):
            db = core.new_db(f"prof{timer}")
            path = core.write_csv(work / f"prof{timer}.csv", a.profile_records)
            run = core.prepare_run(db, f"prof-{timer}", {"path": str(path)}, core.bench_build())
            tts.reset()
            res = profiling.profile_cache(run, timer)
            res.pop("stats")
            res["phrases"] = tts.stats()["requests"]
            prof[timer] = res
            core.delete_queue(run["queue"])
            core.drop_db(db)
        tts.config(latency_ms=L_MS)
        R["profile"] = prof
    finally:
        tts.stop()
        core.close_pools()

    # 2. ingest vs bare insert_many, peak RSS; 3. scale
    from precache.config import Settings
    from precache.planning import plan_batches

    R["ingest"] = ingest_section(sizes, work)
    big = plan_batches(1_000_000, Settings().batch_size, Settings().max_batches)
    R["scale_1m"] = {"batches": len(big), "batch_rows": big[0]["end"], "xcom_bytes": len(json.dumps(big)),
                     "progress_every": Settings().batch_size}

    # 6. live Airflow
    if a.live_records:
        from bench import live

        try:
            R["live"] = live.run(a.live_records, work, a.parallel)
        except Exception as e:  # noqa: BLE001 - reported in the doc, the rest still counts
            log(f"live run failed: {e}")
            R["live"] = {"error": str(e)[-2000:]}
    R["bench_wall_s"] = time.perf_counter() - t_all
    if a.json:
        a.json.write_text(json.dumps(R, indent=1, ensure_ascii=False, default=str))
    from bench.report import render

    text, table = render(R, smoke=a.smoke)
    print(table)
    a.out.write_text(text, encoding="utf-8")
    log(f"wrote {a.out} in {R['bench_wall_s']:.0f}s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
