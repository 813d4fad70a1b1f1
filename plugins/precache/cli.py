"""Follow a precache run's progress queue in the terminal.

    python -m precache.cli follow --registry-id demo-debtors [--since EPOCH]
    python -m precache.cli follow --queue project.tts.precache.demo-4021
    python -m precache.cli report --registry-id demo-debtors [--out FILE.csv]

Reads the queue as the integration script would (acking what it reads, so the run's
cleanup sees the queue drained), draws a progress line, and prints a summary with the
first failures when the completion message arrives.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from typing import Any


def report(registry_id: str, out: str | None, out_stream: Any = sys.stdout) -> int:
    """Write the report of the registry's latest completed run; print its summary."""
    from pathlib import Path

    from precache.config import Settings
    from precache.hooks.store import PrecacheStore
    from precache.pipeline import run_failures
    from precache.report import report_path, write_report

    with PrecacheStore() as store:
        run = store.db.precache_runs.find_one({"_id": registry_id})
        if run is None or not run.get("completion"):
            print(f"registry {registry_id!r} has no completed run", file=out_stream)
            return 1
        failures = [f.model_dump() for f in run_failures(store, run["collection"], registry_id, run["dag_run_id"])]
    msg = run["completion"]
    path = Path(out) if out else report_path(Settings.from_env().reports_dir, registry_id, run["dag_run_id"])
    write_report(path, msg, failures)
    print(summary({**msg, "failures": failures}), file=out_stream)
    print(f"Report: {path}", file=out_stream)
    return 0


def _find_run(registry_id: str, since: float, timeout: float) -> tuple[str, str]:
    """Wait for a run of ``registry_id`` started after ``since``: its queue and run id."""
    from precache.hooks.store import PrecacheStore

    deadline = time.monotonic() + timeout
    with PrecacheStore() as store:
        while time.monotonic() < deadline:
            doc = store.get_run(registry_id)
            if doc and doc.get("queue") and doc["started_at"].replace(tzinfo=timezone.utc).timestamp() >= since:
                return doc["queue"], doc["dag_run_id"]
            time.sleep(0.3)
    raise SystemExit(f"no run of registry {registry_id!r} started within {timeout:.0f}s")


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "█" * filled + "░" * (width - filled)


def follow(queue: str, run_id: str | None, timeout: float, out: Any = sys.stdout) -> dict[str, Any] | None:
    import pika

    from precache.hooks.rabbitmq import RabbitMQHook

    conn = pika.BlockingConnection(RabbitMQHook().parameters())
    started = time.monotonic()
    try:
        while True:  # the run declares its queue; we may be early
            ch = conn.channel()
            try:
                ch.queue_declare(queue, passive=True)
                break
            except pika.exceptions.ChannelClosedByBroker:
                if time.monotonic() - started > timeout:
                    print(f"queue {queue} never appeared", file=out)
                    return None
                time.sleep(0.3)
        for method, _props, body in ch.consume(queue, inactivity_timeout=1):
            if time.monotonic() - started > timeout:
                print("\ngave up waiting", file=out)
                return None
            if method is None:
                continue
            ch.basic_ack(method.delivery_tag)
            msg = json.loads(body)
            if run_id and msg.get("dag_run_id") != run_id:
                continue  # left over from an earlier run sharing this queue
            if msg["event"] == "progress":
                elapsed = max(time.monotonic() - started, 1e-6)
                rate = msg["processed"] / elapsed
                eta = (msg["total"] - msg["processed"]) / rate if rate else 0
                print(
                    f"\r{_bar(msg['processed'], msg['total'])} {msg['percent']:5.1f}%  "
                    f"{msg['processed']}/{msg['total']} records  cached {msg['cached']}  failed {msg['failed']}  "
                    f"{rate:,.0f} rec/s  ETA {eta:4.0f}s ",
                    end="", file=out, flush=True,
                )
            elif msg["event"] == "completed":
                print(file=out)
                print(summary(msg), file=out)
                return msg
    finally:
        conn.close()
    return None


def summary(msg: dict[str, Any]) -> str:
    lines = [
        f"Run {msg['dag_run_id']} of registry {msg['registry_id']}: {msg['status'].upper()}",
        f"  records {msg['total']}  cached {msg['cached']}  failed {msg['failed']}  "
        f"unique phrases {msg['unique_phrases']}  in {msg['duration_s']:.1f}s",
    ]
    for f in msg["failures"][:10]:
        lines.append(f"  row {f['row']:>6}  {f['message_id'] or '-':<12} {f['reason']}")
    if msg["failed"] > 10:
        lines.append(f"  ... {msg['failed'] - 10} more in the report")
    if msg.get("report"):
        lines.append(f"  report: {msg['report']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m precache.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("follow", help="draw a run's progress from its queue")
    g = f.add_mutually_exclusive_group(required=True)
    g.add_argument("--queue")
    g.add_argument("--registry-id")
    f.add_argument("--since", type=float, default=None, help="only a run started after this epoch time (default: now)")
    f.add_argument("--timeout", type=float, default=3600)
    r = sub.add_parser("report", help="write the CSV report of a registry's latest run")
    r.add_argument("--registry-id", required=True)
    r.add_argument("--out", help="file to write (default: PRECACHE_REPORTS_DIR/<registry>/<run>.csv)")
    a = p.parse_args(argv)
    if a.cmd == "report":
        return report(a.registry_id, a.out)
    run_id = None
    queue = a.queue
    if a.registry_id:
        since = a.since if a.since is not None else time.time()
        print(f"Waiting for a run of registry {a.registry_id} ({datetime.now():%H:%M:%S}) ...", flush=True)
        queue, run_id = _find_run(a.registry_id, since - 1, a.timeout)
        print(f"Run {run_id}: following {queue}", flush=True)
    done = follow(queue, run_id, a.timeout)
    return 0 if done and done["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
