"""Batch planning of the mapped cache tasks."""

from __future__ import annotations

import pytest

from precache.planning import plan_batches


def test_250():
    assert plan_batches(250) == [{"start": 1, "end": 100}, {"start": 101, "end": 200},
                                 {"start": 201, "end": 250}]


@pytest.mark.parametrize("total", [0, -5])
def test_nothing(total):
    assert plan_batches(total) == []


def test_exactly_100_and_1():
    assert plan_batches(100) == [{"start": 1, "end": 100}]
    assert plan_batches(1) == [{"start": 1, "end": 1}]


def test_100_000_is_1000_batches_of_100():
    b = plan_batches(100_000)
    assert len(b) == 1000
    assert all(x["end"] - x["start"] + 1 == 100 for x in b)
    assert b[-1] == {"start": 99_901, "end": 100_000}


@pytest.mark.parametrize("total", [100_001, 123_457, 1_000_000, 1_000_001])
def test_big_registries_stay_under_the_map_limit(total):
    b = plan_batches(total)
    assert len(b) <= 1000
    assert b[0]["start"] == 1 and b[-1]["end"] == total
    for prev, nxt in zip(b, b[1:]):
        assert nxt["start"] == prev["end"] + 1
    sizes = [x["end"] - x["start"] + 1 for x in b]
    assert all(s > 0 and s % 100 == 0 for s in sizes[:-1])
    assert 0 < sizes[-1] <= sizes[0]
    assert sum(sizes) == total


def test_1_000_000_exact():
    b = plan_batches(1_000_000)
    assert len(b) == 1000
    assert b[1] == {"start": 1001, "end": 2000}


def test_custom_batch_size():
    assert plan_batches(25, batch_size=10, max_batches=2) == [{"start": 1, "end": 20}, {"start": 21, "end": 25}]
