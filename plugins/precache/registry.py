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
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from precache.models import RegistrySource

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
    text = io.TextIOWrapper(buffered, encoding=enc, newline="", errors="strict")
    try:
        first = text.readline()
        delim = delimiter or detect_delimiter(first)
        header = _unique_header(next(csv.reader([first], delimiter=delim)), where)
        reader = csv.reader(text, delimiter=delim)
        row = 0
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
        raise RegistryError(
            f"{where}: cannot decode as {enc} after row {locals().get('row', 0)}: {exc.reason}; "
            f"set registry.encoding"
        ) from None
    except csv.Error as exc:
        raise RegistryError(f"{where}: malformed CSV near row {locals().get('row', 0) + 1}: {exc}") from None


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


def iter_json(stream: IO[bytes], where: str) -> Iterator[dict[str, Any]]:
    """Yield the objects of a top-level JSON array, streamed with ijson."""
    import ijson

    if stream.read(3) != codecs.BOM_UTF8:
        stream.seek(0)
    row = 0
    try:
        for item in ijson.items(stream, "item", use_float=True):
            row += 1
            if not isinstance(item, dict):
                raise RegistryError(f"{where}: record {row} is not a JSON object")
            yield item
    except ijson.JSONError as exc:
        raise RegistryError(f"{where}: invalid JSON after record {row}: {exc}") from None
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
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{where}: invalid JSON at line {line_no}: {exc}") from None
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


@contextlib.contextmanager
def _download(url: str, max_bytes: int, timeout: float) -> Iterator[Path]:
    import requests

    fd, tmp = tempfile.mkstemp(prefix="registry-")
    try:
        with requests.get(url, stream=True, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
            if resp.status_code != 200:
                raise RegistryError(f"registry.url {url}: HTTP {resp.status_code}")
            size = 0
            for chunk in resp.iter_content(1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise RegistryError(f"registry.url {url}: larger than the {max_bytes}-byte cap")
                out.write(chunk)
        yield Path(tmp)
    except requests.RequestException as exc:
        raise RegistryError(f"registry.url {url}: download failed: {exc}") from None
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
            where = source.url
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
