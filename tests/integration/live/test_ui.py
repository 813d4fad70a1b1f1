"""The trigger form of ``tts_precache`` in a real browser (headless Debian ``chromium`` driven by
Playwright) against a running Airflow: every conf field of CONTRACTS §2 is there with its title,
a bad value is refused in the form, and a run submitted from the form succeeds.

Saves a screenshot of the filled form to docs/img/trigger-form.png (for the README), or to
``PRECACHE_UI_SCREENSHOT`` when set.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration

DAG = "tts_precache"
CHROMIUM = os.environ.get("PRECACHE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(os.environ.get("PRECACHE_UI_SCREENSHOT") or REPO / "docs" / "img" / "trigger-form.png")
# CONTRACTS §2: conf field -> (form section, title shown in the form)
FIELDS = {
    "registry_id": ("Registry", "Registry id"),
    "build_id": ("Registry", "Build id"),
    "registry": ("Registry", "Registry source"),
    "collection": ("Options", "Integration collection"),
    "force": ("Options", "Force resynthesis"),
}
RECORDS = [{"fio": "Кузнецова Мария Павловна", "sum": "1500", "Дата платежа": "15.12.2026"}]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set PRECACHE_CHROMIUM)")
    from playwright.sync_api import sync_playwright  # a test dependency: fails loudly when missing

    with sync_playwright() as p:
        # Playwright's own browser download is not reachable here: drive the distribution's build.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, live_airflow: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 1400}, locale="en-US", timezone_id="UTC")
    ctx.set_default_timeout(30_000)
    pg = ctx.new_page()
    try:
        # Sign in through the simple auth manager's own login page.
        pg.goto(f"{live_airflow.base_url}/dags/{DAG}")
        pg.get_by_label("Username").fill(live_airflow.username)
        pg.get_by_label("Password").fill(live_airflow.password)
        pg.get_by_role("button", name="Sign in").click()
        pg.wait_for_url(f"**/dags/{DAG}")
        yield pg
    finally:
        ctx.close()


def control(dialog: Any, field: str) -> Any:
    """The form control of a Param: an input (its id), a switch's checkbox (its name) or an editor (its id)."""
    return dialog.locator(f'[id="element_{field}"], input[name="element_{field}"]').first


def open_section(dialog: Any, name: str) -> None:
    header = dialog.get_by_role("button", name=name, exact=True)
    if header.get_attribute("aria-expanded") != "true":
        header.click()
    assert header.get_attribute("aria-expanded") == "true"


def fill_json(page: Any, dialog: Any, field: str, value: Any) -> None:
    """Replaces the JSON editor's (Monaco) text; its auto-closed brackets are cut, then it is formatted."""
    dialog.locator(f"#element_{field} .monaco-editor").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(json.dumps(value, ensure_ascii=False))
    page.keyboard.press("Shift+Control+End")
    page.keyboard.press("Delete")
    page.keyboard.press("Shift+Alt+F")  # Format Document: readable in the screenshot
    text = dialog.locator(f"#element_{field} .view-lines").inner_text().replace("\u00a0", " ")
    assert json.loads(text) == value, text


def test_trigger_form_shows_every_conf_field_and_runs(page: Any, live_airflow: Any, mongo_db: Any) -> None:
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"Trigger Dag - {DAG}").wait_for()
    submit = dialog.get_by_role("button", name="Trigger", exact=True)

    # Every conf field of CONTRACTS §2, with its title and its Param's description, in its section.
    params = live_airflow.request("GET", f"/api/v2/dags/{DAG}/details").json()["params"]
    for field, (section, title) in FIELDS.items():
        open_section(dialog, section)
        element = control(dialog, field)
        element.wait_for(state="attached")  # a switch's <input> itself is hidden behind its control
        root = element.locator("xpath=ancestor::*[@data-part='root'][@role='group'][1]")
        label = root.locator("label[data-part=label]")
        assert label.is_visible(), field
        assert label.inner_text().replace("*", "").strip() == title
        assert root.locator("[data-part=helper-text]").inner_text() == params[field]["description"]
    open_section(dialog, "Options")
    assert dialog.locator("#element_collection").input_value() == "registry_records"  # the default
    assert not control(dialog, "force").is_checked()

    # Required fields empty: the form does not submit.
    open_section(dialog, "Registry")
    assert submit.is_disabled()
    dialog.locator("#element_build_id").fill("t3")
    fill_json(page, dialog, "registry", {"records": RECORDS})

    registry_id = "ui-form-0001"  # the MongoDB database is new for every session
    dialog.locator("#element_registry_id").fill(registry_id)
    page.wait_for_function("() => !document.querySelector('[data-testid=trigger-dag-submit]').disabled")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    dialog.screenshot(path=str(SCREENSHOT))

    # A registry id the schema refuses (the form checks no pattern itself): the API's 400, naming
    # the field, is shown in the form, and no run is created.
    before, count = {r["dag_run_id"] for r in live_airflow.runs(DAG)}, live_airflow.run_count(DAG)
    dialog.locator("#element_registry_id").fill("bad id")
    submit.click()
    dialog.get_by_text("Invalid input for param registry_id").wait_for()
    assert {r["dag_run_id"] for r in live_airflow.runs(DAG)} == before
    assert live_airflow.run_count(DAG) == count
    dialog.locator("#element_registry_id").fill(registry_id)

    submit.click()
    page.wait_for_url(f"**/dags/{DAG}/runs/**")
    run_id = unquote(page.url.rsplit("/runs/", 1)[1].split("?")[0].split("/")[0])
    assert run_id not in before

    run = live_airflow.run(DAG, run_id)
    assert run["triggered_by"] == "ui"
    assert run["conf"]["registry_id"] == registry_id
    assert run["conf"]["build_id"] == "t3"
    assert run["conf"]["registry"] == {"records": RECORDS}
    assert run["conf"]["collection"] == "registry_records"
    assert run["conf"]["force"] is False
    state = live_airflow.wait(DAG, run_id, timeout=300)
    assert state == "success", live_airflow.task_states(DAG, run_id)

    [doc] = mongo_db.registry_records.find({"registry_id": registry_id})
    assert doc["obj"] == RECORDS[0]
    assert doc["precache"]["status"] == "cached"
    assert doc["precache"]["run_id"] == run_id
