"""render_reports' glue: column kinds and weights keys from evaluate's records, set means per seed,
the vote summary hook, and the claims inside table1.html."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spsagan.reports import claims, table1

ROOT = Path(__file__).resolve().parents[1]


def _step():
    spec = importlib.util.spec_from_file_location("render_reports_step", ROOT / "steps" / "render_reports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SUMMARY = {
    "costs": {
        "spsagan": {"preset": "spsagan", "iters": 40, "median_s": 0.3},
        "rrdb_psnr": {"preset": None, "iters": 1500, "median_s": 0.2},
        "ESRGAN": {"published": "esrgan_rrdbnet", "model_file": "downloads/RRDB_ESRGAN_x4.pth", "weights_key": None},
        "SRGAN": {"published": "basicsr_msrresnet", "model_file": "downloads/MSRGAN_x4.pth", "weights_key": "params"},
        "esrgan (exported, esrgan layout)": {"published": "esrgan_rrdbnet"},
    }
}


def test_kinds_and_weights_notes_from_the_records():
    step = _step()
    assert step.column_kinds(SUMMARY) == {
        "spsagan": "retrained",
        "rrdb_psnr": "retrained",
        "ESRGAN": "fixed",
        "SRGAN": "fixed",
        "esrgan (exported, esrgan layout)": "fixed",
    }
    assert step.weights_notes(SUMMARY) == [
        "ESRGAN: published weights RRDB_ESRGAN_x4.pth, a bare state dict",
        "SRGAN: published weights MSRGAN_x4.pth, key 'params'",
    ]


def _per_image(seeds: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for method, seeds_of in (("spsagan", seeds), ("bicubic", 1), ("HR", 1)):
        for seed in range(seeds_of):
            for k in range(12):
                rows.append(
                    {
                        "method": method,
                        "dataset": "BSD100",
                        "name": f"i{k}",
                        "seed": seed if method == "spsagan" else math.nan,
                        "psnr": math.inf if method == "HR" else 25 + rng.normal(0, 0.3),
                        "ssim": 0.65,
                        "niqe": 4.0,
                        "pi": math.nan,
                        "pi_reason": "pyiqa not installed",
                    }
                )
    return pd.DataFrame(rows)


def test_set_means_per_seed_and_table1_over_runs(tmp_path):
    step = _step()
    per_image = _per_image(seeds=3)
    means = step.set_means({}, per_image)
    assert (
        len(means[means["method"] == "spsagan"]) == 3 and means.loc[means["method"] == "HR", "psnr"].iloc[0] == math.inf
    )
    assert (means["pi_reason"] == "pyiqa not installed").all()
    verdicts = table1.reproduction_verdicts(means, [], per_image, seed=0, n_resamples=200)
    row = verdicts[(verdicts["method"] == "SPSAGAN") & (verdicts["metric"] == "psnr")].iloc[0]
    assert row["runs"] == 3 and math.isfinite(row["run_low"])
    assert row["reproduced"] == pytest.approx(per_image[per_image["method"] == "spsagan"]["psnr"].mean())


def test_votes_hook(tmp_path):
    step = _step()
    assert step.read_votes(None) is None
    (tmp_path / "votes.csv").write_text("task,images,opponent,wins,votes\npair,OST300,SFTGAN,200,300\n")
    votes = step.read_votes(tmp_path / "votes.csv")
    claim = next(c for c in claims.CLAIMS if c.key == "study_pairs")
    rows = claims.study_evidence(claim, votes)
    assert rows[0]["verdict"] == claims.SUPPORTED and rows[1]["why"].startswith("no pair votes against ESRGAN")
    (tmp_path / "bad.csv").write_text("task,wins\npair,3\n")
    with pytest.raises(ValueError, match=r"bad.csv: lacks column\(s\) images, opponent, votes"):
        step.read_votes(tmp_path / "bad.csv")


def test_table1_html_holds_the_claims(tmp_path):
    per_image = _per_image(seeds=1)
    summary, details = claims.evaluate_claims(per_image, {}, [], 0, 200)
    fragment = claims.claims_html(summary, details, "demo", [], 0, 200)
    means = per_image.groupby(["method", "dataset"])[["psnr", "ssim", "niqe", "pi"]].mean().reset_index()
    out = [tmp_path / f"table1.{s}" for s in ("md", "csv", "tex", "html")]
    page = table1.render_table1(means, "demo", [], out, appendix_html=fragment)["html"].read_text()
    assert "<h2>The paper's claims</h2>" in page and page.index("The paper's claims") < page.index("<h2>Notes</h2>")
