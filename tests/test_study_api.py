"""The study server's API through Flask's test client: blind trials, refused votes, resume, token."""

from __future__ import annotations

import csv
import json

import pytest
from study_fixtures import METHODS, make_study

from spsagan.study.app import create_app
from spsagan.study.export import COLUMNS, export_votes

NAMES = [*METHODS, "SPSAGAN", "HR"]


@pytest.fixture()
def study(tmp_path):
    folder, design = make_study(tmp_path)
    app = create_app(folder, run=tmp_path)
    return app, app.test_client(), design


def join(client):
    response = client.post("/api/participant", json={})
    assert response.status_code == 201
    return response.get_json()["participant"]


def next_trial(client, pid):
    response = client.get(f"/api/trial?participant={pid}")
    assert response.status_code == 200
    return response.get_json()


def answer(trial):
    keys = [o["key"] for o in trial["options"]]
    return {"ranking": keys[::-1]} if trial["task"] == 1 else {"choice": keys[0]}


def vote(client, pid, trial_id, **body):
    return client.post("/api/vote", json={"participant": pid, "trial": trial_id, **body})


def n_votes(app):
    return len(app.config["STORE"].rows())


def test_trials_are_blind_and_count_progress(study):
    app, client, design = study
    pid = join(client)
    state = next_trial(client, pid)
    assert state["progress"] == {"done": 0, "total": 12} and not state["done"]
    trial = state["trial"]
    assert set(trial) == {"id", "task", "prompt", "options"}
    assert all(set(o) == {"key", "url"} and o["url"].startswith("/img/") for o in trial["options"])
    for url in ["/", "/static/study.js", "/static/study.html"]:
        page = client.get(url).get_data(as_text=True)
        assert not any(name in page for name in ("SRResNet", "SPSAGAN", "NatSR", "SFTGAN"))
    # the whole study, answered: no response ever names a method
    seen = []
    while not state["done"]:
        text = json.dumps(state)
        assert not [name for name in NAMES if name in text], text
        seen.append(state["trial"]["id"])
        assert vote(client, pid, state["trial"]["id"], **answer(state["trial"])).status_code == 200
        state = next_trial(client, pid)
    assert state["progress"] == {"done": 12, "total": 12} and state["trial"] is None
    assert seen == [t["id"] for t in design["slots"][0]]
    image = client.get(f"/img/{design['slots'][0][0]['options'][0]['image']}")
    assert image.status_code == 200 and image.mimetype == "image/png"


def test_refused_votes_change_nothing(study):
    app, client, design = study
    a, b = join(client), join(client)
    trial = next_trial(client, a)["trial"]
    keys = [o["key"] for o in trial["options"]]
    other_trial = next_trial(client, b)["trial"]
    pair = next(t for t in design["slots"][0] if t["task"] == 2)
    rank = next(t for t in design["slots"][0] if t["task"] == 1)
    rank_keys = [o["key"] for o in rank["options"]]
    cases = [
        (404, vote(client, a, "s999-t000", **answer(trial)), "unknown trial"),
        (404, vote(client, "nobody", trial["id"], **answer(trial)), "unknown participant"),
        (403, vote(client, a, other_trial["id"], **answer(other_trial)), "another participant"),
        (400, vote(client, a, pair["id"], choice="z"), "not an option shown"),
        (400, vote(client, a, rank["id"], ranking=[*rank_keys[:-1], "z"]), "not shown"),
        (400, vote(client, a, rank["id"], ranking=rank_keys[:-1]), "exactly once"),
        (400, vote(client, a, rank["id"], ranking=[rank_keys[0]] * len(rank_keys)), "exactly once"),
        (400, vote(client, a, rank["id"], ranking="abcd"), "ranking"),
        (400, vote(client, a, rank["id"], choice=rank_keys[0]), "ranking"),
        (400, vote(client, a, pair["id"], ranking=["a", "b"]), "choice"),
        (400, vote(client, a, pair["id"], choice="a", extra=1), "unknown fields"),
        (400, client.post("/api/vote", data="not json", content_type="application/json"), "JSON object"),
        (400, vote(client, 7, trial["id"], **answer(trial)), "participant"),
    ]
    for status, response, words in cases:
        assert response.status_code == status, (words, response.get_json())
        assert words in response.get_json()["error"], (words, response.get_json())
    assert n_votes(app) == 0 and next_trial(client, a)["progress"]["done"] == 0
    assert vote(client, a, trial["id"], **answer(trial)).status_code == 200
    again = (
        vote(client, a, trial["id"], ranking=keys)
        if trial["task"] == 1
        else vote(client, a, trial["id"], choice=keys[-1])
    )
    assert again.status_code == 409 and "already answered" in again.get_json()["error"]
    assert n_votes(app) == 1
    first = answer(trial)
    assert app.config["STORE"].rows()[0]["answer"] == first.get("ranking", [first.get("choice")])


