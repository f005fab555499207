"""evaluate: every method on every test set of the profile.

Methods, each a column of Table 1:
- `bicubic`, and `HR` (the ground truth itself: NIQE and PI computed, PSNR infinite, SSIM 1);
- every pipeline model (`--models`), named by the `method` its checkpoint records: `rrdb_psnr`,
  `rrsb_psnr`, `esrgan` (our retrained ESRGAN), `+fa`, `+spsa`, `spsagan`;
- published weights (`published` in params: ESRGAN, SFTGAN, SRResNet, SRGAN files, recognised by
  `spsagan.models.published.load_published`; SFTGAN gets make_seg_maps' priors); a missing file is
  skipped and named, with where it comes from, in `--summary` and so in Table 1's notes;
- our own models exported to a published layout (`export` in params) and loaded back as published
  weights, written to `--exported`: their scores must equal the model's own;
- SR folders made elsewhere (`outside_folders`).
Writes `--sr <dir>/<method>/<dataset>/<image>.png`, `--per-image` (PSNR/SSIM on Y with the border
shave, NIQE, Ma/PI where available), `--summary` (set means, parameters, FLOPs, inference time
with device and dtype, the segmenter, skipped methods) and `--metrics` (PSNR and PI, or NIQE without
pyiqa, of bicubic and the pipeline models, averaged over the test sets: what `dvc exp show` compares).
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spsagan.atomic import atomic_dir, atomic_path, write_json
from spsagan.evaluation import bicubic_sr, compared_metrics, evaluate_pairs, read_sr_folder, sr_with_model, summarise
from spsagan.export import export_model
from spsagan.image import list_images, read_image, to_tensor, write_image
from spsagan.models.attention import set_attention_budget
from spsagan.models.modelfile import load_generator
from spsagan.models.presets import takes_seg
from spsagan.models.published import load_published, published_source
from spsagan.pipeline.step import labelled, main_guard, parse, stage_parser
from spsagan.runtime import check_compile, compiled, device_label, resolve_device
from spsagan.segmentation.storage import load_seg
from spsagan.timing import model_cost, time_generator


@dataclass
class Method:
    """A model to evaluate: the network, whether it reads the segmentation prior, facts for the costs table.

    runner: what super-resolves and is timed (the model, or its torch.compile'd form with `compile`);
    parameters and FLOPs are counted on the model itself.
    """

    model: torch.nn.Module
    needs_seg: bool
    record: dict = field(default_factory=dict)
    runner: torch.nn.Module | None = None

    def __post_init__(self):
        self.runner = self.runner or self.model


def pipeline_methods(files: list[Path]) -> dict[str, Method]:
    """Each pipeline model under the name its checkpoint records."""
    methods = {}
    for path in files:
        model, ckpt = load_generator(path)
        name = ckpt.get("method") or ckpt["preset"]
        if name in methods:
            raise ValueError(f"--models: {path} and another file are both method {name!r}")
        info, params = ckpt.get("info") or {}, ckpt.get("params") or {}
        methods[name] = Method(
            model,
            takes_seg(ckpt["arch"]),
            {
                "preset": ckpt.get("preset"),
                "segmenter": ckpt.get("segmenter"),
                "perceptual": info.get("perceptual_extractor"),
                "train_precision": info.get("precision"),
                "num_block": ckpt["arch"]["num_block"],
                "num_feat": ckpt["arch"]["num_feat"],
                "iters": ckpt.get("step"),
                "crop_size": params.get("crop_size"),
                "model_file": str(path),
            },
        )
    return methods


def published_methods(published: dict[str, str]) -> tuple[dict[str, Method], list[dict]]:
    """Published weights that exist, and a note for each that does not (file and where it comes from)."""
    methods, skipped = {}, []
    for name, path in published.items():
        if not Path(path).is_file():
            skipped.append({"method": name, "file": path, "source": published_source(path)})
            print(f"evaluate: {name}: {path} not found, skipped; {published_source(path)}")
            continue
        model, info = load_published(path)
        methods[name] = Method(model, info["needs_seg"], {"published": info["arch"], "model_file": str(path)})
    return methods, skipped


def exported_methods(methods: dict[str, Method], export: dict[str, str], out_dir: Path) -> dict[str, Method]:
    """Our models written in a published layout (`spsagan-export`) and loaded back as published weights."""
    out = {}
    for name, fmt in export.items():
        if name not in methods or "model_file" not in methods[name].record:
            raise ValueError(
                f"evaluate.export names {name!r}, which is not a pipeline model here (models: {', '.join(methods)})"
            )
        path = export_model(methods[name].record["model_file"], fmt, out_dir / f"{name}_x4_{fmt}.pth")
        model, info = load_published(path)
        out[f"{name} (exported, {fmt} layout)"] = Method(model, info["needs_seg"], {"published": info["arch"]})
    return out


def super_resolve(methods: dict[str, Method], lr_dir: Path, seg_dir: Path, device) -> dict[str, dict]:
    """{method: {image: SR uint8}} for bicubic and every model, on one test set."""
    lqs = {n: read_image(p, gray="keep") for n, p in list_images(lr_dir).items()}
    outputs = {"bicubic": {n: bicubic_sr(lq) for n, lq in lqs.items()}}
    for name, m in methods.items():
        outputs[name] = {
            n: sr_with_model(m.runner, lq, seg=load_seg(seg_dir / f"{n}.npz") if m.needs_seg else None, device=device)
            for n, lq in lqs.items()
        }
    return outputs


def hr_scores(hr_dir: Path, score: dict) -> pd.DataFrame:
    """The HR column: the ground truth scored against itself (NIQE, PI; PSNR infinite, SSIM 1)."""
    frame = evaluate_pairs({n: read_image(p, gray="keep") for n, p in list_images(hr_dir).items()}, hr_dir, **score)
    return frame.assign(psnr=math.inf, ssim=1.0)


def inference_costs(methods: dict[str, Method], lr_dir: Path, seg_dir: Path, cfg, device) -> dict[str, dict]:
    """Per-image inference time (mean over the timing images), parameters and FLOPs of every model."""
    files = list(list_images(lr_dir).items())[: None if cfg.timing_images == "all" else cfg.timing_images]
    costs = {}
    for name, m in methods.items():
        m.model.to(device)
        times, sizes, cost = [], [], None
        for n, path in files:
            lq = to_tensor(read_image(path, gray="rgb"))[None]
            seg = torch.from_numpy(load_seg(seg_dir / f"{n}.npz"))[None] if m.needs_seg else None
            times.append(
                time_generator(m.runner, lq, seg, warmup=cfg.timing_warmup, repeats=cfg.timing_repeats)["median_s"]
            )
            sizes.append(list(lq.shape[2:]))
            cost = cost or {**model_cost(m.model, tuple(lq.shape)), "size": list(lq.shape[2:])}
        costs[name] = {
            **cost,
            "median_s": float(np.mean(times)),
            "images": len(times),
            "sizes": sizes,
            "device": device_label(device),
            "dtype": "float32",
            "compiled": m.runner is not m.model,
            **m.record,
        }
    return costs


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, type=Path, help="make_lr's output folder")
    parser.add_argument("--seg", required=True, type=Path, help="make_seg_maps' output folder")
    parser.add_argument("--models", nargs="+", required=True, help="label=model.pt of every pipeline model")
    parser.add_argument("--sr", required=True, type=Path, help="folder for the SR images")
    parser.add_argument("--exported", required=True, type=Path, help="folder for the exported models")
    parser.add_argument("--per-image", required=True, type=Path, help="per-image scores (CSV)")
    parser.add_argument("--summary", required=True, type=Path, help="set means and costs (JSON)")
    parser.add_argument("--metrics", required=True, type=Path, help="the numbers experiments compare (JSON)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args, cfg = parse(parser, "evaluate")
    device = resolve_device(args.device)
    methods = pipeline_methods(list(labelled(args.models, "--models").values()))
    compared = ["bicubic", *methods]
    published, skipped = published_methods(cfg.published)
    check_compile(device, cfg.compile, "evaluate")
    rows, summary = (
        [],
        {
            "profile": args.profile,
            "crop_border": cfg.crop_border,
            "test_y_channel": cfg.test_y_channel,
            "methods": {},
            "costs": {},
            "skipped": skipped,
        },
    )
    score = dict(crop_border=cfg.crop_border, test_y_channel=cfg.test_y_channel, niqe=cfg.niqe, pi=cfg.pi)

    with atomic_dir(args.exported) as exported_dir, atomic_dir(args.sr) as sr_root:
        methods = {**methods, **published, **exported_methods(methods, cfg.export, exported_dir)}
        for m in methods.values():
            set_attention_budget(m.model, cfg.max_attention_mb * 2**20)
            m.runner = compiled(m.model.to(device).eval(), device, cfg.compile)
        for dataset in cfg.test_sets:
            hr_dir, lr_dir = args.data / dataset / "HR", args.data / dataset / "LR_x4"
            if not hr_dir.is_dir():
                raise FileNotFoundError(f"{hr_dir} does not exist: add {dataset!r} to make_lr.test_sets")
            outputs = super_resolve(methods, lr_dir, args.seg / dataset, device)
            for name, folder in cfg.outside_folders.items():
                outputs[name] = read_sr_folder(Path(folder) / dataset, hr_dir)
            frames = {name: evaluate_pairs(images, hr_dir, **score) for name, images in outputs.items()}
            frames["HR"] = hr_scores(hr_dir, score)
            for name, frame in frames.items():
                for n, img in outputs.get(name, {}).items():
                    write_image(sr_root / name / dataset / f"{n}.png", img)
                rows.append(frame.assign(method=name, dataset=dataset))
                summary["methods"].setdefault(name, {})[dataset] = summarise(frame)
                print(f"evaluate: {dataset} {name}: PSNR {summary['methods'][name][dataset]['psnr']}")
        summary["costs"] = inference_costs(
            methods, args.data / cfg.timing_set / "LR_x4", args.seg / cfg.timing_set, cfg, device
        )

    per_image = pd.concat(rows, ignore_index=True)
    cols = ["method", "dataset", "name", "psnr", "ssim", "niqe", "ma", "pi", "pi_reason", "niqe_reason"]
    with atomic_path(args.per_image) as tmp:
        per_image[cols].to_csv(tmp, index=False, float_format="%.6f")
    seg_summary = args.seg / "summary.json"
    summary["segmenter"] = json.loads(seg_summary.read_text())["segmenter"] if seg_summary.exists() else None
    write_json(args.summary, summary)
    write_json(args.metrics, compared_metrics(summary, compared))


if __name__ == "__main__":
    main_guard(main)
