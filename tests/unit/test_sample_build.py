"""The shipped demo build renders every shipped sample record, with the Russian filters."""

from __future__ import annotations

import json
from pathlib import Path

from precache.models import Build
from precache.registry import iter_records
from precache.models import RegistrySource
from precache.rendering import Renderer

REPO = Path(__file__).resolve().parents[2]


def test_demo_build_renders_the_sample_registry() -> None:
    renderer = Renderer(Build.model_validate(json.loads((REPO / "standins/builds/4021.json").read_text("utf-8"))))
    records = list(iter_records(RegistrySource(path=str(REPO / "samples/debtors.csv"))))
    assert len(records) == 1000
    texts = set()
    for obj in records:
        out = renderer.render({"obj": obj})
        assert [r.error for r in out] == [None, None, None]
        texts.update(r.request.text for r in out)
    first = [r.request.text for r in renderer.render({"obj": records[0]})]
    assert first[1] == ("Ваша задолженность пять тысяч шестьсот восемьдесят три рубля на 1 февраля 2026 года. "
                        "Оплатите до 4 декабря 2026 года.")
    assert len(texts) == 1487  # what the demo run reports as unique phrases
