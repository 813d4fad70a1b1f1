"""The bad-input corpus (issue 4): each case asserts the exact message and, by the function
that raises it, the task that fails (``validate``, ``ingest``, ``parse_build``, ``cache`` for a
record, ``declare_queue``). Cases needing the portal are in tests/integration/test_bad_input_runs.py.

Every message names the field, file, row, line or message id involved.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from precache.models import Build, RegistrySource, TtsSettings, check_queue_name
from precache.pipeline import PrecacheError, parse_build, queue_name, validate
from precache.registry import RegistryError, iter_records
from precache.rendering import Renderer
from tests.unit.conftest import BUILD_4021

CONF = {"registry_id": "reg-1", "build_id": "4021", "registry": {"records": [{"fio": "Иванов"}]}}


def conf(**changes: Any) -> dict[str, Any]:
    c = copy.deepcopy(CONF)
    for k, v in changes.items():
        if v is None:
            c.pop(k)
        else:
            c[k] = v
    return c


def validate_error(c: dict[str, Any]) -> str:
    with pytest.raises(PrecacheError) as info:
        validate(c)
    return str(info.value)


# --- validate: the conf ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("case", "c", "message"),
    [
        ("registry_id missing", conf(registry_id=None), "invalid conf: registry_id: Field required"),
        ("build_id missing", conf(build_id=None), "invalid conf: build_id: Field required"),
        ("registry missing", conf(registry=None), "invalid conf: registry: Field required"),
        ("registry_id a number", conf(registry_id=17), "invalid conf: registry_id: Input should be a valid string"),
        ("build_id a number", conf(build_id=4021), "invalid conf: build_id: Input should be a valid string"),
        ("build_id blank", conf(build_id="   "), "invalid conf: build_id: String should have at least 1 character"),
        ("registry a string", conf(registry="/data/x.csv"),
         "invalid conf: registry: Input should be a valid dictionary or instance of RegistrySource"),
        ("registry_id with a space", conf(registry_id="reg 1"),
         "invalid conf: registry_id: String should match pattern '^[A-Za-z0-9._:-]{1,128}$'"),
        ("force not a boolean", conf(force="maybe"),
         "invalid conf: force: Input should be a valid boolean, unable to interpret input"),
        ("collection a number", conf(collection=5), "invalid conf: collection: Input should be a valid string"),
        ("collection reserved", conf(collection="precache_runs"),
         "invalid conf: collection: Value error, collection 'precache_runs' is reserved"),
        ("unknown conf key", conf(colection="x"), "invalid conf: colection: Extra inputs are not permitted"),
        ("unknown format", conf(registry={"path": "/data/x.csv", "format": "xls"}),
         "invalid conf: registry.format: Input should be 'csv', 'xlsx', 'json' or 'jsonl'"),
        ("format not inferable", conf(registry={"path": "/data/debtors.xls"}),
         "invalid conf: registry: registry format cannot be inferred from '/data/debtors.xls': "
         "use a .csv/.xlsx/.json/.jsonl name or set registry.format"),
        ("inline over the limit", conf(registry={"records": [{"a": 1}] * 10_001}),
         "invalid conf: registry: Value error, 'records' holds 10001 records; inline registries are limited "
         "to 10000, use 'path' or 'url' for bigger ones"),
        ("inline record not an object", conf(registry={"records": [{"a": 1}, "Иванов"]}),
         "invalid conf: registry.records.1: Input should be a valid dictionary"),
        ("two sources", conf(registry={"path": "/x.csv", "url": "https://h/x.csv"}),
         "invalid conf: registry: Value error, exactly one of 'path', 'url', 'records' or 'stored' is required, "
         "got path, url"),
        ("unknown delimiter", conf(registry={"path": "/x.csv", "delimiter": ":"}),
         "invalid conf: registry: Value error, 'delimiter' must be one of ';', ',', tab or '|'"),
        ("unknown encoding", conf(registry={"path": "/x.csv", "encoding": "klingon"}),
         "invalid conf: registry: Value error, unknown encoding 'klingon'"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 and not v.startswith("invalid") else "",
)
def test_validate_refuses_bad_conf(case: str, c: dict[str, Any], message: str) -> None:
    assert validate_error(c) == message


def test_missing_file_fails_validate_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    assert validate_error(conf(registry={"path": str(missing)})) == f"invalid conf: registry.path '{missing}': no such file"


# --- ingest: the registry file ---------------------------------------------------------

def read(path: Path, **kw: Any) -> list[dict[str, Any]]:
    return list(iter_records(RegistrySource(path=str(path), **kw)))


def registry_error(tmp_path: Path, name: str, data: bytes, **kw: Any) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(RegistryError) as info:
        read(p, **kw)
    return str(info.value).replace(str(p), "<file>")


@pytest.mark.parametrize(
    ("name", "data", "kw", "message"),
    [
        ("empty.csv", b"", {}, "<file>: the file is empty"),
        ("blank.csv", b"  \r\n\n", {}, "<file>: the file is empty"),
        ("ragged.csv", "fio;sum\nИванов;1\nПетров;2;лишнее\n".encode(), {},
         "<file>: row 2 (line 3) has 3 fields, the header has 2"),
        ("short.csv", "fio;sum\nИванов;1\n\nПетров\n".encode(), {},
         "<file>: row 2 (line 4) has 1 fields, the header has 2"),
        ("cp1251-as-utf8.csv", "fio;sum\nИванов;1\n".encode("cp1251"), {"encoding": "utf-8"},
         "<file>: cannot decode as utf-8 at row 1 (line 2, byte 1): invalid continuation byte; set registry.encoding"),
        ("late-bad-byte.csv", b"fio;sum\n" + b"Ivanov;1\n" * 20_000 + "Петров;2\n".encode("cp1251"), {},
         "<file>: cannot decode as utf-8 at row 20001 (line 20002, byte 1): invalid continuation byte; "
         "set registry.encoding"),
        ("bad-header.csv", "ФИО;sum\n".encode("cp1251"), {"encoding": "utf-8"},
         "<file>: cannot decode as utf-8 in the header (line 1, byte 1): invalid continuation byte; set registry.encoding"),
        ("dup.csv", "ФИО;Сумма;ФИО\nА;1;Б\n".encode(), {}, "<file>: duplicate header name 'ФИО' (column 3)"),
        ("hole.csv", b"fio;;sum\n1;2;3\n", {}, "<file>: header column 2 has no name"),
        ("zero.xlsx", b"", {}, "<file>: the file is empty"),
        ("fake.xlsx", b"fio;sum\n1;2\n", {}, "<file>: not a readable XLSX workbook (File is not a zip file)"),
        ("broken.json", b'[{"fio": "A"},\n {"fio": "B"},\n {"fio": }]', {},
         "<file>: invalid JSON after record 2, at line 3, column 10: Expecting value"),
        ("blank.json", b"  \n", {}, "<file>: the file is empty"),
        ("object.json", b'{"fio": "A"}', {}, "<file>: no records (expected a JSON array of objects)"),
        ("scalars.json", b'[{"fio": "A"}, 42]', {}, "<file>: record 2 is not a JSON object"),
        ("broken.jsonl", b'{"fio": "A"}\n{"fio": "B"}\n{"fio" "C"}\n', {},
         "<file>: invalid JSON at line 3, column 8: Expecting ':' delimiter"),
        ("array.jsonl", b'{"fio": "A"}\n[1]\n', {}, "<file>: line 2 is not a JSON object"),
        ("cp1251.jsonl", '{"fio": "Иванов"}\n'.encode("cp1251"), {},
         "<file>: line 1 is not UTF-8 (invalid continuation byte at byte 10); JSON Lines must be UTF-8"),
        ("empty.jsonl", b"\n\n", {}, "<file>: the file is empty"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.count(".") == 1 and len(v) < 25 else "",
)
def test_ingest_refuses_bad_registry_files(tmp_path: Path, name: str, data: bytes, kw: dict[str, Any], message: str) -> None:
    assert registry_error(tmp_path, name, data, **kw) == message


def test_header_only_file_fails_ingest_as_holding_no_records(tmp_path: Path) -> None:
    """The reader yields nothing; ``ingest`` refuses the empty registry before writing, naming the file."""
    from precache.config import Settings
    from precache.pipeline import ingest

    p = tmp_path / "header-only.csv"
    p.write_text("fio;sum;date\n", encoding="utf-8")
    assert read(p) == []

    class NoStore:  # ingest must fail before it touches the store
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"store.{name} called for an empty registry")

    with pytest.raises(PrecacheError) as info:
        ingest(conf(registry={"path": str(p)}), NoStore(), Settings())  # type: ignore[arg-type]
    assert str(info.value) == f"{p}: the registry holds no records"


def test_a_registry_broken_late_fails_before_a_single_record_is_replaced(tmp_path: Path) -> None:
    """The source is read and checked in full before ingest writes anything."""
    from precache.config import Settings
    from precache.pipeline import ingest

    p = tmp_path / "late.csv"
    p.write_text("fio;sum\n" + "Иванов;1\n" * 500 + "Петров;2;3\n", encoding="utf-8")
    calls: list[str] = []

    class Store:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return lambda *a, **k: None

    with pytest.raises(PrecacheError, match=r"late\.csv: row 501 \(line 502\) has 3 fields, the header has 2$"):
        ingest(conf(registry={"path": str(p)}), Store(), Settings())  # type: ignore[arg-type]
    assert calls == []


# --- parse_build: the portal's build ---------------------------------------------------

def build_error(mutate: Any) -> str:
    b = copy.deepcopy(BUILD_4021)
    mutate(b)
    with pytest.raises(PrecacheError) as info:
        parse_build(b, "4021")
    return str(info.value)


def _set(path: str, value: Any) -> Any:
    def mutate(b: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = b
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set("messages", []), "invalid build '4021': messages: Value error, the build has no messages: nothing to precache"),
        (_set("messages", "Здравствуйте"), "invalid build '4021': messages: Input should be a valid list"),
        (_set("messages.0.template", KeyError), "invalid build '4021': messages.0.template: Field required"),
        (_set("messages.1.id", "greeting"), "invalid build '4021': messages: Value error, duplicate message ids: greeting"),
        (_set("messages.1.value_from", "obj..debt"),
         "invalid build '4021': messages.1.value_from: Value error, value_from 'obj..debt' is not a dot path such as 'obj' or 'obj.debt'"),
        (_set("messages.1.template", "Ваша задолженность {{ sum "),
         "build '4021': message 'debt': template does not compile: unexpected end of template, expected "
         "'end of print statement'. (line 1)"),
        (_set("messages.0.template", "{% if fio %}Здравствуйте"),
         "build '4021': message 'greeting': template does not compile: Unexpected end of template. Jinja was looking "
         "for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'. (line 1)"),
        (_set("messages.0.template", "{{ fio | no_such_filter }}"),
         "build '4021': message 'greeting': template does not compile: No filter named 'no_such_filter'. (line 1)"),
        (_set("speaker", KeyError), "invalid build '4021': speaker: Field required"),
        (_set("settings.PRECACHE_SPEED", "fast"),
         "invalid build '4021': settings.PRECACHE_SPEED: Input should be a valid number, unable to parse string as a number"),
        (_set("settings.PRECACHE_SPEED", "0"), "invalid build '4021': settings.PRECACHE_SPEED: Input should be greater than 0"),
        (_set("settings.PRECACHE_SAMPLE_RATE", "-1"), "invalid build '4021': settings.PRECACHE_SAMPLE_RATE: Input should be greater than 0"),
        (_set("settings.PRECACHE_SAMPLE_RATE", "8 kHz"),
         "invalid build '4021': settings.PRECACHE_SAMPLE_RATE: Input should be a valid integer, unable to parse string as an integer"),
        (_set("settings.PRECACHE_VOLUME_LEVEL", "nan"), "invalid build '4021': settings.PRECACHE_VOLUME_LEVEL: Input should be a finite number"),
        (_set("settings.PRECACHE_CALL_CENTRE_NOISE", "maybe"),
         "invalid build '4021': settings.PRECACHE_CALL_CENTRE_NOISE: Value error, expected one of true/false/1/0/yes/no, got 'maybe'"),
        (_set("settings.PRECACHE_PRECACHE_QUEUE", "kv.tts.precaching.v2"),
         "invalid build '4021': settings.PRECACHE_PRECACHE_QUEUE: Value error, queue 'kv.tts.precaching.v2' is outside "
         "the allowed prefix 'project.tts.precache.'"),
        (_set("settings.PRECACHE_PRECACHE_QUEUE", "project.tts.precache."),
         "invalid build '4021': settings.PRECACHE_PRECACHE_QUEUE: Value error, queue 'project.tts.precache.' is outside "
         "the allowed prefix 'project.tts.precache.'"),
        (_set("settings", None), "invalid build '4021': settings: Input should be a valid dictionary or instance of TtsSettings"),
    ],
    ids=[
        "no messages", "messages not a list", "template missing", "duplicate message id", "value_from not a path",
        "template syntax error", "unclosed block", "unknown filter", "no speaker", "speed fast", "speed zero",
        "sample rate -1", "sample rate 8 kHz", "volume nan", "noise maybe", "queue outside prefix", "queue bare prefix",
        "settings null",
    ],
)
def test_parse_build_refuses_bad_builds(mutate: Any, message: str) -> None:
    assert build_error(mutate) == message


def test_several_bad_settings_are_all_named_at_once() -> None:
    def mutate(b: dict[str, Any]) -> None:
        b["settings"].update(PRECACHE_SPEED="fast", PRECACHE_SAMPLE_RATE="-1")

    assert build_error(mutate) == (
        "invalid build '4021': settings.PRECACHE_SPEED: Input should be a valid number, unable to parse string as a number; "
        "settings.PRECACHE_SAMPLE_RATE: Input should be greater than 0"
    )


# --- cache: a template name the records lack fails only those records -------------------

def test_name_missing_from_the_record_fails_that_record_naming_message_and_field() -> None:
    r = Renderer(Build.model_validate(BUILD_4021))
    out = r.render({"obj": {"fio": "Иванов Иван", "debt": {"sum": "100"}}})
    assert out[0].request is not None and out[0].request.text == "Здравствуйте, Иванов Иван!"
    assert out[1].request is None
    assert out[1].error == "message 'debt': 'date' is undefined"


def test_value_from_missing_from_the_record_fails_that_record() -> None:
    r = Renderer(Build.model_validate(BUILD_4021))
    out = r.render({"obj": {"fio": "Иванов Иван"}})
    assert out[1].error == "message 'debt': value_from 'obj.debt' not found in the record"


# --- declare_queue: the queue prefix, also for names that bypass the build model ----------

@pytest.mark.parametrize(
    "name",
    ["kv.tts.precaching.v2", "project.tts.precache", "project.tts.precache.", "amq.gen-x", "PROJECT.TTS.PRECACHE.x",
     " project.tts.precache.x", "project.tts.precache." + "x" * 240],
)
def test_queue_outside_the_prefix_is_refused(name: str) -> None:
    with pytest.raises(ValueError) as info:
        check_queue_name(name)
    assert str(info.value) == f"queue {name!r} is outside the allowed prefix 'project.tts.precache.'"


def test_queue_name_checked_again_when_declaring_from_a_stored_build() -> None:
    """A build dict that skipped the model (XCom edited, old serialisation) still cannot name another queue."""
    build = Build.model_validate(BUILD_4021)
    object.__setattr__(build.settings, "queue", "kv.tts.precaching.v2")
    with pytest.raises(ValueError, match=r"^queue 'kv.tts.precaching.v2' is outside the allowed prefix"):
        queue_name(build, "reg-1", "run-1")


def test_generated_queue_is_inside_the_prefix_and_stable_per_run() -> None:
    build = Build.model_validate({**BUILD_4021, "settings": {}})
    assert queue_name(build, "reg-1", "run-1") == queue_name(build, "reg-1", "run-1")
    assert queue_name(build, "reg-1", "run-1").startswith("project.tts.precache.reg-1.")


# --- settings coercion in isolation -----------------------------------------------------

def test_settings_errors_name_the_portal_key_not_the_attribute() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        TtsSettings.model_validate({"PRECACHE_SPEED": "fast", "PRECACHE_SAMPLE_RATE": "-1"})
    assert [e["loc"] for e in info.value.errors()] == [("PRECACHE_SPEED",), ("PRECACHE_SAMPLE_RATE",)]

