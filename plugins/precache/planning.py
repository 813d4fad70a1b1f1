"""Batch planning: bounds of the mapped cache tasks, small enough for XCom."""

from __future__ import annotations

import math


def plan_batches(total: int, batch_size: int = 100, max_batches: int = 1000) -> list[dict[str, int]]:
    """Split rows ``1..total`` into contiguous ``{"start", "end"}`` batches (inclusive).

    Batches hold ``batch_size`` rows unless that would exceed ``max_batches`` mapped
    task instances (``[core] max_map_length`` is 1024); then each batch grows to a
    multiple of ``batch_size`` and reports progress every ``batch_size`` rows inside.
    """
    if total <= 0:
        return []
    size = batch_size
    if math.ceil(total / size) > max_batches:
        size = math.ceil(total / max_batches / batch_size) * batch_size
    return [{"start": s, "end": min(s + size - 1, total)} for s in range(1, total + 1, size)]
