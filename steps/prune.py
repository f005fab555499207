"""prune: measure connection dissimilarity (eq. 8) on the converged RRDB and decide the RRSB mask.

Writes `--mask` (the SPEC mask format: shared pattern, or one per dense block) and, in `--out`,
`ds.csv` (DS(i, l) per dense block, averaged over K batches of training crops) and `summary.json`
(pruned connections, parameter counts, the mask again and the training sets measured on). Data only:
render_reports draws Fig. 5 from these, so editing the figure code never reruns pruning.
Runs on the CPU (the stage holds no GPU token): forward passes only, minutes even at paper size.
"""

import time
from pathlib import Path

import pandas as pd
import torch

from spsagan.atomic import atomic_dir, atomic_path, write_json
from spsagan.models.modelfile import load_generator
from spsagan.pipeline.step import main_guard, parse, stage_parser
from spsagan.pruning import arch_parameter_count, decide_mask, ds_rows, measure_dissimilarity, pruned_connections
from spsagan.training.data import open_train_data


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, type=Path, help="make_lr's output folder")
    parser.add_argument("--model", required=True, type=Path, help="the PSNR-pretrained RRDB")
    parser.add_argument("--mask", required=True, type=Path, help="the mask file to write")
    parser.add_argument("--out", required=True, type=Path, help="folder for the DS table and summary")
    args, cfg = parse(parser, "prune")
    model, ckpt = load_generator(args.model)
    data = open_train_data(args.data, {name: 1.0 for name in cfg.train_sets})
    sampler = data.sampler(cfg.batch_size, cfg.seed)
    batches = (
        data.make_batch(sampler.draw(k), cfg.crop_size, False)["lq"].float().div(255.0) for k in range(cfg.batches)
    )
    started = time.perf_counter()
    with torch.no_grad():
        ds = measure_dissimilarity(model, batches)
    seconds = time.perf_counter() - started
    keep = decide_mask(ds, scope=cfg.scope, min_gap=cfg.min_gap)

    rrdb_arch = {**ckpt["arch"], "attention": None}
    summary = {
        "profile": args.profile,
        "scope": cfg.scope,
        "min_gap": cfg.min_gap,
        "batches": cfg.batches,
        "train_sets": list(cfg.train_sets),
        "dense_blocks": int(ds.shape[0]),
        "keep": keep,
        "pruned": pruned_connections(keep) if cfg.scope == "shared" else None,
        "params_rrdb": arch_parameter_count(rrdb_arch),
        "params_rrsb": arch_parameter_count({**rrdb_arch, "keep": keep}),
        "device": "cpu",
    }
    with atomic_dir(args.out) as tmp:
        with atomic_path(tmp / "ds.csv") as csv:
            pd.DataFrame(ds_rows(ds)).to_csv(csv, index=False, float_format="%.6f")
        write_json(tmp / "summary.json", summary)
    write_json(args.mask, keep)  # last: the mask exists only with its analysis beside it
    print(
        f"prune: pruned {summary['pruned']}; parameters {summary['params_rrdb']:,} -> {summary['params_rrsb']:,}; "
        f"{cfg.batches} batches in {seconds:.1f} s on the CPU"
    )
    # The time goes to the log, not into the outputs: a rerun that finds the same mask writes the same
    # bytes, so nothing downstream reruns (the rehearsal reads this line).
    print(f"prune timing: {{'measure_seconds': {seconds:.3f}, 'batches': {cfg.batches}}}")


if __name__ == "__main__":
    main_guard(main)
