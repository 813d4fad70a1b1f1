"""Security (issue 4): the template sandbox, registry path roots, registry URLs, queue names,
and secrets kept out of error texts. Whole-run secret checks are in
tests/integration/test_security_runs.py.
"""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from precache.models import Build, RegistrySource
from precache.pipeline import PrecacheError, validate
from precache.registry import RegistryError, opened_registry
from precache.rendering import Renderer

# --- templates: Jinja's immutable sandbox ------------------------------------------------

PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ fio.__class__ }}",
    "{{ fields.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ fio|attr('__class__') }}",
    "{{ (fio|attr('__class__'))|attr('__mro__') }}",
    "{{ '{0.__class__.__mro__}'.format(fio) }}",
    "{{ '%s'|format(fio.__class__) }}",
    "{{ fio.__len__() }}",
    "{% set x = fields.update({'fio': 'подмена'}) %}{{ fio }}",
    "{{ fields.pop('fio') }}",
    "{{ fio * 1000000000 }}",
    "{{ 9 ** 999999 }}",
    "{{ range(1000000000)|list }}",
]


def render(template: str, obj: dict[str, Any] | None = None, build_id: str = "b-sec") -> Any:
    build = Build.model_validate({"build_id": build_id, "speaker": {"id": "alena"}, "settings": {},
                                  "messages": [{"id": "hostile", "template": template}]})
    r = Renderer(build)
    return r, r.render({"obj": obj if obj is not None else {"fio": "Иванов"}})[0]


@pytest.mark.parametrize("template", PAYLOADS)
def test_sandbox_payload_is_refused_and_logged_as_a_security_refusal(template: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="precache.rendering")
    _, out = render(template)
    assert out.request is None
    assert out.error.startswith("message 'hostile': refused by the template sandbox: ")
    assert "<class" not in out.error and "object at 0x" not in out.error and "uid=" not in out.error
    security = [r for r in caplog.records if r.name == "precache.rendering" and r.getMessage().startswith("SECURITY:")]
    assert len(security) == 1
    assert "message 'hostile' of build 'b-sec'" in security[0].getMessage()
    assert security[0].levelno == logging.WARNING


def test_refusal_logged_once_per_message_not_once_per_record(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="precache.rendering")
    r, _ = render("{{ fio.__class__ }}")
    for i in range(50):
        assert r.render({"obj": {"fio": f"Иванов {i}"}})[0].error is not None
    assert len([x for x in caplog.records if x.getMessage().startswith("SECURITY:")]) == 1


def test_records_cannot_be_changed_by_a_template() -> None:
    obj = {"fio": "Иванов"}
    render("{% set x = fields.update({'fio': 'подмена'}) %}{{ fio }}", obj)
    assert obj == {"fio": "Иванов"}


@pytest.mark.parametrize("template", ["{{ fio * 3 }}", "{{ 2 ** 10 }}", "{{ '-' * 20 }}"])
def test_ordinary_arithmetic_still_renders(template: str) -> None:
    _, out = render(template)
    assert out.error is None and out.request is not None


# --- registry.path: only under PRECACHE_REGISTRY_ROOTS --------------------------------------

@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ok.csv").write_text("fio\nИванов\n", encoding="utf-8")
    (tmp_path / "secret.csv").write_text("password\nhunter2\n", encoding="utf-8")
    monkeypatch.setenv("PRECACHE_REGISTRY_ROOTS", str(inbox))
    return inbox


def conf_path(path: str) -> dict[str, Any]:
    return {"registry_id": "sec", "build_id": "1", "registry": {"path": path}}


def test_path_under_the_root_accepted(roots: Path) -> None:
    assert validate(conf_path(str(roots / "ok.csv")))["source"] == str(roots / "ok.csv")


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "symlinked-dir", "etc-passwd"])
def test_path_outside_the_roots_refused_at_validate(roots: Path, how: str) -> None:
    outside = roots.parent / "secret.csv"
    if how == "absolute":
        given = str(outside)
    elif how == "dotdot":
        given = f"{roots}/../secret.csv"
    elif how == "symlink":
        (roots / "link.csv").symlink_to(outside)
        given = str(roots / "link.csv")
    elif how == "symlinked-dir":
        (roots / "sub").symlink_to(roots.parent, target_is_directory=True)
        given = str(roots / "sub" / "secret.csv")
    else:
        given = f"{roots}/../../../../../../../../etc/passwd.csv"
    with pytest.raises(PrecacheError) as info:
        validate(conf_path(given))
    assert str(info.value) == (
        f"invalid conf: registry.path {given!r} is outside the allowed roots ({roots}; see PRECACHE_REGISTRY_ROOTS)"
    )


