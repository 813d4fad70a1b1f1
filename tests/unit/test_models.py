"""Conf (CONTRACTS §2), build settings and build (§4), TTS request (§5) models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from precache.models import (
    Build,
    PrecacheConf,
    RegistrySource,
    TtsRequest,
    TtsSettings,
    describe_validation_error,
)

CONF = {
    "registry_id": "reg-2026-12-04-0001",
    "build_id": "4021",
    "registry": {"path": "/data/inbox/debtors.csv"},
}


def conf_error(**changes) -> str:
    data = {**CONF, **changes}
    data = {k: v for k, v in data.items() if v is not ...}
    with pytest.raises(ValidationError) as ei:
        PrecacheConf.model_validate(data)
    return describe_validation_error(ei.value, "conf")


def settings_error(name: str, value: str) -> str:
    with pytest.raises(ValidationError) as ei:
        TtsSettings.model_validate({name: value})
    return describe_validation_error(ei.value, "build settings")


# --- PrecacheConf -----------------------------------------------------------------

def test_valid_conf_with_defaults():
    c = PrecacheConf.model_validate(CONF)
    assert c.registry_id == "reg-2026-12-04-0001"
    assert c.build_id == "4021"
    assert c.registry.path == "/data/inbox/debtors.csv"
    assert c.registry.resolved_format() == "csv"
    assert c.collection == "registry_records"
    assert c.force is False


@pytest.mark.parametrize("field", ["registry_id", "build_id", "registry"])
def test_missing_required_field_is_named(field):
    msg = conf_error(**{field: ...})
    assert msg.startswith("invalid conf: ")
    assert f"{field}: Field required" in msg


@pytest.mark.parametrize("bad", ["", "reg 1", "reg/1", "рег-1", "a" * 129, "abc\n"])
def test_registry_id_pattern(bad):
    assert "registry_id: String should match pattern" in conf_error(registry_id=bad)


def test_registry_id_edge_of_pattern_accepted():
    assert PrecacheConf.model_validate({**CONF, "registry_id": "A.b_c:1-" + "x" * 120}).registry_id


def test_registry_without_source():
    msg = conf_error(registry={"format": "csv"})
    assert "registry: " in msg and "exactly one of 'path', 'url', 'records' or 'stored'" in msg
    assert msg.endswith("got none")


def test_registry_with_two_sources():
    msg = conf_error(registry={"path": "/a.csv", "url": "https://x/a.csv"})
    assert "registry: " in msg and "got path, url" in msg


def test_inline_records_limit():
    ok = PrecacheConf.model_validate({**CONF, "registry": {"records": [{"i": 1}] * 10_000}})
    assert len(ok.registry.records) == 10_000
    msg = conf_error(registry={"records": [{"i": 1}] * 10_001})
    assert "registry: " in msg and "10001 records" in msg and "limited to 10000" in msg


@pytest.mark.parametrize("url", ["ftp://host/a.csv", "file:///etc/passwd", "/data/a.csv"])
def test_url_must_be_http(url):
    assert "'url' must be an http:// or https:// address" in conf_error(registry={"url": url})


def test_unknown_format_names_the_field():
    msg = conf_error(registry={"path": "/a.csv", "format": "xls"})
    assert "registry.format: " in msg


def test_unknown_extra_field_refused():
    assert "registry_idd: Extra inputs are not permitted" in conf_error(registry_idd="x")


@pytest.mark.parametrize(
    ("source", "fmt"),
    [
        ({"path": "/d/DEBTORS.CSV"}, "csv"),
        ({"path": "/d/a.xlsx"}, "xlsx"),
        ({"url": "https://h/a.json?token=1"}, "json"),
        ({"path": "/d/a.jsonl"}, "jsonl"),
        ({"path": "/d/a.txt", "format": "csv"}, "csv"),
        ({"records": [{"a": 1}]}, "records"),
    ],
)
def test_resolved_format(source, fmt):
    assert RegistrySource.model_validate(source).resolved_format() == fmt


def test_resolved_format_cannot_be_inferred():
    with pytest.raises(ValueError, match="cannot be inferred from '/d/a.txt'"):
        RegistrySource(path="/d/a.txt").resolved_format()


# --- TtsSettings --------------------------------------------------------------------

def test_settings_coerced_from_strings():
    s = TtsSettings.model_validate({
        "PRECACHE_SPEED": "1.0", "PRECACHE_VOLUME_LEVEL": "0",
        "PRECACHE_SAMPLE_RATE": "8000", "PRECACHE_CALL_CENTRE_NOISE": "false",
    })
    assert (s.speed, s.volume, s.sample_rate, s.call_centre_noise) == (1.0, 0.0, 8000, False)
    assert type(s.speed) is float and type(s.volume) is float and type(s.sample_rate) is int


@pytest.mark.parametrize(
    ("word", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), (" yes ", True),
     ("false", False), ("False", False), ("0", False), ("NO", False), ("no", False)],
)
def test_noise_words(word, value):
    assert TtsSettings.model_validate({"PRECACHE_CALL_CENTRE_NOISE": word}).call_centre_noise is value


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PRECACHE_SPEED", "fast", "unable to parse string as a number"),
        ("PRECACHE_SAMPLE_RATE", "-1", "greater than 0"),
        ("PRECACHE_CALL_CENTRE_NOISE", "maybe", "expected one of true/false/1/0/yes/no, got 'maybe'"),
    ],
)
def test_bad_setting_names_the_alias(name, value, expected):
    msg = settings_error(name, value)
    assert msg.startswith(f"invalid build settings: {name}: ")
    assert expected in msg


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_volume_must_be_finite(value):
    settings_error("PRECACHE_VOLUME_LEVEL", value)


def test_queue_outside_prefix_refused():
    msg = settings_error("PRECACHE_PRECACHE_QUEUE", "kv.tts.precaching.v2")
    assert "PRECACHE_PRECACHE_QUEUE: " in msg
    assert "outside the allowed prefix 'project.tts.precache.'" in msg
    assert "outside the allowed prefix" in settings_error("PRECACHE_PRECACHE_QUEUE", "project.tts.precache.")


def test_queue_blank_is_none_and_valid_kept():
    assert TtsSettings.model_validate({"PRECACHE_PRECACHE_QUEUE": "  "}).queue is None
    q = TtsSettings.model_validate({"PRECACHE_PRECACHE_QUEUE": "project.tts.precache.4021-0001"}).queue
    assert q == "project.tts.precache.4021-0001"


# --- Build ----------------------------------------------------------------------------

def test_build_from_contract_example(build_doc):
    b = Build.model_validate(build_doc)
    assert b.voice == "alena"
    assert b.settings.queue == "project.tts.precache.4021-0001"
    assert [m.id for m in b.messages] == ["greeting", "debt"]
    assert b.messages[1].value_from == "obj.debt"


@pytest.mark.parametrize("voice", ["", "   ", None])
def test_voice_falls_back_to_speaker(build_doc, voice):
    if voice is None:
        del build_doc["settings"]["PRECACHE_VOICE"]
    else:
        build_doc["settings"]["PRECACHE_VOICE"] = voice
    build_doc["speaker"]["id"] = "oksana"
    assert Build.model_validate(build_doc).voice == "oksana"


def test_bad_setting_inside_build_is_named(build_doc):
    build_doc["settings"]["PRECACHE_SPEED"] = "fast"
    with pytest.raises(ValidationError) as ei:
        Build.model_validate(build_doc)
    assert "settings.PRECACHE_SPEED: " in describe_validation_error(ei.value, "build")


def test_build_without_messages_refused(build_doc):
    build_doc["messages"] = []
    with pytest.raises(ValidationError) as ei:
        Build.model_validate(build_doc)
    msg = describe_validation_error(ei.value, "build")
    assert "messages: " in msg and "the build has no messages" in msg


def test_duplicate_message_ids_refused(build_doc):
    build_doc["messages"].append({"id": "greeting", "template": "Ещё раз"})
    with pytest.raises(ValidationError) as ei:
        Build.model_validate(build_doc)
    assert "duplicate message ids: greeting" in describe_validation_error(ei.value, "build")


# --- TtsRequest ---------------------------------------------------------------------

BODY = {
    "text": "Здравствуйте, Иванов Иван Иванович!", "voice": "alena", "speed": 1.0,
    "model": "tts-ru-v3", "volume": 0.0, "sample_rate": 8000, "call_centre_noise": False,
    "reference_audio": "https://portal.example/audio/greeting.wav",
}


def test_request_key_is_stable():
    a, b = TtsRequest(**BODY), TtsRequest(**dict(reversed(list(BODY.items()))))
    assert a.key() == b.key() == TtsRequest(**{**BODY, "speed": 1}).key()
    assert len(a.key()) == 64 and int(a.key(), 16) >= 0
    assert "Иванов" in a.canonical()  # ensure_ascii=False: the text is kept as is


@pytest.mark.parametrize(
    ("field", "other"),
    [("text", "Здравствуйте!"), ("voice", "oksana"), ("speed", 1.1), ("model", "tts-ru-v4"),
     ("volume", 1.0), ("sample_rate", 16000), ("call_centre_noise", True), ("reference_audio", None)],
)
def test_request_key_differs_per_field(field, other):
    assert TtsRequest(**{**BODY, field: other}).key() != TtsRequest(**BODY).key()



@pytest.mark.parametrize(("name", "value", "kind"), [("PRECACHE_BATCH_SIZE", "100 rows", "an integer"),
                                                     ("PRECACHE_TTS_TIMEOUT", "", "a number")])
def test_a_setting_that_is_not_a_number_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str, kind: str) -> None:
    from precache.config import Settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"^environment variable {name} must be {kind}, got {value!r}$"):
        Settings.from_env()
