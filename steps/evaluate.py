"""evaluate: every method on every test set of the profile.

Methods: bicubic, every model file given (`--models`, named by the `method` each checkpoint
records: `rrdb_psnr`, `rrsb_psnr`, `esrgan`, `+fa`, `+spsa`, `spsagan`), plus any outside
checkpoints and SR folders named in params. Writes `--sr <dir>/<method>/<dataset>/<image>.png`,
`--per-image` (PSNR/SSIM on Y with the border shave, NIQE, Ma/PI where available) and `--summary`
(set means, parameters, FLOPs, inference time with device and dtype, the segmenter: DVC's metrics).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spsagan.atomic import atomic_dir, atomic_path, write_json
from spsagan.evaluation import bicubic_sr, evaluate_pairs, read_sr_folder, sr_with_model, summarise
from spsagan.image import read_image, to_tensor, write_image
from spsagan.device import device_label, resolve_device
from spsagan.models.presets import load_generator, takes_seg
from spsagan.models.rrdb import RRDBNet
from spsagan.pipeline.step import labelled, main_guard, parse, stage_parser
from spsagan.segmentation.storage import load_seg
from spsagan.timing import model_cost, time_generator


def collect_models(files: list[Path], outside: dict[str, str]) -> dict[str, tuple[torch.nn.Module, dict]]:
    """{method: (model, checkpoint dict)}: each pipeline model under the name its checkpoint records."""
    models = {}
    for path in files:
        model, ckpt = load_generator(path)
        method = ckpt.get("method") or ckpt["preset"]
        if method in models:
            raise ValueError(f"--models: {path} and another file are both method {method!r}")
        models[method] = (model, ckpt)
    for method, path in outside.items():
        model = load_outside_rrdb(Path(path))
        models[method] = (model, {"preset": "esrgan", "method": method, "arch": model.arch, "source": str(path)})
    return models


def load_outside_rrdb(path: Path) -> torch.nn.Module:
    """A published ESRGAN/BasicSR RRDBNet file (`params`/`params_ema` or a bare state dict)."""
    if not path.exists():
        raise FileNotFoundError(f"evaluate.outside_checkpoints: {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("params_ema", "params"):
        if isinstance(state, dict) and key in state:
            state = state[key]
            break
    num_block = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    model = RRDBNet(num_feat=state["conv_first.weight"].shape[0], num_block=num_block,
                    num_grow_ch=state["body.0.rdb1.conv1.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    return model.eval()


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, type=Path, help="make_lr's output folder")
    parser.add_argument("--seg", required=True, type=Path, help="make_seg_maps' output folder")
    parser.add_argument("--models", nargs="+", required=True, help="label=model.pt of every pipeline model")
    parser.add_argument("--sr", required=True, type=Path, help="folder for the SR images")
    parser.add_argument("--per-image", required=True, type=Path, help="per-image scores (CSV)")
    parser.add_argument("--summary", required=True, type=Path, help="set means and costs (JSON)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args, cfg = parse(parser, "evaluate")
    device = resolve_device(args.device)
    models = collect_models(list(labelled(args.models, "--models").values()), cfg.outside_checkpoints)
    rows, summary = [], {"profile": args.profile, "crop_border": cfg.crop_border,
                         "test_y_channel": cfg.test_y_channel, "methods": {}, "costs": {}}
    score = dict(crop_border=cfg.crop_border, test_y_channel=cfg.test_y_channel, niqe=cfg.niqe, pi=cfg.pi)

    with atomic_dir(args.sr) as sr_root:
        for dataset in cfg.test_sets:
            hr_dir, lq_dir = args.data / dataset / "HR", args.data / dataset / "LR_x4"
            if not hr_dir.is_dir():
                raise FileNotFoundError(f"{hr_dir} does not exist: add {dataset!r} to make_lr.test_sets")
            names = sorted(p.stem for p in lq_dir.glob("*.png"))
            lqs = {n: read_image(lq_dir / f"{n}.png", gray="keep") for n in names}
            outputs = {"bicubic": {n: bicubic_sr(lq) for n, lq in lqs.items()}}
            for method, (model, ckpt) in models.items():
                seg_dir = args.seg / dataset if takes_seg(ckpt["arch"]) else None
                outputs[method] = {
                    n: sr_with_model(model, lq, seg=load_seg(seg_dir / f"{n}.npz") if seg_dir else None, device=device)
                    for n, lq in lqs.items()}
            for method, folder in cfg.outside_folders.items():
                outputs[method] = read_sr_folder(Path(folder) / dataset, hr_dir)
            for method, images in outputs.items():
                for n, img in images.items():
                    write_image(sr_root / method / dataset / f"{n}.png", img)
                frame = evaluate_pairs(images, hr_dir, **score)
                rows.append(frame.assign(method=method, dataset=dataset))
                summary["methods"].setdefault(method, {})[dataset] = summarise(frame)
                print(f"evaluate: {dataset} {method}: PSNR {summary['methods'][method][dataset]['psnr']}")

        timing_dir = args.data / cfg.timing_set / "LR_x4"
        timing_names = sorted(p.stem for p in timing_dir.glob("*.png"))
        timing_names = timing_names[: None if cfg.timing_images == "all" else cfg.timing_images]
        if not timing_names:
            raise FileNotFoundError(f"{timing_dir}: no images (evaluate.timing_set)")
        for method, (model, ckpt) in models.items():
            model.to(device)
            times, cost = [], None
            for n in timing_names:
                lq = to_tensor(read_image(timing_dir / f"{n}.png", gray="rgb"))[None]
                seg = None
                if takes_seg(ckpt["arch"]):
                    seg = torch.from_numpy(load_seg(args.seg / cfg.timing_set / f"{n}.npz"))[None]
                t = time_generator(model, lq, seg, warmup=cfg.timing_warmup, repeats=cfg.timing_repeats)
                times.append(t["median_s"])
                cost = cost or {**model_cost(model, tuple(lq.shape)), "size": list(lq.shape[2:])}
            summary["costs"][method] = {**cost, "median_s": float(np.mean(times)), "images": len(times),
                                        "device": device_label(device), "dtype": "float32",
                                        "preset": ckpt.get("preset"), "segmenter": ckpt.get("segmenter"),
                                        "perceptual": (ckpt.get("info") or {}).get("perceptual_extractor"),
                                        "train_precision": (ckpt.get("info") or {}).get("precision"),
                                        "num_block": ckpt["arch"]["num_block"], "num_feat": ckpt["arch"]["num_feat"],
                                        "iters": ckpt.get("step"),
                                        "crop_size": (ckpt.get("params") or {}).get("crop_size")}

    per_image = pd.concat(rows, ignore_index=True)
    cols = ["method", "dataset", "name", "psnr", "ssim", "niqe", "ma", "pi", "pi_reason"]
    with atomic_path(args.per_image) as tmp:
        per_image[cols].to_csv(tmp, index=False, float_format="%.6f")
    seg_summary = args.seg / "summary.json"
    summary["segmenter"] = json.loads(seg_summary.read_text())["segmenter"] if seg_summary.exists() else None
    write_json(args.summary, summary)



if __name__ == "__main__":
    main_guard(main)
