"""render_reports: Table 1, the ablation, the claims and the paper's figures, every number from the results files.

Writes `--table1` (md, csv, tex, html; the html also holds the claims), `--ablation` (md, csv),
`--claims` when given (claims.md, optionally .csv and .html; `--votes` plugs in the user study's vote
summary) and, in `--figures`:
`fig11_crops.png` (the same crops from each preset), `fig6_attention.png` (image, segmentation,
beta_fea, beta_seg and beta for one query pixel of the trained spsagan), `inference_time.png`
(RRDB vs RRSB), `training_curves_psnr.png` and `training_curves_gan.png`, `fig5_pruning.png` and
`segmentation_<image>.png`. Every header names the profile, the stand-ins and the run's departures
from the paper's setting (network size, iterations, crops) read from the trained models.
"""

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import torch

from spsagan.atomic import atomic_dir
from spsagan.image import read_image, to_tensor
from spsagan.models.modelfile import load_generator
from spsagan.models.presets import PRESETS
from spsagan.pipeline.step import labelled, main_guard, parse, stage_parser
from spsagan.pruning import ds_from_rows
from spsagan.reports import data_standins, reductions
from spsagan.reports.ablation import render_ablation
from spsagan.reports.claims import VOTE_COLUMNS, claims_html, evaluate_claims, render_claims
from spsagan.reports.figures import (
    attention_figure,
    crop_grid,
    inference_time_chart,
    pruning_figure,
    training_curves_by_stage,
)
from spsagan.reports.names import FIXED, RETRAINED, display_name
from spsagan.reports.paper import PAPER_SETTING
from spsagan.reports.table1 import render_table1
from spsagan.segmentation.classes import channel_names, standin_note
from spsagan.segmentation.storage import load_seg


def stand_ins(lr_root: Path, seg_summary: dict, summary: dict) -> list[str]:
    """What the numbers depend on that is not the paper's setting, read from the results files."""
    notes = data_standins(lr_root, sorted(p.name for p in lr_root.iterdir() if p.is_dir()))
    if not seg_summary.get("semantic", True):
        notes.append(f"segmentation prior: {seg_summary['segmenter']} ({standin_note(seg_summary['segmenter'])})")
    vgg = {c.get("perceptual") for c in summary["costs"].values() if c.get("perceptual")}
    notes += [f"perceptual loss: {v} instead of ImageNet VGG19" for v in sorted(vgg) if "random" in v]
    return notes


def settings(summary: dict) -> list[str]:
    """Run settings a reader needs beside the numbers: the precision the models were trained in, and
    where the trained models depart from the paper's setting (read from their checkpoints)."""
    costs = summary["costs"]
    precisions = sorted({c["train_precision"] for c in costs.values() if c.get("train_precision")})
    out = [f"training precision: {', '.join(precisions)}"] if precisions else []
    psnr, gan = costs.get("rrdb_psnr"), costs.get("spsagan")
    if psnr and gan:
        used = {
            "blocks": psnr["num_block"],
            "features": psnr["num_feat"],
            "PSNR iterations": psnr["iters"],
            "GAN iterations": gan["iters"],
            "px HR crops (PSNR/GAN)": (psnr["crop_size"], gan["crop_size"]),
        }
        out += reductions({label: (used[label], paper) for label, paper in PAPER_SETTING.items()})
    return out


