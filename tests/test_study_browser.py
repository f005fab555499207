"""End to end in a real browser: headless Chromium votes by clicking, and the database and the
export hold exactly those votes. Skips without Playwright or Debian's /usr/bin/chromium (.ci/run
installs it). SPSAGAN_STUDY_SCREENSHOTS=<folder> also saves the screenshots there (docs/study/)."""

from __future__ import annotations

import csv
import json
import os
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from study_fixtures import fake_run, make_study

from spsagan.study.app import create_app
from spsagan.study.export import export_votes
from spsagan.study.simulate import serving

CHROMIUM = Path(os.environ.get("SPSAGAN_STUDY_CHROMIUM", "/usr/bin/chromium"))  # Debian's package
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM} (apt-get install chromium)")
CLICKED = 5
BLURS = ["bicubic", "blur_0.4", "blur_0.8", "blur_1.2", "blur_1.6", "blur_2.0", "blur_2.4"]
BLUR_STUDY = dict(
    rank_methods=["blur_0.8", "blur_1.6", "blur_0.4"],
    target="blur_0.4",
    pair_methods=["blur_0.8", "blur_1.2", "blur_2.0"],
)


def current(url: str, pid: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/trial?participant={pid}") as response:
        return json.loads(response.read())


@pytest.fixture()
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


def save(page, tmp_path: Path, name: str) -> None:
    """Screenshot of the page's content (not the empty viewport below it)."""
    path = tmp_path / "screenshots" / f"{name}.png"
    page.locator("body").screenshot(path=str(path))
    if folder := os.environ.get("SPSAGAN_STUDY_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        with Image.open(path) as img:  # a 128-colour palette keeps the docs' PNGs small
            img.convert("RGB").quantize(128).save(Path(folder) / path.name, optimize=True)


def test_clicking_through_trials_records_exactly_those_votes(tmp_path, browser):
    # "methods" named for what they are (the photo blurred with sigma 0.4 ... 2.4), so that no
    # screenshot of the fixture passes for a result of the paper's methods
    fake_run(tmp_path, size=(192, 256), photos=True, methods=BLURS)
    study, design = make_study(tmp_path, patch=64, zoom=3, **BLUR_STUDY)
    app = create_app(study, run=tmp_path)
    expect = sync_api.expect
    with serving(app) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(f"{url}/")
        expect(page.locator("#progress")).to_have_text("Trial 1 of 12")
        pid = page.evaluate("localStorage.getItem('spsagan-study-participant')")
        clicked, shots = {}, set()
        i = 0
        while i < CLICKED or len(shots) < 2:  # a few trials, at least one of each task
            trial = current(url, pid)["trial"]
            keys = [o["key"] for o in trial["options"]]
            expect(page.locator(".option")).to_have_count(len(keys))
            page.wait_for_function("[...document.querySelectorAll('.option img')].every((i) => i.complete)")
            if trial["task"] == 1:
                order = keys[::-1] if i % 2 else keys
                for key in order:
                    page.click(f".option[data-key='{key}']")
                expect(page.locator("#submit")).to_be_enabled()
                if "study_ranking" not in shots:
                    shots.add("study_ranking")
                    save(page, tmp_path, "study_ranking")
                page.click("#submit")
            else:
                order = [keys[i % 2]]
                if "study_pair" not in shots:
                    shots.add("study_pair")
                    save(page, tmp_path, "study_pair")
                page.click(f".option[data-key='{order[0]}']")
            clicked[trial["id"]] = order
            i += 1
            expect(page.locator("#progress")).to_have_text(f"Trial {i + 1} of 12")
        # closing the tab and coming back resumes at the next trial, same participant
        page.close()
        page = context.new_page()
        page.goto(f"{url}/")
        expect(page.locator("#progress")).to_have_text(f"Trial {i + 1} of 12")
        assert page.evaluate("localStorage.getItem('spsagan-study-participant')") == pid
        context.close()

        # the results page: every panel follows one zoom and pan
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/results")
        expect(page.locator(".panel")).to_have_count(8)  # bicubic, 6 methods, HR
        page.wait_for_function("[...document.querySelectorAll('.viewport img')].every((i) => i.complete)")
        page.fill("#crop-x", "40")
        page.fill("#crop-y", "60")
        page.fill("#crop-size", "48")
        page.click("#show-crop")
        page.mouse.move(*_centre(page, ".viewport >> nth=2"))
        page.mouse.wheel(0, -100)
        transforms = page.eval_on_selector_all(".viewport img", "els => els.map((e) => e.style.transform)")
        assert len(set(transforms)) == 1 and "scale" in transforms[0]
        save(page, tmp_path, "results_side_by_side")

    store = app.config["STORE"]
    rows = store.rows()
    assert {r["trial"]: r["answer"] for r in rows} == clicked and {r["participant"] for r in rows} == {pid}
    out = tmp_path / "votes.csv"
    assert export_votes(store, out) == len(clicked) == i
    exported = list(csv.DictReader(out.open()))
    assert sorted(r["trial"] for r in exported) == sorted(clicked)
    assert {r["simulated"] for r in exported} == {"0"}
    assert shots == {"study_ranking", "study_pair"} and len(list((tmp_path / "screenshots").glob("*.png"))) == 3


def _centre(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_the_participant_link_with_a_token_works_and_the_bare_address_does_not(tmp_path, browser):
    study, _ = make_study(tmp_path)
    with serving(create_app(study, token="s3cret", results=False)) as url:
        page = browser.new_page()
        assert page.goto(f"{url}/").status == 403
        page.goto(f"{url}/?token=s3cret")
        sync_api.expect(page.locator("#progress")).to_have_text("Trial 1 of 12")
        page.wait_for_function("[...document.querySelectorAll('.option img')].every((i) => i.complete)")
        widths = page.eval_on_selector_all(".option img", "els => els.map((e) => e.naturalWidth)")
        assert widths and all(w > 0 for w in widths)  # the images came through the token cookie