def test_path_check_repeated_when_the_file_is_opened(roots: Path) -> None:
    """ingest resolves again: a symlink swapped in after validate is still refused."""
    link = roots / "later.csv"
    link.symlink_to(roots / "ok.csv")
    validate(conf_path(str(link)))
    link.unlink()
    link.symlink_to(roots.parent / "secret.csv")
    with pytest.raises(RegistryError, match="outside the allowed roots"):
        with opened_registry(RegistrySource(path=str(link)), [roots]) as records:
            list(records())


# --- registry.url: http(s) only, size cap, timeout --------------------------------------------

@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://h/x.csv", "gopher://h/x.csv", "//h/x.csv", "/etc/passwd"])
def test_url_other_than_http_refused_at_validate(url: str) -> None:
    with pytest.raises(PrecacheError) as info:
        validate({"registry_id": "sec", "build_id": "1", "registry": {"url": url, "format": "csv"}})
    assert str(info.value) == "invalid conf: registry: Value error, 'url' must be an http:// or https:// address"


def test_download_refuses_other_schemes_itself() -> None:
    src = RegistrySource.model_construct(url="file:///etc/passwd", format="csv", path=None, records=None, stored=None,
                                         encoding=None, delimiter=None)
    with pytest.raises(RegistryError, match=r"^registry.url file:///etc/passwd: only http:// and https:// addresses are allowed$"):
        with opened_registry(src):
            pass


class _Server:
    def __init__(self, handler: Any) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"


@pytest.fixture
def server() -> Iterator[Any]:
    servers: list[_Server] = []

    def start(do_get: Any) -> _Server:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                do_get(self)

            def log_message(self, *args: Any) -> None:
                pass

        s = _Server(Handler)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.server.shutdown()


def _body(h: Any, data: bytes, length: bool = True) -> None:
    h.send_response(200)
    if length:
        h.send_header("Content-Length", str(len(data)))
    else:
        h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(data)


def download(url: str, max_bytes: int = 1 << 20, timeout: float = 5.0) -> list[dict[str, Any]]:
    with opened_registry(RegistrySource(url=url, format="csv"), max_download_bytes=max_bytes, download_timeout=timeout) as records:
        return list(records())


def test_download_size_cap_from_content_length(server: Any) -> None:
    s = server(lambda h: _body(h, b"fio\n" + b"x\n" * 1000))
    with pytest.raises(RegistryError) as info:
        download(s.url("/big.csv"), max_bytes=1000)
    assert str(info.value) == f"registry.url {s.url('/big.csv')}: 2004 bytes, larger than the 1000-byte cap"


def test_download_size_cap_while_streaming_without_content_length(server: Any) -> None:
    s = server(lambda h: _body(h, b"fio\n" + b"x\n" * 100_000, length=False))
    with pytest.raises(RegistryError) as info:
        download(s.url("/big.csv"), max_bytes=1000)
    assert str(info.value) == f"registry.url {s.url('/big.csv')}: larger than the 1000-byte cap"


def test_download_timeout_when_the_server_stalls(server: Any) -> None:
    def stall(h: Any) -> None:
        time.sleep(3)
        _body(h, b"fio\nx\n")

    s = server(stall)
    started = time.monotonic()
    with pytest.raises(RegistryError) as info:
        download(s.url("/slow.csv"), timeout=0.5)
    assert str(info.value) == f"registry.url {s.url('/slow.csv')}: no answer within 0.5s"
    assert time.monotonic() - started < 2.5


def test_download_total_deadline_when_the_server_trickles(server: Any) -> None:
    """Each byte arrives within the per-read timeout; the whole download still has a deadline."""
    def trickle(h: Any) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "400")
        h.end_headers()
        try:
            for _ in range(400):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    s = server(trickle)
    started = time.monotonic()
    with pytest.raises(RegistryError) as info:
        download(s.url("/drip.csv"), timeout=1.0)
    assert str(info.value) == f"registry.url {s.url('/drip.csv')}: download not finished within 1s"
    assert time.monotonic() - started < 4


def test_download_http_error_named(server: Any) -> None:
    def forbidden(h: Any) -> None:
        h.send_response(403)
        h.send_header("Content-Length", "0")
        h.end_headers()

    s = server(forbidden)
    with pytest.raises(RegistryError, match=r": HTTP 403$"):
        download(s.url("/x.csv"))


