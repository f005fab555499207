"""make_lr: mod-crop the HR images, make x4 LR with MATLAB-exact bicubic, cut training sub-images.

For each dataset: `<out>/<dataset>/HR/*.png` (mod-4), `<out>/<dataset>/LR_x4/*.png`, and for
training sets `<out>/<dataset>/sub/{HR,LR_x4}/*.png` with `sub/index.csv`. Training sets are
converted to RGB (gray replicated); test sets keep gray images gray, as the metric protocol needs.
"""

import json
import shutil
from pathlib import Path

from spsagan.atomic import atomic_dir, write_json
from spsagan.data.pairs import make_pairs
from spsagan.pipeline.step import main_guard, parse, stage_parser, threads


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--src", required=True, type=Path, help="download_data's output folder")
    parser.add_argument("--out", required=True, type=Path)
    args, cfg = parse(parser, "make_lr")
    summary = {}
    with atomic_dir(args.out) as tmp:
        for name in [*cfg.train_sets, *cfg.test_sets]:
            hr_dir = args.src / name / "HR"
            if not hr_dir.is_dir():
                raise FileNotFoundError(f"{hr_dir} does not exist: add {name!r} to download_data.datasets")
            train = name in cfg.train_sets
            provenance = args.src / name / "provenance.json"
            origin = json.loads(provenance.read_text(encoding="utf-8")) if provenance.exists() else {}
            summary[name] = make_pairs(
                hr_dir,
                tmp / name,
                scale=cfg.scale,
                gray="rgb" if train else "keep",
                subimage_size=cfg.subimage_size if train else None,
                subimage_step=cfg.subimage_step if train else None,
                min_size=cfg.min_size if train else 0,
                workers=min(4, threads()),
                progress=True,
                sources=origin.get("sources"),  # a user's images are named as the user knows them
                source_dir=origin.get("local_folder"),
            )
            if provenance.exists():  # where the images came from, for the reports
                shutil.copy(provenance, tmp / name / "provenance.json")
            print(f"make_lr: {name}: {summary[name]['images']} images, {summary[name]['subimages']} sub-images")
        write_json(tmp / "summary.json", {"profile": args.profile, "datasets": summary})


if __name__ == "__main__":
    main_guard(main)