def set_means(summary: dict, per_image: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row of set means per method and dataset; the HR column's PSNR is infinite (JSON holds null).

    Several training runs: evaluate's `runs` (set means per method, seed and dataset) give one row per run,
    with its `seed` (empty for methods that are not our training runs), so Table 1 sees every run. Without
    them, a `seed` column in per_image gives the same rows, computed from the per-image scores."""
    metrics = ["psnr", "ssim", "niqe", "pi"]
    runs = summary.get("runs") or {}
    if not runs and per_image is not None and "seed" in per_image.columns:
        keys = ["method", "dataset", "seed"]
        df = per_image.assign(seed=per_image["seed"].fillna(-1))
        frame = df.groupby(keys, sort=False)[metrics].agg(lambda c: c.mean(skipna=False)).reset_index()
        reasons = df.groupby(keys, sort=False)["pi_reason"].first() if "pi_reason" in df.columns else None
        frame["pi_reason"] = "" if reasons is None else reasons.fillna("").to_numpy()
        frame.loc[frame["method"] == "HR", "psnr"] = math.inf
        return frame
    rows = []
    for m, per_set in summary["methods"].items():
        by_seed = runs.get(m) or {None: per_set}
        for seed, sets in by_seed.items():
            for d, s in sets.items():
                run_seed = math.nan if seed in (None, "None") else int(seed)
                rows.append({"method": m, "dataset": d, "seed": run_seed, **{k: s[k] for k in (*metrics, "pi_reason")}})
    frame = pd.DataFrame(rows).astype({k: float for k in metrics})
    frame.loc[frame["method"] == "HR", "psnr"] = math.inf
    return frame if runs else frame.drop(columns="seed")


def column_kinds(summary: dict) -> dict[str, str]:
    """{method: fixed | retrained} from evaluate's records: a pipeline checkpoint is retrained, published
    weights are fixed; other methods get `names.method_kind` (bicubic, HR, authors' images: fixed)."""
    kinds = {}
    for method, cost in summary.get("costs", {}).items():
        if cost.get("published"):
            kinds[method] = FIXED
        elif cost.get("preset") is not None or cost.get("iters") is not None:
            kinds[method] = RETRAINED
    return kinds


def weights_notes(summary: dict) -> list[str]:
    """One line per published column: its file and the state-dict key its weights came from."""
    notes = []
    for method, cost in summary.get("costs", {}).items():
        if cost.get("published") and "(exported" not in method:
            key = cost.get("weights_key")
            where = f"key {key!r}" if key else "a bare state dict" if "weights_key" in cost else "key not recorded"
            notes.append(f"{display_name(method)}: published weights {Path(cost.get('model_file', '')).name}, {where}")
    return notes


def read_votes(path: Path | None) -> pd.DataFrame | None:
    """The user study's vote summary (CSV with VOTE_COLUMNS), or None when no study was run (no file
    given, or no votes of people in it)."""
    if path is None:
        return None
    votes = pd.read_csv(path)
    missing = [c for c in VOTE_COLUMNS if c not in votes.columns]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {', '.join(missing)}; it needs {', '.join(VOTE_COLUMNS)}")
    return votes if len(votes) else None  # study_report writes the header alone before any study


def skipped_notes(summary: dict) -> list[str]:
    """One line per published method that was not evaluated: its file and where to get it."""
    return [f"{s['method']}: not evaluated, {s['file']} not found; {s['source']}" for s in summary.get("skipped", [])]


def attention_panel(args, dataset: str, name: str, query_frac, out: Path, profile, notes, semantic: bool) -> None:
    """Fig. 6: attention rows of the trained spsagan for one query pixel of one test image."""
    model, _ = load_generator(args.attention_model)
    lq = read_image(args.lr_root / dataset / "LR_x4" / f"{name}.png", gray="rgb")
    seg = load_seg(args.seg / dataset / f"{name}.npz")
    h, w = lq.shape[:2]
    query = (min(h - 1, int(query_frac[0] * h)), min(w - 1, int(query_frac[1] * w)))
    with torch.no_grad():
        x = model.trunk_features(to_tensor(lq)[None])
        rows = model.attention.attention_rows(x, torch.from_numpy(seg)[None], [query])
    beta_fea, beta_seg, beta = (r[0, 0].numpy() for r in rows)
    hr = read_image(args.lr_root / dataset / "HR" / f"{name}.png", gray="rgb")
    attention_figure(
        hr,
        seg,
        beta_fea,
        beta_seg,
        beta,
        query,
        out,
        f"SPSA attention rows, {dataset}/{name}",
        profile,
        notes,
        class_names=channel_names(semantic),
    )


def pruning_panel(analysis: Path, lr_root: Path, out: Path, profile: str) -> None:
    """Fig. 5 from prune's data: `ds.csv` (DS per dense block) and `summary.json` (the mask)."""
    summary = json.loads((analysis / "summary.json").read_text())
    ds = ds_from_rows(pd.read_csv(analysis / "ds.csv").to_dict("records"), summary["dense_blocks"])
    keep = summary["keep"] if summary["scope"] == "shared" else summary["keep"][0]
    title = "RRSB connection pattern (kept / pruned)"
    pruning_figure(ds, keep, out, title, profile, data_standins(lr_root, summary["train_sets"]))


def main() -> None:
    parser = stage_parser(__doc__)
    for flag, help_text in (
        ("--lr-root", "make_lr's output folder"),
        ("--seg", "make_seg_maps' output folder"),
        ("--prune", "prune's analysis folder (ds.csv, summary.json)"),
        ("--summary", "evaluate's summary.json"),
        ("--per-image", "evaluate's per_image.csv"),
        ("--sr", "evaluate's SR images"),
        ("--attention-model", "the trained spsagan model (Fig. 6)"),
        ("--figures", "folder for the figures"),
    ):
        parser.add_argument(flag, required=True, type=Path, help=help_text)
    parser.add_argument("--live", nargs="+", required=True, help="label=dvclive folder of each training run")
    parser.add_argument("--table1", nargs=4, required=True, type=Path, help="table1 .md .csv .tex .html")
    parser.add_argument("--ablation", nargs=2, required=True, type=Path, help="ablation .md .csv")
    parser.add_argument("--claims", nargs="+", type=Path, help="claims .md [.csv] [.html]")
    parser.add_argument("--votes", type=Path, help="the user study's vote summary (CSV), when there is one")
    args, cfg = parse(parser, "render_reports")
    summary = json.loads(args.summary.read_text())
    seg_summary = json.loads((args.seg / "summary.json").read_text())
    per_image = pd.read_csv(args.per_image)
    notes, run_settings = stand_ins(args.lr_root, seg_summary, summary), settings(summary)
    presets = list(PRESETS)
    kinds = column_kinds(summary)

    claim_frames = evaluate_claims(
        per_image, summary["costs"], notes, cfg.seed, cfg.bootstrap_samples, votes=read_votes(args.votes), kinds=kinds
    )
    if args.claims:
        render_claims(
            *claim_frames, args.profile, notes, args.claims, cfg.seed, cfg.bootstrap_samples, run_settings, per_image
        )
    render_table1(
        set_means(summary, per_image),
        args.profile,
        notes,
        args.table1,
        settings=run_settings,
        per_image=per_image,
        seed=cfg.seed,
        n_resamples=cfg.bootstrap_samples,
        extra_notes=[*weights_notes(summary), *skipped_notes(summary)],
        kinds=kinds,
        appendix_html=claims_html(
            *claim_frames, args.profile, notes, cfg.seed, cfg.bootstrap_samples, run_settings, per_image
        ),
    )
    costs = pd.DataFrame([{"method": m, **c} for m, c in summary["costs"].items()])
    render_ablation(
        per_image[per_image["method"].isin(presets)],
        costs,
        args.profile,
        notes,
        args.ablation,
        seed=cfg.seed,
        n_resamples=cfg.bootstrap_samples,
        settings=run_settings,
    )

    with atomic_dir(args.figures) as fig:
        dataset = per_image["dataset"].iloc[0]
        name = sorted(per_image.loc[per_image["dataset"] == dataset, "name"])[0]
        hr = read_image(args.lr_root / dataset / "HR" / f"{name}.png", gray="keep")
        images = {
            "HR": hr,
            **{
                display_name(m): read_image(args.sr / m / dataset / f"{name}.png", gray="keep")
                for m in ["bicubic", *presets]
                if m in summary["methods"]
            },
        }
        size = min(cfg.grid_crop, *hr.shape[:2])
        regions = [((hr.shape[0] - size) // 2, (hr.shape[1] - size) // 2, size), (0, 0, size)]
        crop_grid(images, regions, fig / "fig11_crops.png", f"Ablation crops, {dataset}/{name}", args.profile, notes)
        attention_panel(
            args,
            dataset,
            name,
            cfg.attention_query,
            fig / "fig6_attention.png",
            args.profile,
            notes,
            semantic=seg_summary.get("semantic", True),
        )
        # The paper compares +SPSA (RRDB body) with SPSAGAN (RRSB body); the PSNR models are an extra pair.
        timings = pd.DataFrame(
            [
                {"network": display_name(m), **summary["costs"][m]}
                for m in ("+spsa", "spsagan", "rrdb_psnr", "rrsb_psnr")
                if m in summary["costs"]
            ]
        )
        inference_time_chart(
            timings, fig / "inference_time.png", "Inference time per image: RRDB vs RRSB", args.profile, notes
        )
        live = {label: path for label, path in labelled(args.live, "--live").items() if path.exists()}
        training_curves_by_stage(live, fig, args.profile, notes)
        pruning_panel(args.prune, args.lr_root, fig / "fig5_pruning.png", args.profile)
        for path in sorted((args.seg / "figures").glob("*.png")):
            shutil.copy(path, fig / f"segmentation_{path.name}")


if __name__ == "__main__":
    main_guard(main)
