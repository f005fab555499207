"""pretrain_psnr: L1 (PSNR-oriented) training of a generator preset's attention-free network.

Instance `rrdb` trains the RRDB (used to measure dissimilarity, and to initialise esrgan, +fa and
+spsa); instance `rrsb` trains the pruned RRSB from scratch with prune's mask (initialises spsagan).
Writes `--model` atomically at the end, dvclive metrics/plots in `--live` (losses, validation PSNR),
the generator's parameter count in `--metrics` (what `dvc exp show` compares) and prints its summary
(it/s, time per iteration after the warm-up) as its log's last line; resume checkpoints go
to `<ckpt-root>/pretrain_psnr-<instance>/<hash of the params>/`, so a killed or preempted run
continues where it stopped when rerun.
"""

from pathlib import Path

from spsagan.atomic import write_json
from spsagan.data.pairs import index_path, read_index
from spsagan.pipeline.step import main_guard, parse, stage_parser
from spsagan.pruning import load_mask
from spsagan.training.data import load_val_images, open_train_data
from spsagan.training.loop import compared_metrics
from spsagan.training.psnr import train_psnr


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, type=Path, help="make_lr's output folder")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--mask", type=Path, default=None, help="prune's mask.json (RRSB)")
    parser.add_argument("--model", required=True, type=Path, help="the model file to write")
    parser.add_argument("--live", required=True, type=Path, help="dvclive folder")
    parser.add_argument("--metrics", required=True, type=Path, help="the numbers experiments compare (JSON)")
    parser.add_argument("--ckpt-root", required=True, type=Path)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args, cfg = parse(parser, "pretrain_psnr")
    val = load_val_images(args.data / cfg.val_set / "HR", args.data / cfg.val_set / "LR_x4")
    # Uniform over all sub-images: each set is drawn in proportion to its number of sub-images.
    counts = {name: float(len(read_index(index_path(args.data / name)))) for name in cfg.train_sets}
    data = open_train_data(args.data, counts, val=val)
    summary = train_psnr(
        cfg,
        args.preset,
        data,
        args.model,
        args.ckpt_root,
        args.live,
        keep=load_mask(args.mask) if args.mask else None,
        device=args.device,
        instance=args.model.parent.name,
    )
    write_json(args.metrics, compared_metrics(summary))
    print(f"pretrain_psnr: {args.model.parent.name}: {summary}")


if __name__ == "__main__":
    main_guard(main)
