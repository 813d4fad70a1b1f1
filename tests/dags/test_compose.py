"""The compose stack, checked statically (no Docker engine here): it parses, it has every
service the DAGs talk to, the connection ids match what the code reads, images are pinned."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_services_present_with_healthchecks() -> None:
    services = COMPOSE["services"]
    for name in ("postgres", "rabbitmq", "mongo", "portal", "tts-proxy", "airflow-apiserver",
                 "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "airflow-init"):
        assert name in services, name
        if name != "airflow-init":
            assert "healthcheck" in services[name], name


def test_connections_match_the_code() -> None:
    env = COMPOSE["x-airflow-common"]["environment"]
    for conn in ("MONGO_DEFAULT", "PORTAL_API", "TTS_PROXY", "RABBITMQ_DEFAULT"):
        assert f"AIRFLOW_CONN_{conn}" in env
    code = "".join(p.read_text() for p in (REPO / "plugins/precache").rglob("*.py"))
    for conn_id in ("mongo_default", "portal_api", "tts_proxy", "rabbitmq_default"):
        assert f'"{conn_id}"' in code
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("amqp://")


def test_images_are_pinned() -> None:
    for name, svc in COMPOSE["services"].items():
        image = svc.get("image") or COMPOSE["x-airflow-common"]["image"]
        assert re.search(r":\d+(\.\d+)+", image), (name, image)
    assert (REPO / "Dockerfile").read_text().startswith("# ") and "FROM apache/airflow:3.3.2-python3.11" in (REPO / "Dockerfile").read_text()
