"""evaluate: every method on every test set of the profile.

Methods, each a column of Table 1:
- `bicubic`, and `HR` (the ground truth itself: NIQE and PI computed, PSNR infinite, SSIM 1);
- every pipeline model (`--models`), named by the `method` its checkpoint records: `rrdb_psnr`,
  `rrsb_psnr`, `esrgan` (our retrained ESRGAN), `+fa`, `+spsa`, `spsagan`; with several training seeds
  (`seeds` in params) every run of a method is scored, and the first file of a method in `--models` (the
  registry lists the first seed first) is its primary run: the one whose SR images are written and
  whose costs are measured;
- published weights (`published` in params: ESRGAN, SFTGAN, SRResNet, SRGAN files, recognised by
  `spsagan.models.published.load_published`; SFTGAN gets make_seg_maps' priors); a missing file is
  skipped and named, with where it comes from, in `--summary` and so in Table 1's notes;
- our own models exported to a published layout (`export` in params) and loaded back as published
  weights, written to `--exported`: their scores must equal the model's own;
- SR folders made elsewhere (`outside_folders`).
Writes `--sr <dir>/<method>/<dataset>/<image>.png`, `--per-image` (PSNR/SSIM on Y with the border
shave, NIQE, Ma/PI where available; `seed`: the training seed of a pipeline model's run, empty for
the others), `--summary` (set means, over every run of a method, and per run under `runs`;
parameters, FLOPs, inference time with device and dtype, the segmenter, skipped methods) and
`--metrics` (PSNR and PI, or NIQE without pyiqa, of bicubic and the pipeline models, averaged over the
test sets and runs: what `dvc exp show` compares).
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
from spsagan.models.modelfile import load_generator, training_seed
from spsagan.models.presets import takes_seg
from spsagan.models.published import load_published, published_source
from spsagan.pipeline.step import labelled, main_guard, parse, stage_parser
from spsagan.runtime import check_compile, compiled, device_label, resolve_device, tf32
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


def pipeline_runs(files: list[Path]) -> dict[str, dict[int | None, Method]]:
    """{method: {training seed: Method}} of the pipeline models, under the name each checkpoint records;
    methods and seeds in the order of `files` (a method's first file is its primary run)."""
    runs: dict[str, dict] = {}
    for path in files:
        model, ckpt = load_generator(path)
        name, seed = ckpt.get("method") or ckpt["preset"], training_seed(ckpt)
        if seed in runs.get(name, {}):
            raise ValueError(f"--models: {path} and another file are both method {name!r}, seed {seed}")
        info, params = ckpt.get("info") or {}, ckpt.get("params") or {}
        runs.setdefault(name, {})[seed] = Method(
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
                "seed": seed,
            },
        )
    return runs


def published_methods(published: dict[str, str], keys: dict[str, str]) -> tuple[dict[str, Method], list[dict]]:
    """Published weights that exist, and a note for each that does not (file and where it comes from).

    keys: column name -> `params` or `params_ema`, for BasicSR files holding both (default `params`)."""
    methods, skipped = {}, []
    for name, path in published.items():
        if not Path(path).is_file():
            skipped.append({"method": name, "file": path, "source": published_source(path)})
            print(f"evaluate: {name}: {path} not found, skipped; {published_source(path)}")
            continue
        model, info = load_published(path, weights_key=keys.get(name))
        record = {"published": info["arch"], "model_file": str(path), "weights_key": info["weights_key"]}
        methods[name] = Method(model, info["needs_seg"], record)
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


def super_resolve(methods: dict, lr_dir: Path, seg_dir: Path, device, bicubic: bool = True) -> dict:
    """{method: {image: SR uint8}} for every model (keys as in `methods`) and bicubic, on one test set."""
    lqs = {n: read_image(p, gray="keep") for n, p in list_images(lr_dir).items()}
    outputs = {"bicubic": {n: bicubic_sr(lq) for n, lq in lqs.items()}} if bicubic else {}
    for name, m in methods.items():
        outputs[name] = {
            n: sr_with_model(m.runner, lq, seg=load_seg(seg_dir / f"{n}.npz") if m.needs_seg else None, device=device)
            for n, lq in lqs.items()
        }
    return outputs


