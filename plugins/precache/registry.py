"""Streaming registry readers: CSV, XLSX, JSON, JSONL and inline records.

Every reader yields one ``dict`` per record, in file order, and never holds the
whole registry in memory. Errors are ``RegistryError`` naming the file and the
row (1-based record number, header excluded) or line involved.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from precache.models import RegistrySource, redact_url

SNIFF_BYTES = 64 * 1024
DELIMITERS = (";", ",", "\t")


class RegistryError(ValueError):
    """A registry that cannot be read; the message says what and where."""


def detect_encoding(head: bytes) -> str:
    """UTF-8 with BOM, else UTF-8 if the head decodes as such, else Windows-1251.

    Only these three are promised (CONTRACTS §2), so a strict UTF-8 probe is more
    predictable than a statistical guesser: cp1251 text is almost never valid UTF-8.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still UTF-8.
        if exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            return "utf-8"
        return "cp1251"


def detect_delimiter(header_line: str) -> str:
    """The candidate that occurs most often in the header line (``;`` wins ties)."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ";"


def _unique_header(header: list[str], where: str) -> list[str]:
    names = [h.replace("\ufeff", "").strip() for h in header]
    # Excel exports often end the header with empty cells (a trailing ';', formatted columns).
    while names and not names[-1]:
        names.pop()
    if not any(names):
        raise RegistryError(f"{where}: the header row is empty")
    seen: set[str] = set()
    for i, name in enumerate(names, 1):
        if not name:
            raise RegistryError(f"{where}: header column {i} has no name")
        if name in seen:
            raise RegistryError(f"{where}: duplicate header name {name!r} (column {i})")
        seen.add(name)
    return names


def iter_csv(
    stream: IO[bytes], where: str, encoding: str | None = None, delimiter: str | None = None
) -> Iterator[dict[str, Any]]:
    """Yield CSV rows as dicts keyed by the header; values stay strings."""
    buffered = io.BufferedReader(stream, buffer_size=SNIFF_BYTES)  # type: ignore[arg-type]
    head = buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    if not head.strip():
        raise RegistryError(f"{where}: the file is empty")
    enc = encoding or detect_encoding(head)
    # Decoded line by line, so that undecodable bytes are reported at their own line
    # (a TextIOWrapper decodes 8 KiB ahead and could only say "somewhere after row N").
    pos = {"line": 0}
    decoder = codecs.getincrementaldecoder(enc)(errors="strict")

    def lines() -> Iterator[str]:
        for raw in buffered:
            pos["line"] += 1
            yield decoder.decode(raw)
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    text = lines()
    row = 0
    try:
        first = next(text, "")
        delim = delimiter or detect_delimiter(first)
        header = _unique_header(next(csv.reader([first], delimiter=delim)), where)
        reader = csv.reader(text, delimiter=delim)
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            row += 1
            if len(cells) > len(header) and not any(c.strip() for c in cells[len(header):]):
                cells = cells[: len(header)]
            if len(cells) != len(header):
                raise RegistryError(
                    f"{where}: row {row} (line {reader.line_num + 1}) has {len(cells)} fields, "
                    f"the header has {len(header)}"
                )
            yield dict(zip(header, cells))
    except UnicodeDecodeError as exc:
        where_in = "in the header (line 1" if pos["line"] <= 1 else f"at row {row + 1} (line {pos['line']}"
        raise RegistryError(
            f"{where}: cannot decode as {enc} {where_in}, byte {exc.start + 1}): {exc.reason}; "
            f"set registry.encoding"
        ) from None
    except csv.Error as exc:
        raise RegistryError(f"{where}: malformed CSV near row {row + 1}: {exc}") from None


def iter_xlsx(path: Path, where: str) -> Iterator[dict[str, Any]]:
    """Yield the first sheet's rows; cells become strings, as in CSV."""
    from openpyxl import load_workbook

    if path.stat().st_size == 0:
        raise RegistryError(f"{where}: the file is empty")
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException alike
        raise RegistryError(f"{where}: not a readable XLSX workbook ({exc})") from None
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        first = next(rows, None)
        if first is None:
            raise RegistryError(f"{where}: the sheet is empty")
        header = _unique_header(["" if c is None else str(c) for c in first], where)
        row = 0
        for cells in rows:
            values = ["" if c is None else _cell_text(c) for c in cells]
            if not any(v.strip() for v in values):
                continue
            row += 1
            if len(values) > len(header) and any(v.strip() for v in values[len(header):]):
                raise RegistryError(f"{where}: row {row} has values beyond the header's columns")
            values = (values + [""] * len(header))[: len(header)]
            yield dict(zip(header, values))
    finally:
        wb.close()


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


JSON_LOCATE_MAX_BYTES = 64 << 20


