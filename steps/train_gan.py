"""train_gan: GAN training of one preset of the paper's Fig. 11 (esrgan, +fa, +spsa, spsagan).

Starts from the preset's PSNR model (`--init`: RRDB for esrgan/+fa/+spsa, RRSB for spsagan); the
loss is perceptual (VGG19 conv5_4) + 5e-3 relativistic-average GAN + 1e-2 L1, with 5e-4 for the
attention parameters and 1e-4 for the rest. Training crops mix the sets in `mix` (OST : DIV2K =
10 : 1 in the paper); sets in `selected_only` keep only make_seg_maps' multi-category selection.
Presets with SPSA read the segmentation maps; the others never load them. Writes `--model`
atomically, dvclive metrics in `--live` (losses, validation PSNR), the generator's parameter count in
`--metrics` (what `dvc exp show` compares) and prints its summary (it/s) as its log's last line;
resume checkpoints go to `<ckpt-root>/train_gan-<instance>/`.
"""

from pathlib import Path

from spsagan.atomic import write_json
from spsagan.models.presets import needs_seg
from spsagan.pipeline.step import main_guard, parse, stage_parser
from spsagan.segmentation.selection import read_selected
from spsagan.training.data import load_val_images, open_train_data
from spsagan.training.gan import train_gan
from spsagan.training.loop import compared_metrics


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, type=Path, help="make_lr's output folder")
    parser.add_argument("--seg", required=True, type=Path, help="make_seg_maps' output folder")
    parser.add_argument("--init", required=True, type=Path, help="the preset's PSNR model")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--model", required=True, type=Path, help="the model file to write")
    parser.add_argument("--live", required=True, type=Path, help="dvclive folder")
    parser.add_argument("--metrics", required=True, type=Path, help="the numbers experiments compare (JSON)")
    parser.add_argument("--ckpt-root", required=True, type=Path)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args, cfg = parse(parser, "train_gan")
    prior = needs_seg(args.preset)
    val = load_val_images(
        args.data / cfg.val_set / "HR", args.data / cfg.val_set / "LR_x4", args.seg / cfg.val_set if prior else None
    )
    data = open_train_data(
        args.data,
        {k: float(v) for k, v in cfg.mix.items()},
        seg_root=args.seg if prior else None,
        val=val,
        sources={name: read_selected(args.seg, name) for name in cfg.selected_only},
    )
    summary = train_gan(
        cfg,
        args.preset,
        args.init,
        data,
        args.model,
        args.ckpt_root,
        args.live,
        device=args.device,
        instance=args.model.parent.name,
    )
    write_json(args.metrics, compared_metrics(summary))
    print(f"train_gan: {args.model.parent.name}: {summary}")


if __name__ == "__main__":
    main_guard(main)