def test_url_credentials_never_shown(server: Any) -> None:
    """userinfo and a signed URL's query are credentials: not in XCom, logs or errors."""
    s = server(lambda h: _body(h, b"fio\n", length=True))
    port = s.server.server_port
    signed = f"http://user:Pa55-url-secret@127.0.0.1:{port}/r.csv?X-Amz-Signature=sig-secret-123"
    desc = validate({"registry_id": "sec", "build_id": "1", "registry": {"url": signed}})
    assert desc["source"] == f"http://127.0.0.1:{port}/r.csv?…"
    with pytest.raises(RegistryError) as info:  # a header-only file: reading works, the error names the URL
        with opened_registry(RegistrySource(url=signed)) as records:
            list(records())
            raise RegistryError(f"{RegistrySource(url=signed).describe()}: the registry holds no records")
    refused = f"http://user:Pa55-url-secret@127.0.0.1:1/r.csv?X-Amz-Signature=sig-secret-123"
    with pytest.raises(RegistryError) as down:
        download(refused, timeout=2)
    for text in (str(info.value), str(down.value), str(desc)):
        assert "Pa55-url-secret" not in text and "sig-secret-123" not in text
    assert str(down.value).startswith("registry.url http://127.0.0.1:1/r.csv?…: download failed: ")


# --- queue names: only project.tts.precache.* may be declared or deleted ----------------------

FOREIGN = ["kv.tts.precaching.v2", "project.tts.precache", "amq.rabbitmq.trace", ""]


@pytest.fixture
def offline_hook(monkeypatch: pytest.MonkeyPatch) -> Any:
    from precache.hooks.rabbitmq import RabbitMQHook

    def no_broker(self: Any) -> Any:
        raise AssertionError("the broker was contacted for a refused queue name")

    monkeypatch.setattr(RabbitMQHook, "channel", no_broker)
    return RabbitMQHook()


@pytest.mark.parametrize("name", FOREIGN)
@pytest.mark.parametrize("op", ["declare", "delete", "publish", "inspect"])
def test_hook_refuses_foreign_queues_before_contacting_the_broker(offline_hook: Any, op: str, name: str) -> None:
    calls = {
        "declare": lambda: offline_hook.declare_queue(name, 60),
        "delete": lambda: offline_hook.delete_queue(name),
        "publish": lambda: offline_hook.publish_json(name, {"event": "progress"}),
        "inspect": lambda: offline_hook.queue_state(name),
    }
    with pytest.raises(ValueError) as info:
        calls[op]()
    assert str(info.value) == f"queue {name!r} is outside the allowed prefix 'project.tts.precache.'"


@pytest.mark.parametrize("name", ["kv.tts.precaching.v2", {"queue": "kv.tts.precaching.v2"}])
def test_cleanup_operator_refuses_to_delete_a_foreign_queue(offline_hook: Any, name: Any) -> None:
    from precache.operators.queue import DeleteProgressQueueOperator

    op = DeleteProgressQueueOperator(task_id="cleanup", progress_queue=name, drain_timeout_s=1)
    with pytest.raises(ValueError, match=r"^queue 'kv.tts.precaching.v2' is outside the allowed prefix"):
        op.execute({})
    with pytest.raises(ValueError, match=r"^queue 'kv.tts.precaching.v2' is outside the allowed prefix"):
        op.execute_complete({}, {"status": "timeout", "messages": 3})


# --- secrets: the TTS bearer token never lands in a failure reason ----------------------------

def test_tts_token_echoed_by_the_proxy_is_redacted_from_the_reason(monkeypatch: pytest.MonkeyPatch, server: Any) -> None:
    """A proxy that echoes request headers in its error body (debug mode) must not put the token in Mongo."""
    import asyncio

    from aiohttp import web

    from precache.hooks.tts import TtsProxyHook
    from precache.models import TtsRequest

    token = "tts-Bearer-SECRET-4f1e"

    async def main() -> Any:
        async def echo(request: web.Request) -> web.Response:
            return web.json_response({"error": "bad voice", "headers": dict(request.headers)}, status=422)

        app = web.Application()
        app.router.add_post("/api/v1/tts", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        monkeypatch.setenv("AIRFLOW_CONN_TTS_SEC", f'{{"conn_type": "http", "host": "127.0.0.1", "port": {port}, "password": "{token}"}}')
        hook = TtsProxyHook("tts_sec", max_attempts=1)
        req = TtsRequest(text="Привет", voice="alena", speed=1.0, model="m", volume=0.0, sample_rate=8000,
                         call_centre_noise=False, reference_audio=None)
        try:
            return await hook.send_all({req.key(): req})
        finally:
            await runner.cleanup()

    [result] = asyncio.run(main())
    assert not result.ok
    assert result.error.startswith("TTS proxy refused the phrase (HTTP 422): ")
    assert "Bearer ***" in result.error
    assert token not in result.error
