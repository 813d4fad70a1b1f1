"""``precache.cli follow`` against the real broker: bar, counts, summary with failures."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid

import pika
import pytest

from precache.cli import follow

pytestmark = pytest.mark.integration


def test_follow_draws_progress_and_summary() -> None:
    queue = f"project.tts.precache.cli-test-{uuid.uuid4().hex[:6]}"
    msgs = [
        {"event": "progress", "registry_id": "r", "dag_run_id": "old", "processed": 999, "total": 999, "cached": 0, "failed": 0, "percent": 100.0},
        {"event": "progress", "registry_id": "r", "dag_run_id": "run1", "processed": 100, "total": 200, "cached": 99, "failed": 1, "percent": 50.0},
        {"event": "progress", "registry_id": "r", "dag_run_id": "run1", "processed": 200, "total": 200, "cached": 198, "failed": 2, "percent": 100.0},
        {"event": "completed", "registry_id": "r", "dag_run_id": "run1", "status": "partial", "total": 200, "cached": 198,
         "failed": 2, "unique_phrases": 350, "duration_s": 3.2, "report": "/tmp/r.csv",
         "failures": [{"row": 7, "message_id": "debt", "reason": "message 'debt': 'sum' is undefined"},
                      {"row": 9, "message_id": "greeting", "reason": "TTS proxy refused the phrase (HTTP 422)"}]},
    ]

    def publish_later() -> None:
        time.sleep(0.5)  # the follower starts before the queue exists, as with a real run
        conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
        ch = conn.channel()
        ch.queue_declare(queue, durable=True, arguments={"x-expires": 60_000})
        for m in msgs:
            ch.basic_publish("", queue, json.dumps(m).encode())
        conn.close()

    threading.Thread(target=publish_later, daemon=True).start()
    out = io.StringIO()
    done = follow(queue, "run1", timeout=30, out=out)
    text = out.getvalue()
    assert done is not None and done["status"] == "partial"
    assert "999" not in text  # another run's leftovers are skipped
    assert "██████████████████████████████ 100.0%  200/200 records  cached 198  failed 2" in text
    assert "Run run1 of registry r: PARTIAL" in text
    assert "row      7  debt         message 'debt': 'sum' is undefined" in text
    assert "report: /tmp/r.csv" in text
