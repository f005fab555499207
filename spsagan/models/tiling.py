"""Tiled x4 inference: the generator on large images in bounded memory.

The LR image is cut into cores of at most `tile` x `tile` pixels; each core is processed inside a
window grown by `overlap` pixels on every side (clipped at the image border), and only the core's part
of the x4 output is kept. Memory then follows the window, not the image.

What is tiled depends on the generator (`RRDBNet`):
- no attention (ESRGAN, RRSB): the whole network, which is convolutional;
- attention (`+fa`, SPSA): the trunk (`trunk_features`) in tiles, the attention on the whole feature
  map (it reads every LR pixel; its query-row chunks bound its maps by `max_bytes`), then the
  upsampling tail (`tail`) in tiles with `TAIL_OVERLAP`, which makes the tail exact. Exact attention
  takes time N^2 in the N LR pixels; `attention_tile` instead computes it within separate tiles of the
  feature map (`tiled_attention`), an approximation: no pixel attends to one outside its tile.

Accuracy: a convolution near a window edge sees zero padding where the whole image has pixels. An
output pixel depends on the LR pixels within `receptive_radius(arch)` (15 per RRDB block + 4), so an
overlap of at least that radius gives the untiled result up to float rounding. Smaller overlaps
(the default 16, against a radius of 349 for the paper's 23 blocks) trade exactness for memory;
trained networks depend mostly on nearby pixels, and docs/models.md gives measured errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

SCALE = 4
DEFAULT_TILE = 128  # LR pixels
DEFAULT_OVERLAP = 16  # LR pixels
# The tail reads the features within 2 LR pixels of an output pixel (nearest x2, 3x3 conv, nearest x2,
# then three 3x3 convs at x4), so tiling it with this overlap is exact.
TAIL_OVERLAP = 2

Emit = Callable[[int, int, torch.Tensor], None]


class Span(NamedTuple):
    """One tile along an axis: the window [start, stop) read, the core [core_start, core_stop) kept."""

    start: int
    stop: int
    core_start: int
    core_stop: int


def check_tiling(tile: int, overlap: int) -> None:
    """Raise ValueError unless tile >= 1 and overlap >= 0 are integers."""
    for name, value, low in (("tile", tile, 1), ("tile_overlap", overlap, 0)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low} (LR pixels), got {value!r}")


def spans(length: int, tile: int, overlap: int) -> list[Span]:
    """Cut [0, length) into cores of `tile` pixels (the last may be shorter), windows grown by `overlap`.

    Every window is at most tile + 2 * overlap long; one span covers a length up to `tile`.
    """
    check_tiling(tile, overlap)
    out = []
    for core_start in range(0, length, tile):
        core_stop = min(core_start + tile, length)
        out.append(Span(max(0, core_start - overlap), min(length, core_stop + overlap), core_start, core_stop))
    return out


def receptive_radius(arch: dict) -> int:
    """LR pixels an output pixel of the generator `arch` depends on, on each side (attention aside).

    conv_first and conv_body: 1 each; every RRDB: 3 dense blocks of 5 3x3 convs; the tail: TAIL_OVERLAP.
    """
    return 2 + 15 * int(arch["num_block"]) + TAIL_OVERLAP


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int, scale: int, emit: Emit
) -> None:
    """Apply fn to the windows of x and hand each output core to emit(top, left, core).

    x: (B, C, h, w). fn: (B, C, hh, ww) -> (B, C', scale * hh, scale * ww), convolutional.
    emit gets the core's position in the output (scale * LR pixels) and the core (B, C', .., ..).
    """
    height, width = x.shape[-2:]
    for row in spans(height, tile, overlap):
        for col in spans(width, tile, overlap):
            out = fn(x[..., row.start : row.stop, col.start : col.stop])
            top, left = (row.core_start - row.start) * scale, (col.core_start - col.start) * scale
            core = out[
                ...,
                top : top + (row.core_stop - row.core_start) * scale,
                left : left + (col.core_stop - col.core_start) * scale,
            ]
            emit(row.core_start * scale, col.core_start * scale, core)
            del out, core  # free the window's activations before the next one


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int, scale: int
) -> torch.Tensor:
    """`run_tiled` stitched into one tensor (B, C', scale * h, scale * w), allocated once."""
    out: list[torch.Tensor] = []

    def keep(top: int, left: int, core: torch.Tensor) -> None:
        if not out:
            out.append(core.new_empty((*core.shape[:-2], scale * x.shape[-2], scale * x.shape[-1])))
        out[0][..., top : top + core.shape[-2], left : left + core.shape[-1]] = core

    run_tiled(fn, x, tile, overlap, scale, keep)
    return out[0]


def tiled_forward(
    model: torch.nn.Module,
    lq: torch.Tensor,
    seg: torch.Tensor | None,
    tile: int,
    overlap: int,
    emit: Emit | None = None,
    attention_tile: int | None = None,
) -> torch.Tensor | None:
    """model(lq, seg) in tiles (module docstring); call under torch.no_grad().

    lq: (B, 3, h, w) in [0, 1]; seg: (B, 8, 4h, 4w) or None. With `emit`, each sr core
    (B, 3, .., ..) at its x4 position goes to emit(top, left, core) and nothing is returned, so the
    caller can convert it at once (spsagan.evaluation.sr_with_model writes uint8); without, the
    stitched sr (B, 3, 4h, 4w) is returned. attention_tile: None for exact attention, else the
    approximate `tiled_attention` with tiles of that many LR pixels a side.
    """
    fn, x, window_overlap = _final_stage(model, lq, seg, tile, overlap, attention_tile)
    if emit is None:
        return tiled(fn, x, tile, window_overlap, SCALE)
    run_tiled(fn, x, tile, window_overlap, SCALE, emit)
    return None


def _final_stage(model, lq, seg, tile, overlap, attention_tile=None):
    """(fn, its input, overlap) of the part that makes the x4 output, after running what precedes it."""
    if getattr(model, "attention", None) is None:
        return model, lq, overlap  # the whole network; seg only matters to SPSA
    feat = tiled(model.trunk_features, lq, tile, overlap, 1)
    if attention_tile is None:
        return model.tail, model.apply_attention(feat, seg), TAIL_OVERLAP
    return model.tail, tiled_attention(model, feat, seg, attention_tile), TAIL_OVERLAP


def tiled_attention(model: torch.nn.Module, feat: torch.Tensor, seg: torch.Tensor | None, tile: int) -> torch.Tensor:
    """Approximate attention: `model.apply_attention` on each `tile` x `tile` tile of the features alone.

    feat: (B, C, h, w) trunk features; seg: (B, 8, 4h, 4w) or None (feature attention). Returns
    (B, C, h, w). Each pixel attends only to the pixels of its own tile, so the cost is about
    N * tile^2 instead of N^2, and the result differs from exact attention wherever the layer looks
    beyond the tile (seams between tiles can show).
    """
    check_tiling(tile, 0)
    out = torch.empty_like(feat)
    height, width = feat.shape[-2:]
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            rows, cols = slice(top, top + tile), slice(left, left + tile)
            part = None if seg is None else seg[..., 4 * top : 4 * (top + tile), 4 * left : 4 * (left + tile)]
            out[..., rows, cols] = model.apply_attention(feat[..., rows, cols], part)
    return out
