"""make_seg_maps: segmentation priors for every training and test image of the profile.

For each dataset in params: `<out>/<dataset>/<image>.npz` (8 class probabilities at HR size,
uint8-quantised) and, for training sets, `<out>/<dataset>/sub/<sub>.npz` aligned with make_lr's
sub-images. Also the multi-category selection of `select_set` (`<out>/selection/<set>.csv` and
`<set>_selected.txt`), a figure per test image (`<out>/figures/`) and `<out>/summary.json`.
Every map file records which segmenter made it. Work is resumable per image: maps are computed
into the `--work` folder (kept across failures) and linked into the output when all are done.
"""

import os
import shutil
from pathlib import Path

from spsagan.atomic import atomic_dir, write_json
from spsagan.data.pairs import index_path
from spsagan.image import read_image
from spsagan.pipeline.step import main_guard, parse, stage_parser
from spsagan.segmentation.figure import plot_segmentation
from spsagan.segmentation.run import build_segmenter, segment_dataset
from spsagan.segmentation.selection import fractions_from_maps, select_multi_category, selection_paths, write_selection
from spsagan.segmentation.storage import load_seg


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link (copy where links are impossible) every file of src into dst."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


# Facts of this run, kept out of summary.json (see main).
RUN_FACTS = ("computed", "skipped", "sub_computed", "sub_skipped", "seconds")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--lr-root", required=True, type=Path, help="make_lr's output folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path, help="per-image maps, kept across failures")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args, cfg = parse(parser, "make_seg_maps")
    # Built first: a missing or wrong weights file stops here, before any map is written.
    segmenter = build_segmenter(
        cfg.segmenter, weights=cfg.weights or None, seed=cfg.seed, device=args.device, sha256=cfg.weights_sha256 or None
    )
    summary = {"profile": args.profile, "segmenter": segmenter.label, "semantic": segmenter.semantic, "sets": {}}
    # How this run went (time, maps computed or found from an interrupted run) goes to the log, not into the
    # outputs: a rerun that makes the same maps writes the same bytes, so nothing downstream reruns.
    run_facts = {}
    for name in cfg.sets:
        hr_dir = args.lr_root / name / "HR"
        if not hr_dir.is_dir():
            raise FileNotFoundError(f"{hr_dir} does not exist: add {name!r} to make_lr's train_sets or test_sets")
        index = index_path(args.lr_root / name)
        done = segment_dataset(
            segmenter, hr_dir, args.work / name, index_csv=index if index.exists() else None, batch_size=cfg.batch_size
        )
        run_facts[name] = {k: done.pop(k) for k in RUN_FACTS}
        summary["sets"][name] = done

    with atomic_dir(args.out) as tmp:
        for name in cfg.sets:
            link_tree(args.work / name, tmp / name)
        fractions, meta = fractions_from_maps(tmp / cfg.select_set)
        table = select_multi_category(fractions, cfg.min_categories, cfg.min_fraction, semantic=segmenter.semantic)
        selected = write_selection(table, *selection_paths(tmp, cfg.select_set), segmenter.label)
        summary["selection"] = {"set": cfg.select_set, "selected": selected, "of": len(table)}
        test_sets = [n for n in cfg.sets if not index_path(args.lr_root / n).exists()]
        for name in test_sets:
            for path in sorted((args.lr_root / name / "HR").glob("*.png"))[: cfg.figures_per_set]:
                plot_segmentation(
                    read_image(path, gray="rgb"),
                    load_seg(tmp / name / f"{path.stem}.npz"),
                    tmp / "figures" / f"{name}_{path.stem}.png",
                    title=f"{name}/{path.stem}",
                    segmenter_label=segmenter.label,
                )
        write_json(tmp / "summary.json", summary)
    print(f"make_seg_maps: {segmenter.label}; selected {len(selected)}/{len(table)} of {cfg.select_set}")
    print(f"make_seg_maps run: {run_facts}")  # the rehearsal reads each set's seconds from this line


if __name__ == "__main__":
    main_guard(main)
