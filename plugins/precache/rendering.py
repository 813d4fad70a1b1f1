"""Rendering of build messages into the phrases sent to the TTS proxy.

Templates come from the portal, so they run only in Jinja's immutable sandbox with
``StrictUndefined``: a name a record lacks is an error for that record, never an
empty string that would be synthesized and cached as a wrong phrase.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from precache.filters import FILTERS
from precache.models import Build, Message, TtsRequest

log = logging.getLogger(__name__)
_WS = re.compile(r"\s+")


class TemplateError(ValueError):
    """A message template that does not compile; names the message id."""


def normalise(text: str) -> str:
    """Strip the ends and collapse each run of whitespace to one space (CONTRACTS §4)."""
    return _WS.sub(" ", text).strip()


def _finalize(value: Any) -> Any:
    # A null field would otherwise be spoken, and cached, as the word "None".
    if value is None:
        raise UndefinedError("a field used by the template is null")
    return value


# Bounds on what one template expression may build: a phrase is a sentence, not megabytes.
MAX_REPEAT_LENGTH = 10_000
MAX_POWER_BITS = 4_096


class PhraseSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus refusal of ``*``/``**`` that would exhaust memory or CPU.

    ``{{ fio * 10**9 }}`` or ``{{ 9 ** 9 ** 9 }}`` pass Jinja's attribute checks but would
    take a worker down; they fail their record as a security refusal instead.
    """

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja returns an Undefined here that raises only when printed; walking on from it
        # (``''.__class__.__mro__``) then fails as a plain "no attribute" error, and the probe
        # would not be reported as what it is. Refuse at the first unsafe step instead.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_REPEAT_LENGTH:
                    raise SecurityError(f"repeating a sequence to more than {MAX_REPEAT_LENGTH} items is not allowed")
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1 and right * max(abs(left).bit_length(), 1) > MAX_POWER_BITS:
                raise SecurityError(f"a power larger than {MAX_POWER_BITS} bits is not allowed")
        return super().call_binop(context, operator, left, right)


def make_environment() -> ImmutableSandboxedEnvironment:
    env = PhraseSandbox(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
    # Opt-in: a template uses them explicitly, e.g. {{ sum | rubles }} (docs/filters.md).
    env.filters.update(FILTERS)
    return env


@dataclass(frozen=True)
class CompiledMessage:
    message: Message
    template: Any
    static: bool
    path: tuple[str, ...]


@dataclass(frozen=True)
class Rendered:
    """Outcome of one message for one record: a request, or the reason it failed."""

    message_id: str
    request: TtsRequest | None = None
    error: str | None = None


class Renderer:
    """Compiles a build's templates once and renders records against them."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.env = make_environment()
        self.messages: list[CompiledMessage] = []
        for m in build.messages:
            try:
                ast = self.env.parse(m.template)
                names = meta.find_undeclared_variables(ast)
                template = self.env.from_string(ast)
            except TemplateSyntaxError as exc:
                raise TemplateError(
                    f"message {m.id!r}: template does not compile: {exc.message} (line {exc.lineno})"
                ) from None
            self.messages.append(
                CompiledMessage(m, template, static=not names, path=tuple(m.value_from.split(".")))
            )
        s = build.settings
        self._static: dict[str, Rendered] = {}
        self._refused: set[str] = set()
        self._base = {
            "voice": build.voice,
            "speed": s.speed,
            "model": s.model,
            "volume": s.volume,
            "sample_rate": s.sample_rate,
            "call_centre_noise": s.call_centre_noise,
        }

    def request(self, text: str, message: Message) -> TtsRequest:
        return TtsRequest(text=text, reference_audio=message.audio, **self._base)

    def render(self, doc: dict[str, Any]) -> list[Rendered]:
        """Render every message of the build for one stored record document."""
        out: list[Rendered] = []
        for cm in self.messages:
            out.append(self._render_one(cm, doc))
        return out

    def _render_one(self, cm: CompiledMessage, doc: dict[str, Any]) -> Rendered:
        mid = cm.message.id
        if cm.static:
            # One phrase for the whole run, whatever the record holds.
            if mid not in self._static:
                self._static[mid] = self._render_scope(cm, {})
            return self._static[mid]
        scope: Any = doc
        for part in cm.path:
            if not isinstance(scope, dict) or part not in scope:
                return Rendered(mid, error=f"message {mid!r}: value_from {cm.message.value_from!r} not found in the record")
            scope = scope[part]
        if not isinstance(scope, dict):
            return Rendered(mid, error=f"message {mid!r}: value_from {cm.message.value_from!r} is not an object")
        return self._render_scope(cm, scope)

    def _render_scope(self, cm: CompiledMessage, scope: dict[str, Any]) -> Rendered:
        mid = cm.message.id
        try:
            text = normalise(cm.template.render({**scope, "fields": scope}))
        except UndefinedError as exc:
            return Rendered(mid, error=f"message {mid!r}: {exc.message}")
        except (SecurityError, OverflowError) as exc:  # OverflowError: the sandbox's range() cap
            # Logged once per message and renderer (a batch), not once per record.
            if mid not in self._refused:
                self._refused.add(mid)
                log.warning(
                    "SECURITY: template sandbox refused message %r of build %r: %s",
                    mid, self.build.build_id, exc,
                )
            return Rendered(mid, error=f"message {mid!r}: refused by the template sandbox: {exc}")
        except Exception as exc:  # a filter or test blowing up on one record's data
            return Rendered(mid, error=f"message {mid!r}: {type(exc).__name__}: {exc}")
        if not text:
            return Rendered(mid, error=f"message {mid!r}: rendered to an empty phrase")
        return Rendered(mid, request=self.request(text, cm.message))
