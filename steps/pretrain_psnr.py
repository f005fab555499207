"""pretrain_psnr: L1 (PSNR-oriented) training of a generator preset's attention-free network.

Instance `rrdb` trains the RRDB (used to measure dissimilarity, and to initialise esrgan, +fa and
+spsa); instance `rrsb` trains the pruned RRSB from scratch with prune's mask (initialises spsagan).
Writes `<out>/model.pt` atomically at the end and dvclive metrics/plots in `<out>/live/`; resume
checkpoints go to `<ckpt-root>/pretrain_psnr-<instance>/<hash of the params>/`, so a killed or
preempted run continues where it stopped when rerun.
"""

from pathlib import Path

from spsagan.pipeline.step import main_guard, parse, stage_parser
from spsagan.training.data import load_val_images, open_train_data
from spsagan.training.psnr import train_psnr
from spsagan.training.schedule import step_milestones


def subimage_counts(root: Path, sets: list[str]) -> dict[str, float]:
    """Sampling ratio of each training set: its number of sub-images (uniform over all of them)."""
    counts = {}
    for name in sets:
        index = root / name / "sub" / "index.csv"
        if not index.exists():
            raise FileNotFoundError(f"{index} does not exist: add {name!r} to make_lr.train_sets")
        counts[name] = float(sum(1 for _ in index.open()) - 1)
    return counts


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, type=Path, help="make_lr's output folder")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--mask", type=Path, default=None, help="prune's mask.json (RRSB)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--ckpt-root", required=True, type=Path)
    args, cfg = parse(parser, "pretrain_psnr")
    val = load_val_images(args.data / cfg["val_set"] / "HR", args.data / cfg["val_set"] / "LR_x4")
    data = open_train_data(args.data, subimage_counts(args.data, cfg["train_sets"]), val=val)
    train_cfg = {
        "preset": args.preset, "keep": str(args.mask) if args.mask else None,
        **{k: cfg[k] for k in ("num_feat", "num_block", "num_grow_ch", "iters", "batch_size", "crop_size", "lr",
                               "lr_gamma", "val_every", "ckpt_every", "log_every", "seed", "deterministic")},
        "lr_milestones": step_milestones(cfg["iters"], cfg["lr_step"]),
    }
    summary = train_psnr(train_cfg, data, args.out / "model.pt", args.ckpt_root, args.out / "live",
                         instance=args.out.name)
    print(f"pretrain_psnr: {args.out.name}: {summary}")


if __name__ == "__main__":
    main_guard(main)
