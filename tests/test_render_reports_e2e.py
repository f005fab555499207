"""steps/render_reports.py end to end on small fake results folders: two training runs per model, a
published column, per-repeat times; Table 1, the ablation and the claims all written."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from spsagan.image import write_image
from spsagan.models.modelfile import save_model
from spsagan.models.presets import build_generator, preset_arch
from spsagan.pruning import decide_mask, ds_rows
from spsagan.reports import claims
from spsagan.segmentation.run import prior_from_lq
from spsagan.segmentation.standin import StandInSegmenter
from spsagan.segmentation.storage import save_seg

ROOT = Path(__file__).resolve().parents[1]
DATASET, NAMES, SEEDS = "demo_test", ["im0", "im1", "im2"], 2
RETRAINED = ["rrdb_psnr", "rrsb_psnr", "esrgan", "+fa", "+spsa", "spsagan"]
METHODS = ["bicubic", "HR", *RETRAINED, "published_rrdb"]


def _inputs(root: Path) -> dict[str, Path]:
    """make_lr, make_seg_maps, prune, evaluate and training outputs as render_reports reads them."""
    rng = np.random.default_rng(0)
    segmenter = StandInSegmenter(seed=0)
    meta = {"segmenter": segmenter.label, "segmenter_label": segmenter.label, "semantic": False}
    for name in NAMES:
        hr = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
        write_image(root / "make_lr" / DATASET / "HR" / f"{name}.png", hr)
        write_image(root / "make_lr" / DATASET / "LR_x4" / f"{name}.png", hr[::4, ::4])
        save_seg(root / "seg" / DATASET / f"{name}.npz", prior_from_lq(segmenter, hr[::4, ::4]), meta)
        for m in METHODS:
            write_image(root / "sr" / m / DATASET / f"{name}.png", rng.integers(0, 256, (64, 64, 3)).astype(np.uint8))
    (root / "make_lr" / DATASET / "provenance.json").write_text(json.dumps({"stand_in": True}))
    (root / "seg" / "summary.json").write_text(json.dumps({"semantic": False, "segmenter": "standin"}))
    (root / "seg" / "figures").mkdir()
    (root / "prune").mkdir()  # prune's data, as steps/prune.py writes it (render_reports draws Fig. 5)
    ds = np.random.default_rng(1).uniform(0.05, 0.6, (1, 3, 3))
    upper, lower = np.triu_indices(3, k=1)
    ds[:, upper, lower] = np.nan  # i >= l: undefined, as measure_dissimilarity leaves it
    pd.DataFrame(ds_rows(ds)).to_csv(root / "prune" / "ds.csv", index=False)
    prune_summary = {"scope": "shared", "dense_blocks": 1, "keep": decide_mask(ds), "train_sets": [DATASET]}
    (root / "prune" / "summary.json").write_text(json.dumps(prune_summary))
    torch.manual_seed(0)
    model = build_generator(preset_arch("+spsa", num_feat=8, num_block=1, num_grow_ch=4))
    save_model(root / "model.pt", model, preset="+spsa", step=1, params={}, segmenter=segmenter.label)
    live = root / "live" / "plots" / "metrics" / "train"
    live.mkdir(parents=True)
    (live / "l1.tsv").write_text("timestamp\tstep\tl1\n0\t1\t0.5\n0\t2\t0.4\n")

    rows = []
    for m in METHODS:
        for seed in range(SEEDS) if m in RETRAINED else [math.nan]:
            for name in NAMES:
                psnr = math.inf if m == "HR" else 25 + rng.normal()
                rows.append({"method": m, "dataset": DATASET, "name": name, "seed": seed, "psnr": psnr, "ssim": 0.7})
                rows[-1].update(niqe=4 + rng.normal(), ma=math.nan, pi=math.nan, pi_reason="pyiqa not installed")
    per_image = pd.DataFrame(rows)
    per_image.to_csv(root / "per_image.csv", index=False, float_format="%.6f")
    costs = {}
    for m in [*RETRAINED, "published_rrdb"]:
        times = [list(0.1 + rng.normal(0, 0.001, 5)) for _ in NAMES]
        costs[m] = {"params": 1000, "flops": 2e9, "size": [16, 16], "median_s": 0.1, "times_s": times, "images": 3}
        costs[m].update(sizes=[[16, 16]] * 3, device="cpu", dtype="float32", statistic="median", timing_scope="forward")
        if m == "published_rrdb":
            costs[m].update(published="basicsr_rrdbnet", model_file="x/RRDB_x4.pth", weights_key="params")
        else:
            costs[m].update(preset=m, iters=40, num_block=1, num_feat=8, crop_size=64, train_precision="float32")
    means = {m: {DATASET: {"psnr": None, "ssim": 0.7, "niqe": 4.0, "pi": None, "pi_reason": ""}} for m in METHODS}
    summary = {"profile": "demo", "methods": means, "costs": costs, "skipped": []}
    (root / "summary.json").write_text(json.dumps(summary))
    return {"root": root, "out": root / "reports"}


@pytest.mark.slow
def test_render_reports_writes_every_report_over_two_seeds(tmp_path):
    paths = _inputs(tmp_path)
    root, out = paths["root"], paths["out"]
    command = [
        *(sys.executable, "steps/render_reports.py", "--params", "params.yaml"),
        *("--lr-root", root / "make_lr", "--seg", root / "seg", "--prune", root / "prune"),
        *("--summary", root / "summary.json", "--per-image", root / "per_image.csv", "--sr", root / "sr"),
        *("--attention-model", root / "model.pt", "--figures", out / "figures"),
        *("--live", f"pretrain_psnr/rrdb={root / 'live'}"),
        *("--table1", *(out / f"table1.{s}" for s in ("md", "csv", "tex", "html"))),
        *("--ablation", out / "ablation.md", out / "ablation.csv", "--claims", out / "claims.md", out / "claims.csv"),
    ]
    done = subprocess.run([str(c) for c in command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    text = (out / "claims.md").read_text(encoding="utf-8")
    assert all(c.words in text for c in claims.CLAIMS)
    assert "Runs (seeds) per retrained method: RRDB (PSNR) 2" in text
    assert "PI not available; NIQE shown for information; the run uses stand-ins" in text
    assert "<h2>The paper's claims</h2>" in (out / "table1.html").read_text(encoding="utf-8")
    table = pd.read_csv(out / "table1.csv")
    spsagan = table[(table["source"] == "reproduced") & (table["method"] == "SPSAGAN")].iloc[0]
    assert spsagan["runs"] == 2 and spsagan["kind"] == "retrained"
    assert "published_rrdb: published weights RRDB_x4.pth, key 'params'" in (out / "table1.md").read_text()
    assert "| +FA | " in (out / "ablation.md").read_text(encoding="utf-8")