def run_means(frames: dict, seeds: dict[str, int | None], dataset: str, summary: dict) -> None:
    """Record each pipeline run's set means (`summary["runs"][method][seed][dataset]`) and each method's mean
    over its runs (`summary["methods"]`). frames: {(method, seed): per-image frame}; seeds: the primary runs'."""
    for (name, seed), frame in frames.items():
        summary["runs"].setdefault(name, {}).setdefault(str(seed), {})[dataset] = summarise(frame)
    for name in seeds:
        every = [frame for (n, _), frame in frames.items() if n == name]
        summary["methods"].setdefault(name, {})[dataset] = summarise(pd.concat(every, ignore_index=True))


def hr_scores(hr_dir: Path, score: dict) -> pd.DataFrame:
    """The HR column: the ground truth scored against itself (NIQE, PI; PSNR infinite, SSIM 1)."""
    frame = evaluate_pairs({n: read_image(p, gray="keep") for n, p in list_images(hr_dir).items()}, hr_dir, **score)
    return frame.assign(psnr=math.inf, ssim=1.0)


TIMING_STATISTIC = "median of the timed repeats of each image, mean over the timing images"


def precision_label(device, conv_tf32: bool | None = None, matmul_tf32: bool | None = None) -> str:
    """The precision a float32 model really computes in on `device`: on CUDA, cuDNN convolutions (on by
    default) and matmuls may run in TF32, which keeps 10 mantissa bits; the label says so.
    conv_tf32, matmul_tf32: the switches, read from torch.backends when None."""
    if torch.device(device).type != "cuda":
        return "float32"
    conv = torch.backends.cudnn.allow_tf32 if conv_tf32 is None else conv_tf32
    matmul = torch.backends.cuda.matmul.allow_tf32 if matmul_tf32 is None else matmul_tf32
    tf32 = [name for name, on in (("convolutions", conv), ("matmuls", matmul)) if on]
    return f"float32, TF32 {' and '.join(tf32)}" if tf32 else "float32"


def prior_timer(m: Method, device, weights: Path | None):
    """(segmenter, None) for an SPSA model whose recorded segmenter can be built here, else (None, why)."""
    from spsagan.upscale import load_segmenter

    label = m.record.get("segmenter")
    if not m.needs_seg or not label:
        return None, "the model takes no prior" if not m.needs_seg else "no segmenter recorded"
    try:
        return load_segmenter({"segmenter": label}, Path(m.record.get("model_file", "")), weights, None, device), None
    except Exception as err:  # OutdoorSceneSeg without its weights file: say why instead of failing evaluate
        return None, f"segmenter {label} not available here ({type(err).__name__}: {err})".splitlines()[0]


