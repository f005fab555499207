"""evaluate: every method on every test set of the profile.

Methods: bicubic, the PSNR models (`rrdb_psnr`, `rrsb_psnr`), the four GAN presets (`esrgan`,
`+fa`, `+spsa`, `spsagan`), plus any outside checkpoints and SR folders named in params.
Writes `<out>/sr/<method>/<dataset>/<image>.png`, `<out>/per_image.csv` (PSNR/SSIM on Y with the
border shave, NIQE, Ma/PI where available) and `<out>/summary.json` (set means, parameters, FLOPs,
inference time with device and dtype, the segmenter and data provenance: DVC's metrics file).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spsagan.atomic import atomic_dir, atomic_path, write_json
from spsagan.evaluation import bicubic_sr, evaluate_pairs, read_sr_folder, sr_with_model, summarise
from spsagan.image import read_image, to_tensor, write_image
from spsagan.models.presets import load_generator, needs_seg
from spsagan.models.rrdb import RRDBNet
from spsagan.pipeline.step import main_guard, parse, stage_parser
from spsagan.segmentation.storage import load_seg
from spsagan.timing import device_label, model_cost, time_generator

# Results folders -> method names in the reports (GAN instances use the paper's preset names).
PSNR_MODELS = {"rrdb": "rrdb_psnr", "rrsb": "rrsb_psnr"}
GAN_MODELS = {"esrgan": "esrgan", "fa": "+fa", "spsa": "+spsa", "spsagan": "spsagan"}
TIMING_MAX_IMAGES = 10  # inference time: mean over at most this many images of timing_set


def collect_models(roots: list[Path], outside: dict[str, str]) -> dict[str, tuple[torch.nn.Module, dict]]:
    models = {}
    for root in roots:
        names = PSNR_MODELS if root.name == "pretrain_psnr" else GAN_MODELS
        for folder, method in names.items():
            if (root / folder / "model.pt").exists():
                models[method] = load_generator(root / folder / "model.pt")
    for method, path in outside.items():
        models[method] = (load_outside_rrdb(Path(path)), {"preset": "esrgan", "source": str(path)})
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
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--out", required=True, type=Path)
    args, cfg = parse(parser, "evaluate")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = collect_models(args.models, cfg["outside_checkpoints"])
    rows, summary = [], {"profile": args.profile, "crop_border": cfg["crop_border"],
                         "test_y_channel": cfg["test_y_channel"], "methods": {}, "costs": {}}
    score = dict(crop_border=cfg["crop_border"], test_y_channel=cfg["test_y_channel"], niqe=cfg["niqe"], pi=cfg["pi"])

    with atomic_dir(args.out / "sr") as sr_root:
        for dataset in cfg["test_sets"]:
            hr_dir, lq_dir = args.data / dataset / "HR", args.data / dataset / "LR_x4"
            if not hr_dir.is_dir():
                raise FileNotFoundError(f"{hr_dir} does not exist: add {dataset!r} to make_lr.test_sets")
            names = sorted(p.stem for p in lq_dir.glob("*.png"))
            lqs = {n: read_image(lq_dir / f"{n}.png", gray="keep") for n in names}
            outputs = {"bicubic": {n: bicubic_sr(lq) for n, lq in lqs.items()}}
            for method, (model, ckpt) in models.items():
                seg_dir = args.seg / dataset if needs_seg(ckpt.get("preset", "esrgan")) else None
                outputs[method] = {
                    n: sr_with_model(model, lq, seg=load_seg(seg_dir / f"{n}.npz") if seg_dir else None, device=device)
                    for n, lq in lqs.items()}
            for method, folder in cfg["outside_folders"].items():
                outputs[method] = read_sr_folder(Path(folder) / dataset, hr_dir)
            for method, images in outputs.items():
                for n, img in images.items():
                    write_image(sr_root / method / dataset / f"{n}.png", img)
                frame = evaluate_pairs(images, hr_dir, **score)
                rows.append(frame.assign(method=method, dataset=dataset))
                summary["methods"].setdefault(method, {})[dataset] = summarise(frame)
                print(f"evaluate: {dataset} {method}: PSNR {summary['methods'][method][dataset]['psnr']}")

        timing_dir = args.data / cfg["timing_set"] / "LR_x4"
        timing_names = sorted(p.stem for p in timing_dir.glob("*.png"))[:TIMING_MAX_IMAGES]
        if not timing_names:
            raise FileNotFoundError(f"{timing_dir}: no images (evaluate.timing_set)")
        for method, (model, ckpt) in models.items():
            model.to(device)
            times, cost = [], None
            for n in timing_names:
                lq = to_tensor(read_image(timing_dir / f"{n}.png", gray="rgb"))[None]
                seg = None
                if needs_seg(ckpt.get("preset", "esrgan")):
                    seg = torch.from_numpy(load_seg(args.seg / cfg["timing_set"] / f"{n}.npz"))[None]
                t = time_generator(model, lq, seg, warmup=cfg["timing_warmup"], repeats=cfg["timing_repeats"])
                times.append(t["median_s"])
                cost = cost or {**model_cost(model, tuple(lq.shape)), "size": list(lq.shape[2:])}
            summary["costs"][method] = {**cost, "median_s": float(np.mean(times)), "images": len(times),
                                        "device": device_label(device), "dtype": "float32",
                                        "preset": ckpt.get("preset"), "segmenter": ckpt.get("segmenter"),
                                        "perceptual": (ckpt.get("params") or {}).get("perceptual_extractor")}

    per_image = pd.concat(rows, ignore_index=True)
    cols = ["method", "dataset", "name", "psnr", "ssim", "niqe", "ma", "pi", "pi_reason"]
    with atomic_path(args.out / "per_image.csv") as tmp:
        per_image[cols].to_csv(tmp, index=False, float_format="%.6f")
    seg_summary = args.seg / "summary.json"
    summary["segmenter"] = json.loads(seg_summary.read_text())["segmenter"] if seg_summary.exists() else None
    write_json(args.out / "summary.json", summary)


if __name__ == "__main__":
    main_guard(main)
