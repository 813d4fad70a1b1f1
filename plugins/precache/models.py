"""Pydantic models of everything that crosses a boundary of the pipeline.

Conf (CONTRACTS §2), the portal build (§4), the TTS request (§5) and the RabbitMQ
messages (§6). Validation errors name the field, so a bad input fails at the
first task that sees it with a message an operator can act on.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

QUEUE_PREFIX = "project.tts.precache."
REGISTRY_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
INLINE_RECORDS_LIMIT = 10_000
FORMATS = ("csv", "xlsx", "json", "jsonl")

RegistryId = Annotated[str, StringConstraints(pattern=REGISTRY_ID_PATTERN)]


def _not_reserved(v: str) -> str:
    # The store's own collections are all precache_*; system.* belongs to the server.
    if v.startswith(("system.", "precache_")):
        raise ValueError(f"collection {v!r} is reserved")
    return v


CollectionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,120}$"), AfterValidator(_not_reserved)]
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


def redact_url(url: str) -> str:
    """``url`` without userinfo, query or fragment: a signed URL's token is a credential."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + ("?…" if parts.query else "")


def describe_validation_error(exc: ValidationError, what: str) -> str:
    """Turn a pydantic error into one line per problem: ``field.path: message``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"{loc}: {err['msg']}")
    return f"invalid {what}: " + "; ".join(lines)


class RegistrySource(BaseModel):
    """Where the registry comes from: exactly one of path, url or inline records."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    url: str | None = None
    records: list[dict[str, Any]] | None = None
    # The seed's own flow: the integration script already wrote the records (step 7).
    stored: Literal[True] | None = None
    format: Literal["csv", "xlsx", "json", "jsonl"] | None = None
    encoding: str | None = None
    delimiter: str | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> RegistrySource:
        given = [k for k in ("path", "url", "records", "stored") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of 'path', 'url', 'records' or 'stored' is required, got "
                + (", ".join(given) if given else "none")
            )
        if self.records is not None and len(self.records) > INLINE_RECORDS_LIMIT:
            raise ValueError(
                f"'records' holds {len(self.records)} records; inline registries are limited to "
                f"{INLINE_RECORDS_LIMIT}, use 'path' or 'url' for bigger ones"
            )
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError("'url' must be an http:// or https:// address")
        if self.delimiter is not None and self.delimiter not in (";", ",", "\t", "|"):
            raise ValueError("'delimiter' must be one of ';', ',', tab or '|'")
        if self.encoding is not None:
            import codecs

            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(f"unknown encoding {self.encoding!r}") from None
        return self

    def resolved_format(self) -> str:
        """The format given, else inferred from the file extension of path/url."""
        if self.format:
            return self.format
        if self.records is not None:
            return "records"
        if self.stored:
            return "stored"
        name = (self.path or self.url or "").split("?")[0].lower()
        for fmt in FORMATS:
            if name.endswith("." + fmt):
                return fmt
        raise ValueError(
            f"registry format cannot be inferred from {name or '(empty)'!r}: "
            f"use a .csv/.xlsx/.json/.jsonl name or set registry.format"
        )

    def describe(self) -> str:
        """A short, content-free description for logs and XCom."""
        if self.records is not None:
            return f"inline ({len(self.records)} records)"
        if self.stored:
            return "records already in the collection"
        return str(self.path) if self.path is not None else redact_url(str(self.url))


class PrecacheConf(BaseModel):
    """The run conf of ``tts_precache`` (CONTRACTS §2)."""

    model_config = ConfigDict(extra="forbid")

    registry_id: RegistryId
    build_id: NonEmpty
    registry: RegistrySource
    collection: CollectionName = "registry_records"
    force: bool = False
    # A build in the portal's format (§4), used instead of looking build_id up: how a
    # precache request from kv.tts.precaching.v2 carries its messages and settings.
    build: dict[str, Any] | None = None


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class TtsSettings(BaseModel):
    """Build settings ``PRECACHE_*`` coerced from the portal's strings."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", allow_inf_nan=False)

    voice: str | None = Field(default=None, alias="PRECACHE_VOICE")
    speed: float = Field(default=1.0, alias="PRECACHE_SPEED", gt=0, le=10)
    model: str = Field(default="", alias="PRECACHE_MODEL_SERVER")
    queue: str | None = Field(default=None, alias="PRECACHE_PRECACHE_QUEUE")
    volume: float = Field(default=0.0, alias="PRECACHE_VOLUME_LEVEL")
    sample_rate: int = Field(default=8000, alias="PRECACHE_SAMPLE_RATE", gt=0)
    call_centre_noise: bool = Field(default=False, alias="PRECACHE_CALL_CENTRE_NOISE")

    @field_validator("voice", "queue", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            return None
        return v.strip() if isinstance(v, str) else v

    @field_validator("call_centre_noise", mode="before")
    @classmethod
    def _bool_words(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return v
        word = str(v).strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"expected one of true/false/1/0/yes/no, got {v!r}")

    @field_validator("queue")
    @classmethod
    def _queue_prefix(cls, v: str | None) -> str | None:
        if v is not None:
            check_queue_name(v)
        return v


def check_queue_name(name: str) -> str:
    """Refuse any queue this system must not declare or delete (CONTRACTS §6)."""
    if not name.startswith(QUEUE_PREFIX) or len(name) <= len(QUEUE_PREFIX) or len(name) > 255:
        raise ValueError(f"queue {name!r} is outside the allowed prefix {QUEUE_PREFIX!r}")
    return name


class Speaker(BaseModel):
    id: str
    name: str | None = None


class Message(BaseModel):
    """One message of a build: a Jinja template and where its names come from."""

    id: NonEmpty
    template: str
    audio: str | None = None
    value_from: str = "obj"

    @field_validator("value_from")
    @classmethod
    def _dot_path(cls, v: str) -> str:
        if not re.match(r"^[^.\s]+(\.[^.\s]+)*$", v):
            raise ValueError(f"value_from {v!r} is not a dot path such as 'obj' or 'obj.debt'")
        return v


class Build(BaseModel):
    """The portal's build document (CONTRACTS §4)."""

    build_id: str
    name: str | None = None
    speaker: Speaker
    settings: TtsSettings
    messages: list[Message]

    @field_validator("build_id", mode="before")
    @classmethod
    def _id_as_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @field_validator("messages")
    @classmethod
    def _some_messages(cls, v: list[Message]) -> list[Message]:
        if not v:
            raise ValueError("the build has no messages: nothing to precache")
        ids = [m.id for m in v]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate message ids: {', '.join(dupes)}")
        return v

    @property
    def voice(self) -> str:
        """PRECACHE_VOICE, or the speaker's id when it is empty or absent."""
        return self.settings.voice or self.speaker.id