def inference_costs(
    methods: dict[str, Method], lr_dir: Path, seg_dir: Path, cfg, device, segmenter_weights: Path | None = None
) -> dict[str, dict]:
    """Per-image inference time, parameters and FLOPs of every model.

    Scope: `times_s` times the generator's forward pass alone; an SPSA model reads the prior that
    make_seg_maps stored, so the segmentation network is outside it. For SPSA models whose segmenter
    can be built here, `with_prior_times_s` also times the whole path of spsagan-upscale: the prior
    computed from the LR image (`prior_from_lq`), then the forward pass.
    Records per model: median_s and with_prior_median_s (TIMING_STATISTIC), times_s and
    with_prior_times_s (one list of timed repeats per image), timing_scope, statistic.
    """
    from spsagan.segmentation.run import prior_from_lq
    from spsagan.timing import time_inference

    files = list(list_images(lr_dir).items())[: None if cfg.timing_images == "all" else cfg.timing_images]
    costs = {}
    for name, m in methods.items():
        m.model.to(device)
        times, with_prior, sizes, cost = [], [], [], None
        segmenter, why = prior_timer(m, device, segmenter_weights)
        for n, path in files:
            image = read_image(path, gray="rgb")
            lq = to_tensor(image)[None]
            seg = torch.from_numpy(load_seg(seg_dir / f"{n}.npz"))[None] if m.needs_seg else None
            times.append(
                time_generator(m.runner, lq, seg, warmup=cfg.timing_warmup, repeats=cfg.timing_repeats)["times_s"]
            )
            if segmenter is not None:
                x = lq.to(device)

                def run(image=image, x=x, segmenter=segmenter, runner=m.runner):
                    with torch.no_grad():
                        prior = torch.from_numpy(prior_from_lq(segmenter, image))[None].to(device)
                        return runner(x, prior)

                with_prior.append(
                    time_inference(run, warmup=cfg.timing_warmup, repeats=cfg.timing_repeats, device=device)["times_s"]
                )
            sizes.append(list(lq.shape[2:]))
            cost = cost or {**model_cost(m.model, tuple(lq.shape)), "size": list(lq.shape[2:])}
        scope = "generator forward pass"
        if m.needs_seg:
            scope += "; the segmentation prior is precomputed (make_seg_maps) and not timed"
        costs[name] = {
            **cost,
            "median_s": float(np.mean([np.median(t) for t in times])),
            "times_s": times,
            "statistic": TIMING_STATISTIC,
            "timing_scope": scope,
            "images": len(times),
            "sizes": sizes,
            "device": device_label(device),
            "dtype": precision_label(device),
            "compiled": m.runner is not m.model,
            **m.record,
        }
        if m.needs_seg:
            costs[name].update(
                with_prior_median_s=float(np.mean([np.median(t) for t in with_prior])) if with_prior else None,
                with_prior_times_s=with_prior or None,
                with_prior_reason=why or "",
            )
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
    parser.add_argument(
        "--segmenter-weights", type=Path, help="OutdoorSceneSeg weights, to time SPSA models with the prior computed"
    )
    args, cfg = parse(parser, "evaluate")
    device = resolve_device(args.device)
    runs = pipeline_runs(list(labelled(args.models, "--models").values()))
    methods = {name: next(iter(by_seed.values())) for name, by_seed in runs.items()}  # the primary runs
    seeds = {name: m.record["seed"] for name, m in methods.items()}
    others = {(name, seed): m for name, by_seed in runs.items() for seed, m in list(by_seed.items())[1:]}
    compared = ["bicubic", *methods]
    published, skipped = published_methods(cfg.published, cfg.published_keys)
    check_compile(device, cfg.compile, "evaluate")
    rows, summary = (
        [],
        {
            "profile": args.profile,
            "crop_border": cfg.crop_border,
            "test_y_channel": cfg.test_y_channel,
            "methods": {},
            "runs": {},
            "costs": {},
            "skipped": skipped,
        },
    )
    score = dict(crop_border=cfg.crop_border, test_y_channel=cfg.test_y_channel, niqe=cfg.niqe, pi=cfg.pi)

    with tf32(cfg.tf32), atomic_dir(args.exported) as exported_dir, atomic_dir(args.sr) as sr_root:
        methods = {**methods, **published, **exported_methods(methods, cfg.export, exported_dir)}
        for m in [*methods.values(), *others.values()]:
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
            # The other seeds' runs: scored, neither written nor timed.
            extra = super_resolve(others, lr_dir, args.seg / dataset, device, bicubic=False)
            extra = {key: evaluate_pairs(images, hr_dir, **score) for key, images in extra.items()}
            for name, frame in frames.items():
                for n, img in outputs.get(name, {}).items():
                    write_image(sr_root / name / dataset / f"{n}.png", img)
                rows.append(frame.assign(method=name, dataset=dataset, seed=seeds.get(name)))
                if name not in seeds:
                    summary["methods"].setdefault(name, {})[dataset] = summarise(frame)
            for (name, seed), frame in extra.items():
                rows.append(frame.assign(method=name, dataset=dataset, seed=seed))
            run_means({**{(n, seeds[n]): frames[n] for n in seeds}, **extra}, seeds, dataset, summary)
            for name, per_set in summary["methods"].items():
                runs_note = f" (mean of {len(runs[name])} runs)" if len(runs.get(name, {})) > 1 else ""
                print(f"evaluate: {dataset} {name}: PSNR {per_set[dataset]['psnr']}{runs_note}")
        summary["costs"] = inference_costs(
            methods,
            args.data / cfg.timing_set / "LR_x4",
            args.seg / cfg.timing_set,
            cfg,
            device,
            args.segmenter_weights,
        )

    per_image = pd.concat(rows, ignore_index=True)
    per_image["seed"] = per_image["seed"].astype("Int64")  # empty for methods that are not our training runs
    for name, cost in summary["costs"].items():
        if name in runs:
            cost["seeds"] = list(runs[name])  # every run scored; the costs are the primary run's
    cols = ["method", "dataset", "name", "seed", "psnr", "ssim", "niqe", "ma", "pi", "pi_reason", "niqe_reason"]
    with atomic_path(args.per_image) as tmp:
        per_image[cols].to_csv(tmp, index=False, float_format="%.6f")
    seg_summary = args.seg / "summary.json"
    summary["segmenter"] = json.loads(seg_summary.read_text())["segmenter"] if seg_summary.exists() else None
    write_json(args.summary, summary)
    write_json(args.metrics, compared_metrics(summary, compared))


if __name__ == "__main__":
    main_guard(main)
