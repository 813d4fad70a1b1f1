"""From asset events of the request queue to ``tts_precache`` runs (``tts_precache_requests``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from precache.models import PrecacheConf, describe_validation_error
from precache.triggers.requests import request_run_id

log = logging.getLogger(__name__)


def runs_from_events(events: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """One ``{"conf", "trigger_run_id"}`` per distinct request among the triggering events.

    Several requests that arrive between two scheduler loops come as one DAG run; a request
    delivered twice (a triggerer restart) keeps its run id and is started once.
    """
    runs: dict[str, dict[str, Any]] = {}
    for asset_events in events.values():
        for ev in asset_events:
            payload = (getattr(ev, "extra", None) or {}).get("payload") or {}
            if "conf" not in payload or "request_id" not in payload:
                log.warning("Asset event without a precache request, ignored: %s", sorted(payload))
                continue
            try:
                PrecacheConf.model_validate(payload["conf"])
            except ValidationError as exc:
                log.error("Request %s: %s", payload["request_id"], describe_validation_error(exc, "conf"))
                continue
            run_id = request_run_id(str(payload["request_id"]))
            runs.setdefault(run_id, {"conf": payload["conf"], "trigger_run_id": run_id})
    log.info("%d precache request(s) to run: %s", len(runs), ", ".join(runs) or "none")
    return list(runs.values())
