"""The real pipeline end to end, on a copy of the repository with the demo profile shrunk to seconds.

`dvc repro` runs every stage (each through Snakemake); then both tools report up to date, a changed
GAN learning rate makes both name train_gan (and Snakemake its downstream) only, and every
reproduced number in reports/table1.csv equals the one in results/evaluate/summary.json.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = {  # demo-profile overrides: same code path, toy sizes
    "download_data": {
        "datasets": ["demo_scenes", "demo_misc", "demo_test"],
        "demo_split": {"demo_scenes": ["rocket"], "demo_misc": ["immunohistochemistry"], "demo_test": ["chelsea"]},
    },
    "make_lr": {"subimage_size": 128, "subimage_step": 128},
    "make_seg_maps": {"min_categories": 1},
    "pretrain_psnr": {
        "num_feat": 8,
        "num_block": 1,
        "num_grow_ch": 8,
        "iters": 6,
        "batch_size": 2,
        "crop_size": 32,
        "lr_step": 4,
        "val_every": 3,
        "ckpt_every": 3,
        "log_every": 2,
    },
    "prune": {"batches": 2, "batch_size": 2, "crop_size": 32},
    "train_gan": {
        "iters": 2,
        "batch_size": 1,
        "perceptual_layer": "conv1_2",
        "d_num_feat": 4,
        "val_every": 1,
        "ckpt_every": 1,
        "log_every": 1,
    },
    "evaluate": {"timing_warmup": 0, "timing_repeats": 1},
    "render_reports": {"bootstrap_samples": 100, "grid_crop": 32},
}


def run(cmd, cwd, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def repo_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the repository")
    repo = tmp_path_factory.mktemp("repo")
    for name in repo_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for stage, values in TINY.items():
        params[stage]["demo"].update(values)
    # Outside methods: a BasicSR-format RRDBNet file and a folder of SR images made elsewhere.

    from spsagan.models.rrdb import RRDBNet

    torch.manual_seed(0)
    outside = RRDBNet(num_feat=8, num_block=1, num_grow_ch=8)
    torch.save({"params": outside.state_dict()}, repo / "outside_rrdb.pth")
    from spsagan.data.demo import demo_image
    from spsagan.image import imresize, modcrop, write_image

    hr = modcrop(demo_image("chelsea"), 4)
    write_image(repo / "outside_sr" / "demo_test" / "chelsea_x4.png", imresize(imresize(hr, 0.25), 4))
    params["evaluate"]["demo"]["published"] = {
        "published_rrdb": "outside_rrdb.pth",
        "SFTGAN": "downloads/published/SFTGAN_noBN_OST_bg.pth",
    }
    params["evaluate"]["demo"]["outside_folders"] = {"elsewhere": "outside_sr"}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run(["git", "init", "-q"], repo)
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", "copy"], repo)
    started = time.perf_counter()
    log = run([str(BIN / "dvc"), "repro"], repo)
    return repo, log, time.perf_counter() - started


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_through_snakemake(pipeline):
    repo, log, seconds = pipeline
    for stage in (
        "download_data",
        "make_lr",
        "make_seg_maps",
        "pretrain_psnr@rrdb",
        "prune",
        "pretrain_psnr@rrsb",
        "train_gan@esrgan",
        "train_gan@fa",
        "train_gan@spsa",
        "train_gan@spsagan",
        "train_gan@spsagan_s1",
        "evaluate",
        "study_report",
        "render_reports",
    ):
        assert f"Running stage '{stage}'" in log
    for name in (
        "table1.md",
        "table1.csv",
        "table1.tex",
        "ablation.md",
        "figures/fig11_crops.png",
        "figures/fig6_attention.png",
        "figures/fig5_pruning.png",
        "figures/inference_time.png",
        "figures/training_curves_psnr.png",
        "figures/training_curves_gan.png",
        "table1.html",
    ):
        assert (repo / "reports" / name).stat().st_size > 0, name
    table = (repo / "reports" / "table1.md").read_text()
    assert "demo" in table and "published_rrdb" in table and "elsewhere" in table
    # our retrained preset has its own column; a missing published file is named with its source
    rows = pd.read_csv(repo / "reports" / "table1.csv")
    reproduced = set(rows.loc[rows["source"] == "reproduced", "method"])
    assert "ESRGAN (retrained)" in reproduced and "ESRGAN" not in reproduced
    assert "SFTGAN: not evaluated, downloads/published/SFTGAN_noBN_OST_bg.pth not found; get it from" in table
    assert "not semantic categories" in (repo / "reports" / "table1.md").read_text()


@pytest.mark.slow
def test_noop_reruns_are_fast_and_run_nothing(pipeline):
    repo, _, _ = pipeline
    started = time.perf_counter()
    out = run([str(BIN / "snakemake"), "--cores", "all"], repo)
    # About 1 s on an idle machine (docs/pipeline.md, "Overhead"; benchmarks/bench_pipeline_overhead.py
    # measures it). The bound is loose on purpose: CI's other worker may be running the paper-size
    # rehearsal on the other core. A rerun fails the output checks; the bound catches a no-op that
    # takes many times its usual second.
    limit_s = 30.0
    assert "Nothing to be done" in out and time.perf_counter() - started < limit_s
    started = time.perf_counter()
    out = run([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage" not in out and time.perf_counter() - started < limit_s


@pytest.mark.slow
def test_table1_numbers_come_from_the_results_files(pipeline):
    repo, _, _ = pipeline
    summary = json.loads((repo / "results" / "evaluate" / "summary.json").read_text())
    table = pd.read_csv(repo / "reports" / "table1.csv")
    reproduced = table[table["source"] == "reproduced"]
    assert len(reproduced) == sum(len(per_set) for per_set in summary["methods"].values())
    for row in reproduced.itertuples():
        # A method trained with several seeds: the mean of its runs' set means (each run's, exactly).
        runs = list(summary["runs"].get(row.results_method, {}).values())
        assert row.runs == max(1, len(runs)), row
        for metric in ("psnr", "ssim", "niqe", "pi"):
            expected, got = summary["methods"][row.results_method][row.dataset][metric], getattr(row, metric)
            if row.results_method == "HR" and metric == "psnr":
                assert expected is None and got == math.inf  # the reference against itself
            elif expected is None:
                assert math.isnan(got), (row.results_method, metric)
            elif len(runs) > 1:
                values = [run[row.dataset][metric] for run in runs]
                assert float(got) == pytest.approx(sum(values) / len(values), rel=1e-12, abs=1e-12), row
                assert float(got) == pytest.approx(float(expected), rel=1e-9), row  # mean over every image
            else:
                assert float(got) == float(expected), (row.results_method, row.dataset, metric)


@pytest.mark.slow
def test_every_seed_is_trained_scored_and_counted(pipeline):
    """The demo trains its GAN presets with two seeds: evaluate scores both runs, the reports count them."""
    repo, _, _ = pipeline
    params = yaml.safe_load((repo / "params.yaml").read_text())
    seeds = params["train_gan"]["demo"]["seeds"]
    assert len(seeds) == 2
    per_image = pd.read_csv(repo / "results" / "evaluate" / "per_image.csv")
    for method in ("esrgan", "+fa", "+spsa", "spsagan"):
        assert sorted(per_image.loc[per_image["method"] == method, "seed"].unique()) == seeds, method
    assert per_image.loc[per_image["method"].isin(["bicubic", "HR", "published_rrdb"]), "seed"].isna().all()
    assert sorted(per_image.loc[per_image["method"] == "rrdb_psnr", "seed"].unique()) == [0]
    summary = json.loads((repo / "results" / "evaluate" / "summary.json").read_text())
    assert summary["costs"]["spsagan"]["seeds"] == seeds and summary["costs"]["spsagan"]["seed"] == seeds[0]
    # The second seed's runs: started from the PSNR model of seed 0 (the only PSNR seed), their own weights.
    from spsagan.models.modelfile import load_generator

    _, first = load_generator(repo / "results" / "train_gan" / "spsagan" / "model.pt")
    _, second = load_generator(repo / "results" / "train_gan" / "spsagan_s1" / "model.pt")
    assert first["params"]["seeds"] == [0] and second["params"]["seeds"] == [1]
    assert not all(torch.equal(a, b) for a, b in zip(first["params_g"].values(), second["params_g"].values()))
    claims = pd.read_csv(repo / "reports" / "claims.csv")
    assert 2 in set(claims["runs_a"]) | set(claims["runs_b"])  # the claims combine both runs of a preset


@pytest.mark.slow
def test_changed_gan_learning_rate_reruns_only_train_gan_and_downstream(pipeline):
    repo, _, _ = pipeline
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train_gan"]["demo"]["lr_g"] = 2.0e-4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([str(BIN / "snakemake"), "-n", "--quiet", "rules"], repo)
    jobs = {
        line.split()[0]
        for line in out.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit() and line.split()[0] not in ("all", "total")
    }
    assert jobs == {"train_gan", "evaluate", "render_reports"}
    stale = set(json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).strip().splitlines()[-1]))
    assert stale == {f"train_gan@{p}{s}" for p in ("esrgan", "fa", "spsa", "spsagan") for s in ("", "_s1")}


@pytest.mark.slow
def test_outside_folder_scores_like_the_same_images_made_here(pipeline):
    repo, _, _ = pipeline
    summary = json.loads((repo / "results" / "evaluate" / "summary.json").read_text())
    # The outside folder holds bicubic x4 made with the same imresize: identical scores.
    assert summary["methods"]["elsewhere"]["demo_test"] == summary["methods"]["bicubic"]["demo_test"]


@pytest.mark.slow
def test_pruned_model_matches_the_mask_of_the_prune_stage(pipeline):
    repo, _, _ = pipeline
    from spsagan.models.modelfile import load_generator

    prune = json.loads((repo / "results" / "prune" / "analysis" / "summary.json").read_text())
    mask = json.loads((repo / "results" / "prune" / "mask.json").read_text())
    model, ckpt = load_generator(repo / "results" / "pretrain_psnr" / "rrsb" / "model.pt")
    assert ckpt["arch"]["keep"] == mask
    assert sum(p.numel() for p in model.parameters()) == prune["params_rrsb"]


@pytest.mark.slow
def test_exported_esrgan_scores_exactly_like_the_preset_and_hr_is_a_column(pipeline):
    repo, _, _ = pipeline
    summary = json.loads((repo / "results" / "evaluate" / "summary.json").read_text())
    # The export is of the primary run (the first seed): it scores exactly like that run.
    assert summary["methods"]["esrgan (exported, esrgan layout)"] == summary["runs"]["esrgan"]["0"]
    assert (repo / "results" / "evaluate" / "exported" / "esrgan_x4_esrgan.pth").is_file()
    hr = summary["methods"]["HR"]["demo_test"]
    assert hr["psnr"] is None and hr["ssim"] == 1.0 and hr["niqe"] is not None  # PSNR of the reference: infinite
    table = pd.read_csv(repo / "reports" / "table1.csv")
    hr_row = table[(table["method"] == "HR") & (table["source"] == "reproduced")].iloc[0]
    assert hr_row["psnr"] == math.inf and hr_row["ssim"] == 1.0
