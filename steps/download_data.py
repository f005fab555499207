"""download_data: the HR images of every dataset of the profile, verified, as PNG folders.

Writes `<out>/<dataset>/HR/*.png` and `<out>/<dataset>/provenance.json` for each dataset in
params; archives are cached (resumable, checksummed) in `downloads_dir`, which is not an output.
Datasets that need a manual download (OST from Google Drive) stop with one message saying which
file to put where; `local` in params points at files you already have.
"""

from pathlib import Path

from spsagan.atomic import atomic_dir
from spsagan.data.download import prepare_dataset
from spsagan.pipeline.step import main_guard, parse, stage_parser


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, type=Path)
    args, cfg = parse(parser, "download_data")
    # The whole folder is swapped in at the end, so a failure leaves no dataset that looks complete.
    with atomic_dir(args.out) as tmp:
        for name in cfg.datasets:
            folder = prepare_dataset(
                name,
                tmp,
                source=cfg.source,
                names=cfg.demo_split.get(name),
                archive_dir=cfg.downloads_dir,
                local=cfg.local.get(name),
                mirror=cfg.mirror or None,
                progress=True,
            )
            print(f"download_data: {name}: {sum(1 for _ in (folder / 'HR').iterdir())} images")


if __name__ == "__main__":
    main_guard(main)
