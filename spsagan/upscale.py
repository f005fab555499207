"""Upscale your own images x4 with a trained checkpoint: `spsagan-upscale CKPT IMG... -o OUT`.

The checkpoint rebuilds its generator alone (`spsagan.models.modelfile.load_generator`). For an SPSA
generator the segmentation prior is the pipeline's: the segmenter recorded in the checkpoint
(`ckpt["segmenter"]`) runs on the MATLAB-bicubic x4 upsampling of the input
(`spsagan.segmentation.run.prior_from_lq`, the function make_seg_maps uses), giving (8, 4h, 4w)
probabilities, used at the uint8 precision the pipeline stores them in. So a make_lr LR image
upscales exactly as the evaluate stage super-resolves it (when both run untiled).

Memory: the image runs in LR tiles of `tile` pixels with `tile_overlap` pixels of context
(`spsagan.models.tiling`; tile None: in one piece). Without attention the whole network is tiled;
with attention the trunk and the upsampling tail are, and the attention runs on the whole feature
map in query-row chunks whose maps fit `max_attention_bytes` (time grows with N^2, N = h*w). The
chunking is exact up to float rounding: a different budget can move a few output pixels by one grey
level. Tiling is exact up to float rounding when the overlap reaches the receptive radius
(15 per RRDB block + 4 LR pixels); smaller overlaps are approximations (docs/models.md).

Time: before any inference with an attention model, the attention's time is estimated from each
image's N and one attention call timed on this device (`spsagan.models.attention_cost`) and
printed. Beyond `max_minutes` (`--max-minutes`, default 10) the run stops with one line, unless the
budget is raised or `attention="tiled"` (`--attention tiled`) computes the attention within
`attention_tile` x `attention_tile` LR tiles: minutes instead of hours, but approximate (each pixel
attends only to its own tile), and the messages say so.

Input rules (`spsagan.image.read_image`): RGB as is; gray stays gray (the network sees it
replicated to RGB and the output is the channel mean); an alpha channel is dropped; palette and
16-bit images are converted to 8-bit RGB/gray. Every input is read, and the output folder checked
and created, before any inference, so an unreadable file or an output path blocked by a file stops
the run with its name before anything is written. Each output is written atomically as
`<out_dir>/<stem><suffix>.png`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spsagan.errors import ConfigError, ImageError
from spsagan.evaluation import list_images, sr_with_model
from spsagan.image import read_image, write_image
from spsagan.models import attention_cost, tiling
from spsagan.models.attention import DEFAULT_MAX_BYTES, set_attention_budget
from spsagan.models.modelfile import load_generator
from spsagan.runtime import resolve_device

DEFAULT_MAX_MINUTES = 10.0
DEFAULT_ATTENTION_TILE = 64  # LR pixels a side for --attention tiled


def _expand(inputs: list[str | os.PathLike]) -> list[Path]:
    """Files as given; folders replaced by the image files directly inside them (sorted)."""
    files, missing = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list(list_images(path).values())
            if not found:
                raise ConfigError(f"{path}: folder holds no image files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            missing.append(str(path))
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(missing)}")
    if not files:
        raise ConfigError("no input images given")
    return files


def _outputs(files: list[Path], out_dir: Path, suffix: str) -> list[Path]:
    outs = [out_dir / f"{f.stem}{suffix}.png" for f in files]
    seen: dict[Path, Path] = {}
    clashes = []
    for f, out in zip(files, outs):
        if out in seen:
            clashes.append(f"{seen[out]} and {f} -> {out.name}")
        seen.setdefault(out, f)
        if out.resolve() == f.resolve():
            clashes.append(f"{f} would be overwritten by its own output")
    if clashes:
        raise ConfigError("output names clash: " + "; ".join(clashes) + "; rename the inputs or change the suffix")
    return outs


def _make_out_dir(out_dir: Path, outs: list[Path]) -> None:
    """Create the output folder, or fail naming the path when a file stands in its way."""
    blocker = next((p for p in (out_dir, *out_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocker == out_dir:
        raise ConfigError(f"output folder {out_dir} is a file; pass a folder to -o")
    if blocker is not None:
        raise ConfigError(f"output folder {out_dir} cannot be created: {blocker} is a file; pass another -o")
    folders = [o for o in outs if o.is_dir()]
    if folders:
        raise ConfigError(
            f"output path(s) {', '.join(map(str, folders))} are folders; remove them or change the suffix"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output folder {out_dir} cannot be created ({exc.strerror or exc})") from exc


def _check_readable(files: list[Path]) -> list[tuple[int, int]]:
    """Read every input once; returns their (h, w), or raises naming every unreadable file."""
    bad, shapes = [], []
    for f in files:
        try:
            shapes.append(read_image(f, gray="keep").shape[:2])
        except ImageError as exc:
            bad.append(str(exc))
    if bad:
        raise ConfigError(f"{len(bad)} unreadable input(s), nothing written:\n  " + "\n  ".join(bad))
    return shapes


def _stderr(line: str) -> None:
    print(f"spsagan-upscale: {line}", file=sys.stderr)


def duration(minutes: float) -> str:
    """A readable length of time: '40 s', '7.5 min', '56 h'."""
    if minutes < 1.5:
        return f"{minutes * 60:.0f} s"
    if minutes < 90:
        return f"{minutes:.2g} min" if minutes < 10 else f"{minutes:.0f} min"
    return f"{minutes / 60:,.0f} h"


def check_attention_time(
    model: torch.nn.Module,
    shapes: list[tuple[int, int]],
    attention_tile: int | None,
    max_minutes: float | None,
    log: Callable[[str], None],
) -> float:
    """Estimate the attention's minutes for images of these LR `shapes`, say it, and refuse beyond the budget.

    attention_tile: None for exact attention, else the approximate tiled mode's tile side.
    max_minutes: None for no limit. Returns the estimate in minutes.
    """
    seconds, measured, took = attention_cost.estimate_seconds(model, shapes, attention_tile)
    minutes = seconds / 60
    pixels = sum(h * w for h, w in shapes)
    basis = f"one attention call over {measured:,} pixels took {took:.3g} s here"
    if attention_tile is None:
        log(
            f"exact attention over {pixels:,} LR pixels ({len(shapes)} image(s)): about {duration(minutes)} "
            f"({basis}; time grows with the square of the pixel count)"
        )
    else:
        log(
            f"approximate attention, computed within {attention_tile}x{attention_tile} LR-pixel tiles "
            f"(--attention tiled; no pixel attends beyond its tile): about {duration(minutes)} ({basis})"
        )
    if max_minutes is not None and minutes > max_minutes:
        mode = "exact" if attention_tile is None else "tiled"
        raise ConfigError(
            f"{mode} attention would take about {duration(minutes)}, over the --max-minutes budget of "
            f"{max_minutes:g}: raise --max-minutes to run it anyway"
            + (", or pass --attention tiled for an approximate result" if attention_tile is None else "")
        )
    return minutes


def parse_segmenter_label(label: str) -> tuple[str, dict]:
    """Split a recorded segmenter label into (build_segmenter name, details).

    Labels are what the segmenters call themselves: `standin(colour-texture-kmeans-v1 seed=0)` ->
    ("standin", {"seed": 0}); `outdoor_scene_seg(segmentation_OST_bic.pth sha256:0123...)` ->
    ("outdoor_scene_seg", {"sha256_prefix": "0123..."}). A bare name is accepted too.
    """
    head = re.split(r"[(\s]", label.strip(), maxsplit=1)[0]
    name = {"outdoorsceneseg": "outdoor_scene_seg"}.get(head.lower().replace("_", ""), head)
    details: dict = {}
    if m := re.search(r"seed=(\d+)", label):
        details["seed"] = int(m.group(1))
    if m := re.search(r"sha256:([0-9a-f]+)", label):
        details["sha256_prefix"] = m.group(1)
    if "random weights" in label:  # OutdoorSceneSeg's rehearsal stand-in: rebuilt from its seed
        details["random_weights"] = True
    return name, details


def load_segmenter(ckpt: dict, checkpoint: Path, weights, seed: int | None, device: torch.device):
    """The segmenter recorded in the checkpoint, built as in training (`.segment([hr]) -> [(8, H, W)]`).

    seed: None uses the seed recorded in the label (stand-in); weights: the OutdoorSceneSeg file,
    checked against the digest prefix recorded in the label.
    """
    from spsagan.segmentation.run import build_segmenter

    label = ckpt.get("segmenter")
    if not label:
        raise ConfigError(
            f"{checkpoint}: the generator has an SPSA layer but the checkpoint records no "
            "segmenter ('segmenter' key); it cannot compute the segmentation prior"
        )
    name, details = parse_segmenter_label(str(label))
    seed = details.get("seed", 0) if seed is None else seed
    if details.get("random_weights") and weights is None:
        from spsagan.segmentation.outdoor_scene_seg import RANDOM_WEIGHTS

        weights = RANDOM_WEIGHTS
    segmenter = build_segmenter(name, weights=weights, seed=seed, device=device)
    recorded = details.get("sha256_prefix")
    actual = getattr(segmenter, "weights_sha256", None)
    if recorded and actual and not actual.startswith(recorded):
        raise ConfigError(
            f"{weights}: these segmenter weights (sha256 {actual[:16]}...) are not the ones the "
            f"checkpoint was trained with ({label}); pass the same file"
        )
    return segmenter


def upscale(
    checkpoint: str | os.PathLike,
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    device: str | torch.device | None = None,
    max_attention_bytes: int = DEFAULT_MAX_BYTES,
    segmenter_weights: str | os.PathLike | None = None,
    segmenter_seed: int | None = None,
    suffix: str = "_x4",
    tile: int | None = tiling.DEFAULT_TILE,
    tile_overlap: int = tiling.DEFAULT_OVERLAP,
    progress: bool = True,
    max_minutes: float | None = DEFAULT_MAX_MINUTES,
    attention: str = "exact",
    attention_tile: int = DEFAULT_ATTENTION_TILE,
    log: Callable[[str], None] = _stderr,
) -> list[Path]:
    """Super-resolve image files x4 with a checkpoint; returns the written PNG paths, in input order.

    inputs: image files and/or folders of images. out_dir: created if missing (before any inference).
    device: "auto" (or None) picks CUDA when available, else the CPU (`spsagan.runtime.resolve_device`).
    max_attention_bytes: budget for the attention maps of one query-row chunk.
    segmenter_weights: the OutdoorSceneSeg weights file, when the checkpoint was trained with it.
    segmenter_seed: the stand-in's clustering seed; None takes the one recorded in the checkpoint.
    tile, tile_overlap: LR tile side and context in pixels (`spsagan.models.tiling`); tile None: untiled.
    max_minutes: budget for the estimated attention time (module docstring); None: no limit.
    attention: "exact" (over the whole image, as trained) or "tiled" (approximate, within
        `attention_tile` x `attention_tile` LR tiles). log: where the estimate line goes (stderr).
    """
    if attention not in ("exact", "tiled"):
        raise ConfigError(f"--attention must be exact or tiled, got {attention!r}")
    if attention == "tiled":
        try:
            tiling.check_tiling(attention_tile, 0)
        except ValueError as exc:
            raise ConfigError(f"--attention-tile: {exc}") from exc
    if max_minutes is not None and not max_minutes > 0:
        raise ConfigError(f"--max-minutes must be positive, got {max_minutes!r}")
    checkpoint = Path(checkpoint)
    if tile is not None:
        try:
            tiling.check_tiling(tile, tile_overlap)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    files = _expand(inputs)
    outs = _outputs(files, Path(out_dir), suffix)
    shapes = _check_readable(files)
    _make_out_dir(Path(out_dir), outs)
    device = resolve_device(device or "auto")
    try:
        model, ckpt = load_generator(checkpoint, map_location="cpu")
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    model.to(device)
    if int(max_attention_bytes) < 1:
        raise ConfigError(f"max_attention_bytes must be positive, got {max_attention_bytes}")
    set_attention_budget(model, max_attention_bytes)
    attention_tile = attention_tile if attention == "tiled" else None
    if model.attention is not None:
        check_attention_time(model, shapes, attention_tile, max_minutes, log)
    needs_seg = model.arch.get("attention") == "spsa"
    segmenter = load_segmenter(ckpt, checkpoint, segmenter_weights, segmenter_seed, device) if needs_seg else None

    written = []
    for path, out in tqdm(list(zip(files, outs)), desc="upscale x4", unit="image", disable=not progress):
        lq = read_image(path, gray="keep")
        seg = stored_prior(segmenter, lq) if segmenter is not None else None
        sr = sr_with_model(model, lq, seg=seg, tile=tile, tile_overlap=tile_overlap, attention_tile=attention_tile)
        write_image(out, sr)
        written.append(out)
    return written


def stored_prior(segmenter, lq: np.ndarray) -> np.ndarray:
    """The pipeline's prior of an LR image at its storage precision: float32 (8, 4h, 4w), multiples of 1/255.

    make_seg_maps stores `prior_from_lq` quantised to uint8 and training and evaluation read it back,
    so the network sees the same values here.
    """
    from spsagan.segmentation.run import prior_from_lq
    from spsagan.segmentation.storage import dequantize, quantize

    return dequantize(quantize(prior_from_lq(segmenter, lq)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spsagan-upscale",
        description="Super-resolve images x4 with a trained spsagan checkpoint (ESRGAN, +FA, +SPSA or SPSAGAN).",
    )
    parser.add_argument("checkpoint", help="checkpoint file written by the training stage (.pth)")
    parser.add_argument("inputs", nargs="+", help="image files or folders of images")
    parser.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda or cuda:N")
    parser.add_argument(
        "--max-attention-mb",
        type=float,
        default=DEFAULT_MAX_BYTES / 2**20,
        help="memory budget of the attention maps in MiB (default %(default)g); results are "
        "exact up to float rounding (a few pixels may move by one grey level)",
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=tiling.DEFAULT_TILE,
        help="process the input in tiles of this many LR pixels a side, to bound memory; "
        "0: in one piece (default %(default)s)",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=tiling.DEFAULT_OVERLAP,
        help="LR pixels of context around each tile; more is closer to untiled output (default %(default)s)",
    )
    parser.add_argument(
        "--segmenter-weights",
        default=None,
        help="weights of the segmenter recorded in the checkpoint (OutdoorSceneSeg: segmentation_OST_bic.pth)",
    )
    parser.add_argument(
        "--segmenter-seed",
        type=int,
        default=None,
        help="seed of the stand-in segmenter (default: the one recorded in the checkpoint)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=DEFAULT_MAX_MINUTES,
        help="stop before starting when the attention is estimated to take longer (default %(default)g); "
        "the estimate is printed either way",
    )
    parser.add_argument(
        "--attention",
        choices=["exact", "tiled"],
        default="exact",
        help="exact: attention over the whole image, as trained (time grows with N^2); tiled: APPROXIMATE, "
        "computed within --attention-tile tiles (default %(default)s)",
    )
    parser.add_argument(
        "--attention-tile",
        type=int,
        default=DEFAULT_ATTENTION_TILE,
        help="LR pixels a side of the tiles of --attention tiled (default %(default)s)",
    )
    parser.add_argument("--suffix", default="_x4", help="appended to each output's file stem (default %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; returns the exit status (0 ok, 1 error)."""
    args = build_parser().parse_args(argv)
    try:
        written = upscale(
            args.checkpoint,
            args.inputs,
            args.output,
            device=args.device,
            max_attention_bytes=int(args.max_attention_mb * 2**20),
            segmenter_weights=args.segmenter_weights,
            segmenter_seed=args.segmenter_seed,
            suffix=args.suffix,
            tile=args.tile or None,
            tile_overlap=args.tile_overlap,
            progress=not args.quiet,
            max_minutes=args.max_minutes,
            attention=args.attention,
            attention_tile=args.attention_tile,
        )
    except (ConfigError, ImageError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"spsagan-upscale: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