def test_resume_and_a_full_study(study):
    app, client, design = study
    pid = join(client)
    for _ in range(3):
        t = next_trial(client, pid)["trial"]
        vote(client, pid, t["id"], **answer(t))
    # a new tab (or a new server on the same database) with the same id goes on at trial 4
    fresh = create_app(app.config["STORE"].path.parent, db=app.config["STORE"].path).test_client()
    state = next_trial(fresh, pid)
    assert state["progress"]["done"] == 3 and state["trial"]["id"] == design["slots"][0][3]["id"]
    join(client), join(client)
    full = client.post("/api/participant", json={})
    assert full.status_code == 409 and "full" in full.get_json()["error"]
    assert client.get("/api/trial?participant=unknown").status_code == 404


def test_images_only_by_opaque_id(study):
    app, client, design = study
    key = next(iter(design["images"]))
    assert client.get(f"/img/{key}").status_code == 200
    for bad in [
        "/img/../design.json",
        "/img/..%2Fdesign.json",
        "/img/%2e%2e%2fvotes.sqlite",
        "/img/design",
        f"/img/{key}.png",
        "/img/" + "0" * 20,
        "/static/../design.json",
        "/results/img/999",
        "/results/img/-1",
    ]:
        assert client.get(bad).status_code == 404, bad


def test_token_required_in_every_request(tmp_path):
    folder, design = make_study(tmp_path)
    client = create_app(folder, token="s3cret", results=False).test_client()
    for url in ["/", "/static/study.js", "/api/trial?participant=x", "/img/" + next(iter(design["images"]))]:
        assert client.get(url).status_code == 403
    assert client.post("/api/participant", json={}).status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    assert "token" in client.get("/").get_json()["error"]
    pid = client.post("/api/participant?token=s3cret", json={}).get_json()["participant"]
    headers = {"X-Study-Token": "s3cret"}
    assert client.get(f"/api/trial?participant={pid}", headers=headers).status_code == 200
    # the page link sets a cookie, so the page's own requests (images, scripts) carry the token
    browser = create_app(folder, token="s3cret", results=False).test_client()
    assert browser.get("/?token=s3cret").status_code == 200
    assert browser.get("/static/study.js").status_code == 200
    assert browser.get("/results").status_code == 404  # the results page is off here


def test_results_page_is_separate_and_names_methods(study):
    app, client, design = study
    assert client.get("/results").status_code == 200
    index = client.get("/results/api/index").get_json()
    assert [d["name"] for d in index["datasets"]] == ["OSTx", "SetY"]
    panels = [p["method"] for p in index["datasets"][0]["images"][0]["panels"]]
    assert panels[0] == "bicubic" and panels[-1] == "HR" and set(panels) == {*METHODS, "HR"}
    assert client.get(index["datasets"][0]["images"][0]["panels"][-1]["url"]).status_code == 200
    assert client.get("/results/table1").status_code == 404 and not index["table1"]
    (tmp := app.config["STORE"].path.parents[1] / "reports").mkdir()
    (tmp / "table1.html").write_text("<table><tr><td>Table 1</td></tr></table>")
    assert b"Table 1" in client.get("/results/table1").data
    assert create_app(app.config["STORE"].path.parent).test_client().get("/results").status_code == 404


def test_export_one_sorted_row_per_vote(study, tmp_path):
    app, client, design = study
    pids = [join(client) for _ in range(2)]
    for pid in pids[::-1]:
        for _ in range(5):
            t = next_trial(client, pid)["trial"]
            vote(client, pid, t["id"], **answer(t))
    out = tmp_path / "results/study/votes.csv"
    assert export_votes(app.config["STORE"], out) == 10
    first = out.read_bytes()
    assert export_votes(app.config["STORE"], out) == 10 and out.read_bytes() == first
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == COLUMNS
    assert [(r["slot"], r["trial"]) for r in rows] == sorted((r["slot"], r["trial"]) for r in rows)
    assert {r["simulated"] for r in rows} == {"0"}
    by_id = {t["id"]: t for s in design["slots"] for t in s}
    for r in rows:
        t = by_id[r["trial"]]
        shown = [o["method"] for o in t["options"]]
        assert r["shown"] == ";".join(shown)
        if t["task"] == 1:
            assert r["ranking"] == ";".join(shown[::-1])  # answer() ranks the shown order reversed
        else:
            assert r["choice"] == shown[0] and r["target_won"] == str(int(shown[0] == "spsagan"))


def test_results_page_alone(tmp_path):
    make_study(tmp_path)
    client = create_app(None, run=tmp_path).test_client()  # spsagan-study serve --no-study
    assert client.get("/results").status_code == 200 and client.get("/results/api/index").status_code == 200
    for url in ["/", "/api/trial?participant=x", "/img/x"]:
        assert client.get(url).status_code == 404
    assert client.post("/api/participant", json={}).status_code == 404
