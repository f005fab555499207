"""train_gan: GAN training of one preset of the paper's Fig. 11 (esrgan, +fa, +spsa, spsagan).

Starts from the preset's PSNR model (RRDB for esrgan/+fa/+spsa, RRSB for spsagan); the loss is
perceptual (VGG19 conv5_4) + 5e-3 relativistic-average GAN + 1e-2 L1, with 5e-4 for the attention
parameters and 1e-4 for the rest. Training crops mix the sets in `mix` (OST : DIV2K = 10 : 1 in the
paper); sets in `selected_only` keep only make_seg_maps' multi-category selection. Presets with SPSA
read the segmentation maps; the others never load them. Writes `<out>/model.pt` atomically and
dvclive metrics in `<out>/live/`; resume checkpoints go to `<ckpt-root>/train_gan-<instance>/...`.
"""

from pathlib import Path

from spsagan.models.presets import needs_seg
from spsagan.pipeline.step import main_guard, parse, stage_parser
from spsagan.training.data import load_val_images, open_train_data
from spsagan.training.gan import train_gan
from spsagan.training.schedule import step_milestones

SHARED_KEYS = ("iters", "batch_size", "crop_size", "lr_attention", "lr_d", "lr_gamma", "perceptual_layer",
               "d_num_feat", "val_every", "ckpt_every", "log_every", "seed", "deterministic")


def selected_sources(seg_root: Path, sets: list[str]) -> dict[str, list[str]]:
    sources = {}
    for name in sets:
        listing = seg_root / "selection" / f"{name}_selected.txt"
        if not listing.exists():
            raise FileNotFoundError(f"{listing} does not exist: train_gan.selected_only names {name!r}, "
                                    f"so make_seg_maps.select_set must be {name!r}")
        sources[name] = listing.read_text().split()
        if not sources[name]:
            raise ValueError(f"{listing}: no image of {name} passed the multi-category selection; "
                             "lower make_seg_maps.min_categories or min_fraction")
    return sources


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, type=Path, help="make_lr's output folder")
    parser.add_argument("--seg", required=True, type=Path, help="make_seg_maps' output folder")
    parser.add_argument("--init", required=True, type=Path, help="the preset's PSNR model")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--ckpt-root", required=True, type=Path)
    args, cfg = parse(parser, "train_gan")
    prior = needs_seg(args.preset)
    val_seg = args.seg / cfg["val_set"] if prior else None
    val = load_val_images(args.data / cfg["val_set"] / "HR", args.data / cfg["val_set"] / "LR_x4", val_seg)
    data = open_train_data(args.data, {k: float(v) for k, v in cfg["mix"].items()},
                           seg_root=args.seg if prior else None, val=val,
                           sources=selected_sources(args.seg, cfg["selected_only"]))
    train_cfg = {
        "preset": args.preset, **{k: cfg[k] for k in SHARED_KEYS},
        "lr": cfg["lr_g"], "lr_milestones": step_milestones(cfg["iters"], cfg["lr_step"]),
        "weight_perceptual": cfg["w_perceptual"], "weight_gan": cfg["w_gan"], "weight_pixel": cfg["w_pixel"],
        "perceptual_weights": cfg["perceptual_weights"] or None,
    }
    summary = train_gan(train_cfg, args.init, data, args.out / "model.pt", args.ckpt_root, args.out / "live",
                        instance=args.out.name)
    print(f"train_gan: {args.out.name}: {summary}")


if __name__ == "__main__":
    main_guard(main)
