"""The inbox of scheduled imports (CONTRACTS §7), as plain functions ``tts_precache_inbox`` calls.

A registry file ``<name>.<csv|xlsx|json|jsonl>`` is picked up once its manifest
``<name>.manifest.json`` stands beside it (uploaders write the manifest last, so a file
still being copied is never read). Each file starts one ``tts_precache`` run; afterwards
it moves to ``processed/`` or, with ``<name>.error.txt`` saying why, to ``failed/``.
Content already imported (same SHA-256) is not imported again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from precache.models import FORMATS, InboxManifest, describe_validation_error

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
PROCESSED = "processed"
FAILED = "failed"


class InboxLedger(Protocol):
    """Where imported content hashes are kept (``precache_inbox`` in MongoDB)."""

    def inbox_imported(self, sha256: str) -> dict[str, Any] | None: ...

    def mark_inbox_imported(self, sha256: str, fields: dict[str, Any]) -> None: ...


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def registry_id_for(name: str) -> str:
    """A registry id derived from a file name: the allowed characters kept, the rest as ``-``."""
    rid = re.sub(r"[^A-Za-z0-9._:-]+", "-", name).strip("-.")[:100]
    if not re.search(r"[A-Za-z0-9]", rid):
        # A name of other letters only (Cyrillic): keep it distinct by a short hash of the name.
        rid = "inbox-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return rid


def _move(src: Path, dest_dir: Path) -> Path:
    """Move ``src`` into ``dest_dir``; an older file of the same name is kept, not overwritten."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    if dest.exists():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        dest = dest_dir / f"{src.name}.{stamp}"
    shutil.move(str(src), dest)
    return dest


def fail_file(inbox: Path, name: str, files: list[Path], reason: str) -> None:
    """Move a registry file and its manifest to ``failed/`` with ``<name>.error.txt``."""
    failed = inbox / FAILED
    for f in files:
        if f.exists():
            _move(f, failed)
    (failed / f"{name}.error.txt").write_text(reason.rstrip() + "\n", encoding="utf-8")
    log.warning("Inbox: %s failed: %s", name, reason)


def _read_manifest(path: Path) -> InboxManifest:
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"manifest {path.name}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"manifest {path.name}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"manifest {path.name}: expected a JSON object, got {type(raw).__name__}")
    try:
        return InboxManifest.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, f"manifest {path.name}")) from None


def scan(
    inbox: Path,
    ledger: InboxLedger,
    run_stamp: str,
    validate_conf: Callable[[dict[str, Any]], Any],
    max_files: int = 100,
) -> list[dict[str, Any]]:
    """Find the registry files to import now; settle at once what cannot be imported.

    Returns one small descriptor per file: names, hash, the ``tts_precache`` conf and the
    run id to start it under (deterministic within one inbox run, so a retry of the
    trigger cannot start a second run for the same file).
    """
    if not inbox.is_dir():
        raise FileNotFoundError(f"PRECACHE_INBOX_DIR {str(inbox)!r} is not a directory")
    found: list[dict[str, Any]] = []
    for manifest in sorted(inbox.glob("*" + MANIFEST_SUFFIX)):
        name = manifest.name[: -len(MANIFEST_SUFFIX)]
        siblings = sorted(
            p for p in inbox.iterdir()
            if p.is_file() and p != manifest and p.name.startswith(name + ".") and "." not in p.name[len(name) + 1:]
        )
        if not siblings:
            log.info("Inbox: manifest %s has no registry file beside it yet; left for the next run", manifest.name)
            continue
        if len(siblings) > 1:
            fail_file(inbox, name, [*siblings, manifest],
                      f"{len(siblings)} registry files for one manifest ({', '.join(p.name for p in siblings)}): "
                      "keep one file per manifest")
            continue
        file = siblings[0]
        ext = file.suffix.lstrip(".").lower()
        if ext not in FORMATS:
            fail_file(inbox, name, [file, manifest],
                      f"{file.name}: unknown format '.{ext}'; expected one of " + ", ".join("." + f for f in FORMATS))
            continue
        try:
            man = _read_manifest(manifest)
        except ValueError as exc:
            fail_file(inbox, name, [file, manifest], str(exc))
            continue
        sha = sha256_of(file)
        earlier = ledger.inbox_imported(sha)
        if earlier is not None:
            processed = inbox / PROCESSED
            _move(file, processed)
            _move(manifest, processed)
            note = (f"{file.name}: the same content (sha256 {sha}) was imported before as {earlier.get('file')!r}, "
                    f"registry {earlier.get('registry_id')!r}, run {earlier.get('run_id')!r}; not imported again\n")
            (processed / f"{name}.duplicate.txt").write_text(note, encoding="utf-8")
            log.info("Inbox: %s", note.strip())
            continue
        registry_id = man.registry_id or registry_id_for(name)
        source: dict[str, Any] = {"path": str(file)}
        source.update({k: v for k, v in (("format", man.format), ("encoding", man.encoding), ("delimiter", man.delimiter)) if v})
        conf: dict[str, Any] = {"registry_id": registry_id, "build_id": man.build_id, "registry": source, "force": man.force}
        if man.collection:
            conf["collection"] = man.collection
        try:
            validate_conf(conf)
        except ValueError as exc:
            fail_file(inbox, name, [file, manifest], f"{file.name}: {exc}")
            continue
        if len(found) >= max_files:
            log.info("Inbox: more than %d files; %s waits for the next run", max_files, file.name)
            continue
        found.append({
            "name": name, "file": str(file), "manifest": str(manifest), "sha256": sha,
            "registry_id": registry_id, "conf": conf,
            "run_id": f"inbox__{registry_id}__{sha[:12]}__{run_stamp}"[:250],
        })
    log.info("Inbox %s: %s", inbox, f"{len(found)} file(s) to import" if found else "nothing to import")
    return found


def trigger_kwargs(desc: dict[str, Any]) -> dict[str, Any]:
    """Arguments of one mapped ``TriggerDagRunOperator`` for one inbox file."""
    return {"conf": desc["conf"], "trigger_run_id": desc["run_id"]}


def settle(
    inbox: Path,
    descs: list[dict[str, Any]],
    run_state: Callable[[str], str | None],
    failure_reason: Callable[[str], str | None],
    ledger: InboxLedger,
) -> dict[str, Any]:
    """Move each file by its run's outcome; record imported content first (a crash between
    the two leaves a file the next scan recognises as already imported)."""
    summary: dict[str, Any] = {"imported": [], "failed": []}
    for d in descs:
        file, manifest = Path(d["file"]), Path(d["manifest"])
        state = run_state(d["run_id"])
        if state == "success":
            ledger.mark_inbox_imported(d["sha256"], {
                "file": file.name, "registry_id": d["registry_id"], "run_id": d["run_id"],
                "at": datetime.now(timezone.utc),
            })
            for f in (file, manifest):
                if f.exists():
                    _move(f, inbox / PROCESSED)
            summary["imported"].append(file.name)
            continue
        if state in (None, "failed"):
            why = failure_reason(d["run_id"]) or ("the run was never started" if state is None else "the run failed")
            fail_file(inbox, d["name"], [file, manifest],
                      f"{file.name}: tts_precache run {d['run_id']!r} {state or 'not started'}: {why}")
            summary["failed"].append(file.name)
            continue
        log.warning("Inbox: run %s of %s is still %s; the file stays for the next inbox run", d["run_id"], file.name, state)
    log.info("Inbox: imported %d, failed %d", len(summary["imported"]), len(summary["failed"]))
    return summary
