"""Precache requests from kv.tts.precaching.v2: parsing, run ids, asset events → runs."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any

import pytest

from precache.models import Build, PrecacheConf
from precache.requests import runs_from_events
from precache.triggers.requests import parse_request, request_run_id

REQUEST = {
    "registry_id": "reg-2026-12-04-0001",
    "collection": "registry_records",
    "obj": ["fio", "sum"],
    "settings": {"PRECACHE_VOICE": "alena", "PRECACHE_SPEED": "1.0", "PRECACHE_SAMPLE_RATE": 8000,
                 "PRECACHE_CALL_CENTRE_NOISE": False, "PRECACHE_PRECACHE_QUEUE": "project.tts.precache.r1"},
    "messages": [
        {"template": "Здравствуйте, {{ fio }}!", "audio": "https://portal.example/a.wav", "value_from": "obj"},
        {"template": "Долг {{ sum }} рублей.", "audio": None, "value_from": "obj"},
    ],
}


def body(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def test_valid_request_becomes_a_stored_registry_conf_with_inline_build() -> None:
    ev = parse_request(body(REQUEST), "msg-1")
    assert ev["request_id"] == "msg-1" and ev["registry_id"] == "reg-2026-12-04-0001"
    conf = PrecacheConf.model_validate(ev["conf"])
    assert conf.registry.stored is True and conf.build_id == "request"
    build = Build.model_validate(conf.build)
    assert [m.id for m in build.messages] == ["m1", "m2"]
    assert build.voice == "alena" and build.settings.sample_rate == 8000 and build.settings.call_centre_noise is False
    assert build.settings.queue == "project.tts.precache.r1"


def test_request_id_defaults_to_the_body_hash() -> None:
    b = body(REQUEST)
    assert parse_request(b, None)["request_id"] == hashlib.sha256(b).hexdigest()[:32]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"\xff\xfe{", "request is not UTF-8"),
        (b"{oops", "request is not JSON: line 1, column 2"),
        (b"[1, 2]", "request must be a JSON object, got list"),
        (body({**REQUEST, "messages": []}), "invalid request: messages: List should have at least 1 item"),
        (body({k: v for k, v in REQUEST.items() if k != "registry_id"}), "invalid request: registry_id: Field required"),
        (body({**REQUEST, "registry_id": "a b"}), "invalid request: registry_id: String should match pattern"),
        (body({**REQUEST, "settings": {**REQUEST["settings"], "PRECACHE_SPEED": "fast"}}), "invalid request: settings.PRECACHE_SPEED: Input should be a valid number"),
        (body({**REQUEST, "settings": {"PRECACHE_SPEED": "1"}}), "PRECACHE_VOICE is required in a request"),
        (body({**REQUEST, "settings": {**REQUEST["settings"], "PRECACHE_PRECACHE_QUEUE": "kv.tts.precaching.v2"}}),
         "queue 'kv.tts.precaching.v2' is outside the allowed prefix"),
        (body({**REQUEST, "messages": [{"template": "x", "colour": 1}]}), "invalid request: messages.0.colour: Extra inputs are not permitted"),
    ],
)
def test_malformed_requests_say_why(raw: bytes, error: str) -> None:
    ev = parse_request(raw, "m")
    assert "conf" not in ev
    assert error in ev["error"]


def test_run_id_is_deterministic_and_safe() -> None:
    assert request_run_id("msg-1") == "request__msg-1"
    assert request_run_id("a/b c") == "request__a-b-c"


def event(payload: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(extra={"from_trigger": True, "payload": payload})


def test_runs_from_events_dedups_redelivered_requests() -> None:
    ev = parse_request(body(REQUEST), "msg-1")
    other = parse_request(body({**REQUEST, "registry_id": "r2"}), "msg-2")
    runs = runs_from_events({"asset": [event(ev), event(ev), event(other), event({"unrelated": 1})]})
    assert [r["trigger_run_id"] for r in runs] == ["request__msg-1", "request__msg-2"]
    assert runs[0]["conf"]["registry_id"] == "reg-2026-12-04-0001"
