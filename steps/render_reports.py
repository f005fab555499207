"""render_reports: Table 1, the ablation and the paper's figures, every number from the results files.

Writes `<out>/table1.{md,csv,tex}`, `<out>/ablation.{md,csv}` and `<out>/figures/`:
`fig11_crops.png` (the same crops from each preset), `fig6_attention.png` (image, segmentation,
beta_fea, beta_seg and beta for one query pixel of the trained spsagan), `inference_time.png`
(RRDB vs RRSB), `training_curves.png`, `fig5_pruning.png` and `segmentation_<image>.png`.
"""

import json
import shutil
from pathlib import Path

import pandas as pd
import torch

from spsagan.atomic import atomic_dir
from spsagan.image import read_image, to_tensor
from spsagan.models.presets import load_generator
from spsagan.pipeline.step import main_guard, parse, stage_parser
from spsagan.reports import data_standins
from spsagan.reports.ablation import render_ablation
from spsagan.reports.figures import attention_figure, crop_grid, inference_time_chart, training_curves
from spsagan.reports.table1 import render_table1
from spsagan.segmentation.classes import STANDIN_NOTE, channel_names
from spsagan.segmentation.storage import load_seg

PRESETS = ["esrgan", "+fa", "+spsa", "spsagan"]
LIVE_DIRS = {"pretrain_psnr/rrdb": "pretrain_psnr/rrdb/live", "pretrain_psnr/rrsb": "pretrain_psnr/rrsb/live",
             **{f"train_gan/{p}": f"train_gan/{p}/live" for p in ("esrgan", "fa", "spsa", "spsagan")}}


def stand_ins(results: Path, summary: dict) -> list[str]:
    """What the numbers depend on that is not the paper's setting, read from the results files."""
    notes = data_standins(results / "make_lr", sorted(p.name for p in (results / "make_lr").iterdir()))
    seg = json.loads((results / "make_seg_maps" / "summary.json").read_text())
    if not seg.get("semantic", True):
        notes.append(f"segmentation prior: {seg['segmenter']} ({STANDIN_NOTE})")
    vgg = {c.get("perceptual") for c in summary["costs"].values() if c.get("perceptual")}
    notes += [f"perceptual loss: {v} instead of ImageNet VGG19" for v in sorted(vgg) if "random" in v]
    return notes


def set_means(summary: dict) -> pd.DataFrame:
    rows = [{"method": m, "dataset": d, **{k: s[k] for k in ("psnr", "ssim", "niqe", "pi", "pi_reason")}}
            for m, per_set in summary["methods"].items() for d, s in per_set.items()]
    return pd.DataFrame(rows).astype({k: float for k in ("psnr", "ssim", "niqe", "pi")})


def attention_panel(results: Path, dataset: str, name: str, query_frac, out: Path, profile, notes) -> None:
    """Fig. 6: attention rows of the trained spsagan for one query pixel of one test image."""
    model, _ = load_generator(results / "train_gan" / "spsagan" / "model.pt")
    lq = read_image(results / "make_lr" / dataset / "LR_x4" / f"{name}.png", gray="rgb")
    seg = load_seg(results / "make_seg_maps" / dataset / f"{name}.npz")
    h, w = lq.shape[:2]
    query = (min(h - 1, int(query_frac[0] * h)), min(w - 1, int(query_frac[1] * w)))
    with torch.no_grad():
        x = model.trunk_features(to_tensor(lq)[None])
        rows = model.attention.attention_rows(x, torch.from_numpy(seg)[None], [query])
    beta_fea, beta_seg, beta = (r[0, 0].numpy() for r in rows)
    semantic = "standin" not in json.loads((results / "make_seg_maps" / "summary.json").read_text())["segmenter"]
    hr = read_image(results / "make_lr" / dataset / "HR" / f"{name}.png", gray="rgb")
    attention_figure(hr, seg, beta_fea, beta_seg, beta, query, out, f"SPSA attention rows, {dataset}/{name}",
                     profile, notes, class_names=channel_names(semantic))


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--results", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args, cfg = parse(parser, "render_reports")
    results = args.results
    summary = json.loads((results / "evaluate" / "summary.json").read_text())
    per_image = pd.read_csv(results / "evaluate" / "per_image.csv")
    notes = stand_ins(results, summary)

    render_table1(set_means(summary), args.profile, notes, args.out)
    costs = pd.DataFrame([{"method": m, **c} for m, c in summary["costs"].items() if m in PRESETS])
    render_ablation(per_image[per_image["method"].isin(PRESETS)], costs, args.profile, notes, args.out,
                    seed=cfg["seed"], n_resamples=cfg["bootstrap_samples"])

    with atomic_dir(args.out / "figures") as fig:
        dataset = per_image["dataset"].iloc[0]
        name = sorted(per_image.loc[per_image["dataset"] == dataset, "name"])[0]
        hr = read_image(results / "make_lr" / dataset / "HR" / f"{name}.png", gray="keep")
        images = {"HR": hr, **{m: read_image(results / "evaluate" / "sr" / m / dataset / f"{name}.png", gray="keep")
                               for m in ["bicubic", *PRESETS] if m in summary["methods"]}}
        size = min(cfg["grid_crop"], *hr.shape[:2])
        regions = [((hr.shape[0] - size) // 2, (hr.shape[1] - size) // 2, size), (0, 0, size)]
        crop_grid(images, regions, fig / "fig11_crops.png", f"Ablation crops, {dataset}/{name}", args.profile, notes)
        attention_panel(results, dataset, name, cfg["attention_query"], fig / "fig6_attention.png", args.profile, notes)
        timings = pd.DataFrame([{"network": label, **summary["costs"][m]}
                                for label, m in (("RRDB", "rrdb_psnr"), ("RRSB", "rrsb_psnr"))])
        inference_time_chart(timings, fig / "inference_time.png", "Inference time per image: RRDB vs RRSB",
                             args.profile, notes)
        live = {label: results / d for label, d in LIVE_DIRS.items() if (results / d).exists()}
        training_curves(live, fig / "training_curves.png", "Training curves", args.profile, notes)
        shutil.copy(results / "prune" / "pruning.png", fig / "fig5_pruning.png")
        for path in sorted((results / "make_seg_maps" / "figures").glob("*.png")):
            shutil.copy(path, fig / f"segmentation_{path.name}")


if __name__ == "__main__":
    main_guard(main)
