"""Rendering of build messages into TTS requests (CONTRACTS §4, §5)."""

from __future__ import annotations

import pytest

from precache.models import Build, TtsRequest
from precache.rendering import Renderer, TemplateError, normalise

DOC = {
    "registry_id": "reg-1",
    "row": 1,
    "obj": {
        "fio": "Иванов Иван Иванович",
        "Дата платежа": "05.12.2026",
        "debt": {"sum": "15 000", "date": "01.12.2026"},
    },
}


def renderer(*messages: dict, settings: dict | None = None) -> Renderer:
    return Renderer(Build.model_validate({
        "build_id": "1", "speaker": {"id": "alena"}, "settings": settings or {},
        "messages": list(messages),
    }))


def one(template: str, doc: dict = DOC, value_from: str = "obj"):
    (r,) = renderer({"id": "m", "template": template, "value_from": value_from}).render(doc)
    assert r.message_id == "m"
    return r


def test_contract_build_renders_cyrillic_and_nested(build_doc):
    out = Renderer(Build.model_validate(build_doc)).render(DOC)
    assert [r.message_id for r in out] == ["greeting", "debt"]
    assert all(r.error is None for r in out)
    assert out[0].request.text == "Здравствуйте, Иванов Иван Иванович!"
    assert out[1].request.text == "Ваша задолженность 15 000 рублей на 01.12.2026."


def test_request_carries_build_settings(build_doc):
    build_doc["settings"].update({"PRECACHE_SPEED": "1.25", "PRECACHE_VOLUME_LEVEL": "-3.5",
                                  "PRECACHE_SAMPLE_RATE": "16000", "PRECACHE_CALL_CENTRE_NOISE": "yes",
                                  "PRECACHE_VOICE": ""})
    greeting, debt = Renderer(Build.model_validate(build_doc)).render(DOC)
    assert greeting.request == TtsRequest(
        text="Здравствуйте, Иванов Иван Иванович!", voice="alena", speed=1.25, model="tts-ru-v3",
        volume=-3.5, sample_rate=16000, call_centre_noise=True,
        reference_audio="https://portal.example/audio/greeting.wav",
    )
    assert debt.request.reference_audio is None
    assert debt.request.voice == "alena"  # speaker.id, since PRECACHE_VOICE is empty


def test_field_not_an_identifier_via_fields():
    assert one("Оплатите до {{ fields['Дата платежа'] }}").request.text == "Оплатите до 05.12.2026"


def test_whitespace_normalised():
    assert normalise("  a \n\t b  ") == "a b"
    doc = {"obj": {"x": "  a \n\t b  "}}
    assert one("  {{ x }}\n\n  конец ", doc).request.text == "a b конец"


def test_no_number_to_words():
    assert one("{{ n }} руб.", {"obj": {"n": 1500}}).request.text == "1500 руб."


def test_static_message_rendered_once_for_every_record():
    r = renderer({"id": "bye", "template": "  До свидания!  ", "audio": "https://a/b.wav"})
    first = r.render({"obj": {"fio": "A"}})[0]
    second = r.render({"obj": {}})[0]
    third = r.render({})[0]  # no obj at all: a static phrase does not look into the record
    assert first.request.text == "До свидания!"
    assert first is second is third
    assert first.request.reference_audio == "https://a/b.wav"


def test_undefined_name_names_message_and_variable():
    r = one("{{ fio }}: {{ sum }}")
    assert r.request is None
    assert r.error == "message 'm': 'sum' is undefined"


def test_one_bad_message_does_not_spoil_the_others(build_doc):
    doc = {"obj": {"fio": "Петров", "debt": {"sum": "1"}}}
    greeting, debt = Renderer(Build.model_validate(build_doc)).render(doc)
    assert greeting.request.text == "Здравствуйте, Петров!"
    assert debt.error == "message 'debt': 'date' is undefined"


def test_value_from_missing_is_named():
    r = one("{{ sum }}", {"obj": {"fio": "x"}}, value_from="obj.debt")
    assert r.request is None
    assert r.error == "message 'm': value_from 'obj.debt' not found in the record"


def test_value_from_not_an_object():
    r = one("{{ sum }}", {"obj": {"debt": "15 000"}}, value_from="obj.debt")
    assert r.error == "message 'm': value_from 'obj.debt' is not an object"


def test_empty_rendering_is_an_error():
    assert one("{{ x }}", {"obj": {"x": "  "}}).error == "message 'm': rendered to an empty phrase"


def test_syntax_error_names_message_at_construction():
    with pytest.raises(TemplateError, match=r"^message 'broken': template does not compile: .*\(line 1\)"):
        renderer({"id": "ok", "template": "{{ fio }}"}, {"id": "broken", "template": "Привет, {{ fio "})


def test_unknown_filter_is_a_template_error():
    with pytest.raises(TemplateError, match="message 'm'"):
        renderer({"id": "m", "template": "{{ fio|no_such_filter }}"})


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ fio.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ fio.__class__.__name__ }}",
        "{% set x = fields.update({'a': 1}) %}{{ x }}",
    ],
)
def test_sandbox_refuses_unsafe_templates(template):
    r = one(template)
    assert r.request is None
    assert r.error.startswith("message 'm': ")
    assert "refused by the template sandbox" in r.error and "is unsafe" in r.error
    assert "<class" not in r.error and "object at 0x" not in r.error


def test_null_field_fails_the_record_instead_of_saying_none():
    r = one("Здравствуйте, {{ fio }}!", {"obj": {"fio": None}})
    assert r.request is None
    assert r.error == "message 'm': a field used by the template is null"
