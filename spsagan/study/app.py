"""The study server (Flask): the blind study page, its JSON API, and a separate results page.

Study routes (what participants reach; method names never leave the server):
- `GET /`: the study page (static/study.html); it asks for an anonymous id once and keeps it in
  localStorage, so a participant who closes the tab resumes where they left off.
- `POST /api/participant` {"rater": ""} -> {"participant": id}; 409 when every design slot is taken.
- `GET /api/trial?participant=<id>` -> {"done": bool, "trial": {id, task, prompt, options: [{key,
  url}]} or null, "progress": {"done": k, "total": n}}.
- `POST /api/vote` {participant, trial, ranking: [keys best first] | choice: key} -> {"ok": true};
  refused with 4xx and {"error": message}, changing nothing (store.Store.vote).
- `GET /img/<id>`: a study image, looked up by its opaque id in the design (never a path).

Results routes (researchers; names shown): `GET /results`, `/results/api/index`, `/results/table1`
and `/results/img/<n>` (an index into the files found at start-up, never a path).

With a token, every request must carry it (`?token=`, the `X-Study-Token` header, or the cookie the
page sets from the link); others get 403.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from flask import Flask, abort, jsonify, request, send_file

from spsagan.errors import VoteError
from spsagan.image import list_images
from spsagan.reports.names import display_name
from spsagan.study.design import DB_NAME, GROUP_LABELS, HR, load_design
from spsagan.study.store import Store

STATIC = Path(__file__).parent / "static"
PROMPTS = {
    1: "Rank the images by visual quality: click them from best (1) to worst.",
    2: "Which image has the more natural, perception-friendly textures? Click it.",
}


def create_app(
    study: Path | None = None,
    run: Path | None = None,
    db: Path | None = None,
    token: str | None = None,
    results: bool = True,
) -> Flask:
    """The app for a study folder and/or a run's results (the repository root holding results/, reports/).

    db: the votes database (default `<study>/votes.sqlite`). results: serve the results page (it names
    the methods: keep it off where participants can reach the server).
    """
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    # Absolute paths: Flask's send_file reads relative ones against the package, not the cwd.
    study, run = (Path(p).resolve() if p else None for p in (study, run))
    store = Store(Path(db or study / DB_NAME), load_design(study)) if study else None
    images = study / "images" if study else None
    index, files = _results_index(run) if run and results else (None, [])
    app.config.update(STORE=store, TOKEN=token)

    @app.before_request
    def check_token():
        if not token:
            return None
        given = request.args.get("token") or request.headers.get("X-Study-Token") or request.cookies.get("study_token")
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return _error(403, "this study needs the token from your participant link (?token=...)")
        return None

    @app.after_request
    def remember_token(response):
        if token and request.args.get("token") == token:
            response.set_cookie("study_token", token, httponly=True, samesite="Strict")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(VoteError)
    def refused(err: VoteError):
        return _error(err.status, str(err))

    def need_store() -> Store:
        if store is None:
            abort(404)
        return store

    @app.get("/")
    def page():
        need_store()
        return send_file(STATIC / "study.html")

    @app.post("/api/participant")
    def participant():
        body = request.get_json(silent=True) or {}
        rater = body.get("rater", "")
        if not isinstance(rater, str):
            raise VoteError(400, "rater: a string ('' for a person)")
        return jsonify(participant=need_store().new_participant(rater)), 201

    @app.get("/api/trial")
    def trial():
        state = need_store().next_trial(request.args.get("participant", ""))
        t = state["trial"]
        out = None
        if t is not None:
            out = {
                "id": t["id"],
                "task": t["task"],
                "prompt": PROMPTS[t["task"]],
                "options": [{"key": o["key"], "url": f"/img/{o['image']}"} for o in t["options"]],
            }
        return jsonify(done=t is None, trial=out, progress={"done": state["done"], "total": state["total"]})

    @app.post("/api/vote")
    def vote():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise VoteError(400, "send a JSON object: {participant, trial, ranking | choice}")
        if extra := sorted(set(body) - {"participant", "trial", "ranking", "choice"}):
            raise VoteError(400, f"unknown fields {extra}: send participant, trial and ranking or choice")
        need_store().vote(body.get("participant"), body.get("trial"), body.get("ranking"), body.get("choice"))
        return jsonify(ok=True)

    @app.get("/img/<image_id>")
    def image(image_id: str):
        # A lookup in the design, never a path built from the request.
        if image_id not in need_store().design["images"]:
            abort(404)
        return send_file(images / f"{image_id}.png", mimetype="image/png")

    @app.get("/results")
    def results_page():
        if index is None:
            abort(404)
        return send_file(STATIC / "results.html")

    @app.get("/results/api/index")
    def results_index():
        if index is None:
            abort(404)
        return jsonify(index)

    @app.get("/results/table1")
    def table1():
        if index is None or not (path := run / "reports" / "table1.html").is_file():
            return _error(404, "no reports/table1.html: run the pipeline's render_reports stage")
        return send_file(path, mimetype="text/html")

    @app.get("/results/img/<int:n>")
    def results_image(n: int):
        if index is None or not 0 <= n < len(files):
            abort(404)
        return send_file(files[n], mimetype="image/png")

    return app


def _error(status: int, message: str):
    return jsonify(error=message), status


def _results_index(run: Path) -> tuple[dict, list[Path]]:
    """Every test image of the run with its panels: bicubic, each method, HR.

    Returns ({"datasets": [{name, images: [{name, panels: [{method, label, url}]}]}], "table1": bool},
    files); label is the method's report name.
    """
    sr_root, hr_root = run / "results" / "evaluate" / "sr", run / "results" / "make_lr"
    files: list[Path] = []
    datasets = []
    methods = sorted(p.name for p in sr_root.iterdir() if p.is_dir()) if sr_root.is_dir() else []
    methods.sort(key=lambda m: (m != "bicubic", m.lower()))
    for dataset in sorted({d.name for m in methods for d in (sr_root / m).iterdir() if d.is_dir()}):
        by_method = {m: list_images(sr_root / m / dataset) for m in methods if (sr_root / m / dataset).is_dir()}
        hr_dir = hr_root / dataset / "HR"
        by_method[HR] = list_images(hr_dir) if hr_dir.is_dir() else {}
        entries = []
        for name in sorted({n for found in by_method.values() for n in found}):
            panels = []
            for m in [*methods, HR]:
                if name in by_method.get(m, {}):
                    panels.append({"method": m, "label": display_name(m), "url": f"/results/img/{len(files)}"})
                    files.append(by_method[m][name].resolve())
            entries.append({"name": name, "panels": panels})
        datasets.append({"name": dataset, "images": entries})
    table1 = (run / "reports" / "table1.html").is_file()
    return {"datasets": datasets, "table1": table1, "groups": GROUP_LABELS}, files
