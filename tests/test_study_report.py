"""Simulated raters through the HTTP API, the export, and the study section with Fig. 9 and 10."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from study_fixtures import fake_run, make_study

from spsagan.image import write_image
from spsagan.metrics import niqe
from spsagan.reports.claims import VOTE_COLUMNS
from spsagan.study import cli
from spsagan.study.app import create_app
from spsagan.study.export import COLUMNS, export_votes
from spsagan.study.report import render_study
from spsagan.study.simulate import serving, simulate

torch.set_num_threads(1)


def test_without_votes_the_section_says_how_to_run_the_study(tmp_path):
    assert render_study(tmp_path / "missing.csv", tmp_path / "reports") == {"votes": 0}
    text = (tmp_path / "reports/study.md").read_text()
    assert "spsagan-study create" in text and "spsagan-study serve" in text and "spsagan-study export" in text
    assert json.loads((tmp_path / "reports/study/stats.json").read_text()) == {"votes": 0}
    assert not list((tmp_path / "reports/study").glob("*.png"))
    header_only = tmp_path / "votes.csv"
    header_only.write_text(",".join(COLUMNS) + "\n")  # as git keeps study/votes.csv before a study
    assert render_study(header_only, tmp_path / "reports") == {"votes": 0}
    assert "No votes yet" in (tmp_path / "reports/study.md").read_text()
    committed = Path(__file__).parents[1] / "study/votes.csv"
    assert committed.read_text().splitlines()[0] == ",".join(COLUMNS)


def test_simulated_study_end_to_end(tmp_path):
    """create -> serve -> 3 simulated raters over HTTP -> export -> Fig. 9/10 and the section, labelled."""
    study, design = make_study(tmp_path)
    store_app = create_app(study, results=False)
    with serving(store_app) as url:
        done = simulate(url, raters=3, seed=0)
    assert [d["kind"] for d in done] == ["random", "niqe", "random"] and all(d["votes"] == 12 for d in done)
    out = tmp_path / "results/study/votes.csv"
    assert export_votes(store_app.config["STORE"], out) == 36
    rows = list(csv.DictReader(out.open()))
    assert {r["simulated"] for r in rows} == {"1"}
    assert {r["rater"] for r in rows} == {"simulated-random", "simulated-niqe"}

    result = render_study(out, tmp_path / "reports", n_resamples=500, summary_path=tmp_path / "summary.csv")
    assert pd.read_csv(tmp_path / "summary.csv").empty  # simulated votes decide no claim
    text = (tmp_path / "reports/study.md").read_text()
    assert "SIMULATED" in text and "**Simulated votes**: 3 scripted raters" in text
    assert result["label"] == "SIMULATED raters" and result["votes"] == 36
    for fig in ("fig9_user_study.png", "fig10_user_study.png"):
        with Image.open(tmp_path / "reports/study" / fig) as img:
            assert img.size[0] > 400
    # both image groups are reported apart, each ranked method with 3 raters' votes
    assert set(result["task1"]) == {"ost", "other"}
    ost = result["task1"]["ost"]
    assert set(ost["frequencies"]) == {"SRResNet", "SAN", "spsagan", "HR"}
    assert all(sum(f) == 3 * 2 for f in ost["frequencies"].values())  # 3 raters x 2 category images
    pairs = {(g, m) for g in ("ost", "other") for m in design["pair_methods"]}
    assert {(r["group"], r["other"]) for r in result["task2"]} == pairs
    assert "| OST | SPSAGAN vs ESRGAN |" in text and "out-of-category" in text


def test_people_and_scripted_raters_are_told_apart():
    from spsagan.study.report import _label

    votes = pd.DataFrame({"participant": ["p", "p", "q", "r"], "simulated": [0, 0, 1, 0]})
    title, sentence = _label(votes)
    assert "1 SIMULATED" in title and "2 people and 1 scripted" in sentence
    assert _label(votes.assign(simulated=0)) == ("User study", "3 raters.")


def test_niqe_rater_prefers_lower_niqe(tmp_path):
    fake_run(tmp_path, size=(192, 192))
    study, design = make_study(tmp_path, participants=2, category_n=1, other_n=0, patch=96, zoom=2)
    app = create_app(study, results=False)
    with serving(app) as url:
        simulate(url, raters=2, seed=0, noise=0.0)  # rater 1 is the NIQE rater
    store = app.config["STORE"]
    votes = [v for v in store.rows() if v["rater"] == "simulated-niqe"]
    assert len(votes) == 4
    for v in votes:
        _, trial = store.trials[v["trial"]]
        shown = {o["key"]: np.asarray(Image.open(study / "images" / f"{o['image']}.png")) for o in trial["options"]}
        scores = {key: niqe(img) for key, img in shown.items()}
        assert v["answer"] == sorted(scores, key=scores.get)[: len(v["answer"])]


def test_cli_create_simulate_export(tmp_path, monkeypatch, capsys):
    fake_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    sets = ["--category-sets", "OSTx", "--category-n", "1", "--other-sets", "", "--participants", "2", "--patch", "32"]
    cli.main(["create", *sets])  # into results/study, the default
    assert "2 rater slots of 4 trials" in capsys.readouterr().out
    cli.main(["simulate", "--raters", "2"])
    assert "8 SIMULATED votes" in capsys.readouterr().out
    cli.main(["export"])
    assert (tmp_path / "study/votes.csv").is_file() and "8 votes" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="holds the votes of a study"):
        cli.main(["create", *sets])  # a new design would lose the votes
    cli.main(["create", *sets, "--force"])
    assert not (tmp_path / "results/study/votes.sqlite").exists()
    cli.main(["create", "--out", "more", "--category-sets", "OSTx", "--category-n", "10", "--other-sets", ""])
    assert "ost: 4 images per rater, not 10: the run has no more" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="Set5"):
        cli.main(["create", "--out", "other", "--other-sets", "Set5", "--category-sets", "OSTx"])
    with pytest.raises(SystemExit, match="no votes yet"):
        cli.main(["export", "--db", "nowhere.sqlite"])
    cli.main(["simulate", "--raters", "2"])
    with pytest.raises(SystemExit, match="study is full"):
        cli.main(["simulate", "--raters", "1"])


DEMO_CREATE = (
    "create --category-sets demo_test --category-n 3 --other-sets '' "
    "--rank-methods rrdb_psnr,esrgan,spsagan --target spsagan --pair-methods esrgan,+fa,+spsa"
)


def test_the_demo_command_of_docs_study_md(tmp_path, monkeypatch, capsys):
    """The command docs/study.md gives for the demo works on the demo's layout of methods and sets."""
    rng = np.random.default_rng(0)
    folders = ["bicubic", "rrdb_psnr", "rrsb_psnr", "esrgan", "+fa", "+spsa", "spsagan"]
    folders.append("esrgan (exported, esrgan layout)")
    for name, shape in {"astronaut": (64, 64), "chelsea": (60, 80), "coffee": (64, 96)}.items():
        img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        write_image(tmp_path / "results/make_lr/demo_test/HR" / f"{name}.png", img)
        for folder in folders:
            write_image(tmp_path / "results/evaluate/sr" / folder / "demo_test" / f"{name}.png", img)
    assert "demo_test" in (Path(__file__).parents[1] / "docs/study.md").read_text()
    assert DEMO_CREATE in (Path(__file__).parents[1] / "docs/study.md").read_text()
    monkeypatch.chdir(tmp_path)
    cli.main(shlex.split(DEMO_CREATE))
    out = capsys.readouterr().out
    assert "30 rater slots of 12 trials" in out and "task 1 ranks rrdb_psnr, esrgan, spsagan, HR" in out
    assert "images per rater" not in out  # the 3 images asked for are all there


def test_the_study_report_step(tmp_path):
    """steps/study_report.py as the DAG runs it: params inline, paths as flags."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    votes = tmp_path / "votes.csv"
    votes.write_text(",".join(COLUMNS) + "\n")
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, str(root / "steps/study_report.py"), "--params", '{"bootstrap_samples": 200, "seed": 0}']
    flags = ["--votes", str(votes), "--report", str(tmp_path / "r/study.md"), "--figures", str(tmp_path / "r/study")]
    flags += ["--vote-summary", str(tmp_path / "summary.csv")]
    out = subprocess.run([*cmd, *flags], env=env, capture_output=True, text=True, cwd=root)  # steps run at the root
    assert out.returncode == 0, out.stderr
    assert "0 votes" in out.stdout and "No votes yet" in (tmp_path / "r/study.md").read_text()
    assert (tmp_path / "summary.csv").read_text().strip() == ",".join(VOTE_COLUMNS)  # the claims' format
    bad = subprocess.run([*cmd[:-1], '{"seed": 0}', *flags], env=env, capture_output=True, text=True, cwd=root)
    assert bad.returncode == 1 and "bootstrap_samples" in bad.stderr