def _json_error_position(stream: IO[bytes]) -> json.JSONDecodeError | None:
    """The first JSON error with its line and column, for files small enough to parse again."""
    try:
        stream.seek(0, os.SEEK_END)
        if stream.tell() > JSON_LOCATE_MAX_BYTES:
            return None
        stream.seek(0)
        json.loads(stream.read().decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        return exc
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return None


def iter_json(stream: IO[bytes], where: str) -> Iterator[dict[str, Any]]:
    """Yield the objects of a top-level JSON array, streamed with ijson."""
    import ijson

    head = stream.read(SNIFF_BYTES)
    if not head.strip() or head.strip() == codecs.BOM_UTF8:
        raise RegistryError(f"{where}: the file is empty")
    stream.seek(3 if head.startswith(codecs.BOM_UTF8) else 0)
    row = 0
    try:
        for item in ijson.items(stream, "item", use_float=True):
            row += 1
            if not isinstance(item, dict):
                raise RegistryError(f"{where}: record {row} is not a JSON object")
            yield item
    except ijson.JSONError as exc:
        # ijson's own message spans lines (a snippet and an arrow): keep its first line only.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        at = _json_error_position(stream)
        if at is not None:
            raise RegistryError(
                f"{where}: invalid JSON after record {row}, at line {at.lineno}, column {at.colno}: {at.msg}"
            ) from None
        raise RegistryError(f"{where}: invalid JSON after record {row}: {first}") from None
    if row == 0:
        raise RegistryError(f"{where}: no records (expected a JSON array of objects)")


def iter_jsonl(stream: IO[bytes], where: str) -> Iterator[dict[str, Any]]:
    """Yield one object per non-blank line."""
    row = 0
    for line_no, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw.decode("utf-8-sig" if line_no == 1 else "utf-8"))
        except UnicodeDecodeError as exc:
            raise RegistryError(
                f"{where}: line {line_no} is not UTF-8 ({exc.reason} at byte {exc.start + 1}); JSON Lines must be UTF-8"
            ) from None
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{where}: invalid JSON at line {line_no}, column {exc.pos + 1}: {exc.msg}") from None
        if not isinstance(item, dict):
            raise RegistryError(f"{where}: line {line_no} is not a JSON object")
        row += 1
        yield item
    if row == 0:
        raise RegistryError(f"{where}: the file is empty")


def allowed_path(raw: str, roots: list[Path]) -> Path:
    """Resolve symlinks and ``..``, then require the file to sit under one of ``roots``."""
    path = Path(raw).expanduser().resolve()
    if roots and not any(path.is_relative_to(r.resolve()) for r in roots):
        raise RegistryError(
            f"registry.path {raw!r} is outside the allowed roots "
            f"({', '.join(str(r) for r in roots)}; see PRECACHE_REGISTRY_ROOTS)"
        )
    if not path.is_file():
        raise RegistryError(f"registry.path {raw!r}: no such file")
    return path


def _scrub(text: str, url: str) -> str:
    """``text`` without the URL's credentials: userinfo and query (a signed URL's token)."""
    parts = urlsplit(url)
    for secret in (parts.query, parts.password, parts.username):
        if secret:
            text = text.replace(secret, "…")
    return text


def _cut_connection(resp: Any) -> None:
    # Unblocks a read waiting on a server that trickles bytes (a per-read timeout never fires).
    sock = getattr(getattr(resp.raw, "_connection", None), "sock", None)
    with contextlib.suppress(Exception):
        sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def _download(url: str, max_bytes: int, timeout: float) -> Iterator[Path]:
    """Download to a temporary file: http(s) only, at most ``max_bytes``, within ``timeout`` seconds in all."""
    import requests

    shown = redact_url(url)
    if urlsplit(url).scheme not in ("http", "https"):
        raise RegistryError(f"registry.url {shown}: only http:// and https:// addresses are allowed")
    fd, tmp = tempfile.mkstemp(prefix="registry-")
    deadline = time.monotonic() + timeout
    late = threading.Event()
    try:
        with requests.get(url, stream=True, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
            if resp.status_code != 200:
                raise RegistryError(f"registry.url {shown}: HTTP {resp.status_code}")
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise RegistryError(f"registry.url {shown}: {declared} bytes, larger than the {max_bytes}-byte cap")
            watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), lambda: (late.set(), _cut_connection(resp)))
            watchdog.daemon = True
            watchdog.start()
            try:
                size = 0
                for chunk in resp.iter_content(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise RegistryError(f"registry.url {shown}: larger than the {max_bytes}-byte cap")
                    if late.is_set():
                        break
                    out.write(chunk)
            finally:
                watchdog.cancel()
            if late.is_set() or time.monotonic() > deadline:
                raise RegistryError(f"registry.url {shown}: download not finished within {timeout:g}s")
        yield Path(tmp)
    except requests.RequestException as exc:
        if late.is_set():
            raise RegistryError(f"registry.url {shown}: download not finished within {timeout:g}s") from None
        if isinstance(exc, requests.Timeout):
            raise RegistryError(f"registry.url {shown}: no answer within {timeout:g}s") from None
        raise RegistryError(f"registry.url {shown}: download failed: {_scrub(str(exc), url)}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def opened_registry(
    source: RegistrySource,
    roots: list[Path] | None = None,
    max_download_bytes: int = 2 << 30,
    download_timeout: float = 60.0,
) -> Iterator[Callable[[], Iterator[dict[str, Any]]]]:
    """Make the source local (a URL is downloaded once) and yield a record-iterator factory.

    Each call of the factory reads the records again from the start, in order.
    """
    if source.records is not None:
        records = source.records
        yield lambda: iter(records)
        return
    try:
        fmt = source.resolved_format()
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    with contextlib.ExitStack() as stack:
        if source.url is not None:
            path = stack.enter_context(_download(source.url, max_download_bytes, download_timeout))
            where = redact_url(source.url)
        else:
            assert source.path is not None
            path = allowed_path(source.path, roots or [])
            where = str(source.path)

        def read() -> Iterator[dict[str, Any]]:
            if fmt == "xlsx":
                yield from iter_xlsx(path, where)
                return
            with open(path, "rb") as stream:
                if fmt == "csv":
                    yield from iter_csv(stream, where, source.encoding, source.delimiter)
                elif fmt == "json":
                    yield from iter_json(stream, where)
                else:
                    yield from iter_jsonl(stream, where)

        yield read


def iter_records(source: RegistrySource, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Yield the records of any registry source, in order (see ``opened_registry``)."""
    with opened_registry(source, **kwargs) as records:
        yield from records()
