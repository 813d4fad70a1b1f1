"""Shared fixtures of the pure-logic unit tests: the portal build of CONTRACTS §4."""

from __future__ import annotations

import copy
from typing import Any

import pytest

BUILD_4021: dict[str, Any] = {
    "build_id": "4021",
    "name": "Напоминание о задолженности",
    "speaker": {"id": "alena", "name": "Алёна"},
    "settings": {
        "PRECACHE_VOICE": "alena",
        "PRECACHE_SPEED": "1.0",
        "PRECACHE_MODEL_SERVER": "tts-ru-v3",
        "PRECACHE_PRECACHE_QUEUE": "project.tts.precache.4021-0001",
        "PRECACHE_VOLUME_LEVEL": "0",
        "PRECACHE_SAMPLE_RATE": "8000",
        "PRECACHE_CALL_CENTRE_NOISE": "false",
    },
    "messages": [
        {"id": "greeting", "template": "Здравствуйте, {{ fio }}!",
         "audio": "https://portal.example/audio/greeting.wav", "value_from": "obj"},
        {"id": "debt", "template": "Ваша задолженность {{ sum }} рублей на {{ date }}.",
         "audio": None, "value_from": "obj.debt"},
    ],
}


@pytest.fixture
def build_doc() -> dict[str, Any]:
    """A fresh, mutable copy of the contract's example build."""
    return copy.deepcopy(BUILD_4021)