class TtsRequest(BaseModel):
    """The body of ``POST /api/v1/tts`` (CONTRACTS §5)."""

    model_config = ConfigDict(allow_inf_nan=False)

    text: str
    voice: str
    speed: float
    model: str
    volume: float
    sample_rate: int
    call_centre_noise: bool
    reference_audio: str | None

    def canonical(self) -> str:
        return json.dumps(
            self.model_dump(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )

    def key(self) -> str:
        """Content address of the request: identical bodies share one key."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ProgressMessage(BaseModel):
    event: Literal["progress"] = "progress"
    registry_id: str
    dag_run_id: str
    processed: int
    total: int
    cached: int
    failed: int
    percent: float
    timestamp: str = Field(default_factory=utcnow_iso)


class Failure(BaseModel):
    row: int
    message_id: str | None
    reason: str


class CompletionMessage(BaseModel):
    event: Literal["completed"] = "completed"
    registry_id: str
    dag_run_id: str
    status: Literal["success", "partial", "failed"]
    total: int
    cached: int
    failed: int
    unique_phrases: int
    duration_s: float
    failures: list[Failure]
    report: str | None = None
    timestamp: str


class RequestMessage(BaseModel):
    """One message of a precache request: the seed's ``{"template", "audio", "value_from"}``."""

    model_config = ConfigDict(extra="forbid")

    id: NonEmpty | None = None
    template: str
    audio: str | None = None
    value_from: str = "obj"


class PrecacheRequest(BaseModel):
    """A precache request on ``kv.tts.precaching.v2`` (the seed's step 7; docs/contracts.md §8).

    The integration script has already written the registry's records into ``collection``
    and parsed the build itself, so the request carries the settings and messages.
    """

    model_config = ConfigDict(extra="forbid")

    registry_id: RegistryId
    collection: CollectionName = "registry_records"
    settings: dict[str, Any]
    messages: list[RequestMessage] = Field(min_length=1)
    # The seed lists the object's data fields; the records themselves are read from the collection.
    obj: list[str] | dict[str, Any] | None = None
    build_id: NonEmpty | None = None
    force: bool = False

    @field_validator("settings")
    @classmethod
    def _settings_coerce(cls, v: dict[str, Any]) -> dict[str, Any]:
        settings = TtsSettings.model_validate(v)
        if not settings.voice:
            raise ValueError("PRECACHE_VOICE is required in a request (there is no speaker to take it from)")
        return v

    def to_conf(self) -> dict[str, Any]:
        """The ``tts_precache`` conf that runs this request on the stored records."""
        build_id = self.build_id or "request"
        voice = str(self.settings["PRECACHE_VOICE"]).strip()  # present and non-blank: checked above
        return {
            "registry_id": self.registry_id,
            "build_id": build_id,
            "registry": {"stored": True},
            "collection": self.collection,
            "force": self.force,
            "build": {
                "build_id": build_id,
                "speaker": {"id": voice},
                "settings": {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in self.settings.items()},
                "messages": [
                    {"id": m.id or f"m{i}", "template": m.template, "audio": m.audio, "value_from": m.value_from}
                    for i, m in enumerate(self.messages, 1)
                ],
            },
        }


class InboxManifest(BaseModel):
    """``<name>.manifest.json`` beside a registry file in the inbox (CONTRACTS §7)."""

    model_config = ConfigDict(extra="forbid")

    build_id: NonEmpty
    registry_id: RegistryId | None = None
    collection: CollectionName | None = None
    format: Literal["csv", "xlsx", "json", "jsonl"] | None = None
    encoding: str | None = None
    delimiter: str | None = None
    force: bool = False
