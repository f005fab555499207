"""Tiled x4 inference (spsagan.models.tiling) and its use by spsagan-upscale, on tiny random generators."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spsagan import upscale as up
from spsagan.evaluation import sr_with_model
from spsagan.image import read_image, to_tensor
from spsagan.models import tiling
from spsagan.models.modelfile import save_model
from spsagan.models.presets import build_generator, preset_arch
from spsagan.segmentation.standin import StandInSegmenter

torch.set_num_threads(1)

# Max |tiled - untiled| of the tiny random ESRGAN below (48x40 LR, tile 16, overlap 4), in [0, 1] units:
# measured 9.2e-6 (overlap 2: 1.0e-2, overlap 0: 7.5e-2); docs/models.md. With the overlap at the
# receptive radius the tiled output is the untiled one up to float rounding.
TILING_ERROR_BOUND = 1e-4


def _generator(preset: str, num_block: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_generator(preset_arch(preset, num_feat=8, num_block=num_block, num_grow_ch=4))
    with torch.no_grad():
        model.conv_last.bias.fill_(0.5)  # mid-grey outputs rather than clamped at 0
        if model.attention is not None:
            model.attention.gamma.fill_(20.0)  # the attention visibly changes the output
    return model.eval()


def _lq(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(xx / (3 + c) + c) * np.cos(yy / (4 + c)) for c in range(3)], axis=2)
    return np.clip(127.5 + 90 * base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def _prior(lq: np.ndarray) -> torch.Tensor:
    from spsagan.segmentation.run import prior_from_lq

    return torch.from_numpy(prior_from_lq(StandInSegmenter(seed=0), lq))[None]


def _float_sr(model, lq: np.ndarray, tile: int | None, overlap: int = 0) -> torch.Tensor:
    """(1, 3, 4h, 4w) float output, untiled (tile None) or tiled."""
    x = to_tensor(lq)[None]
    seg = _prior(lq) if model.arch["attention"] == "spsa" else None
    with torch.no_grad():
        if tile is None:
            return model(x, seg)
        return tiling.tiled_forward(model, x, seg, tile, overlap)


@pytest.mark.parametrize(
    "length, tile, overlap",
    [(1, 128, 16), (48, 16, 4), (50, 16, 4), (70, 16, 0), (17, 16, 30), (128, 128, 16), (129, 128, 16)],
)
def test_spans_cover_once_within_the_window_bound(length, tile, overlap):
    spans = tiling.spans(length, tile, overlap)
    cores = [(s.core_start, s.core_stop) for s in spans]
    assert cores[0][0] == 0 and cores[-1][1] == length
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cores))  # a partition, in order
    for s in spans:
        assert 0 < s.core_stop - s.core_start <= tile
        assert s.start == max(0, s.core_start - overlap) and s.stop == min(length, s.core_stop + overlap)
        assert s.stop - s.start <= tile + 2 * overlap
    assert len(spans) == -(-length // tile)


@pytest.mark.parametrize("preset", ["esrgan", "+fa", "+spsa"])
def test_tiled_model_never_sees_more_than_a_tile(preset):
    """The convolutional parts only ever run on tile + 2 * overlap LR pixels a side (what bounds memory)."""
    model = _generator(preset)
    lq = _lq(70, 50)
    tile, overlap = 16, 4
    sides = []

    def record(module, args):
        sides.append(tuple(args[0].shape[-2:]))

    convs = [model.conv_first] if model.attention is not None else []
    hooks = [m.register_forward_pre_hook(record) for m in (model, *convs)]
    tail_sides = []
    real_tail = model.tail
    model.tail = lambda feat: tail_sides.append(tuple(feat.shape[-2:])) or real_tail(feat)
    attention_sides = []
    if model.attention is not None:
        model.attention.register_forward_pre_hook(lambda m, args: attention_sides.append(tuple(args[0].shape[-2:])))
    seg = _prior(lq)[0].numpy() if preset == "+spsa" else None
    sr = sr_with_model(model, lq, seg=seg, tile=tile, tile_overlap=overlap)
    for h in hooks:
        h.remove()
    assert sr.shape == (280, 200, 3)
    if model.attention is None:
        assert len(sides) == 5 * 4 and max(max(s) for s in sides) <= tile + 2 * overlap  # whole network tiled
    else:
        assert sides and max(max(s) for s in sides) <= tile + 2 * overlap  # trunk tiled (conv_first's input)
        assert attention_sides == [(70, 50)]  # attention sees the whole trunk feature map, in row chunks
        assert tail_sides and max(max(s) for s in tail_sides) <= tile + 2 * tiling.TAIL_OVERLAP


def test_tiling_error_is_bounded_and_vanishes_with_the_receptive_radius():
    model = _generator("esrgan")
    lq = _lq(48, 40)
    full = _float_sr(model, lq, None)
    errors = [float((_float_sr(model, lq, tile=16, overlap=o) - full).abs().max()) for o in (0, 2, 4)]
    assert errors[0] > errors[1] > errors[2]  # the overlap controls the error
    assert errors[1] > 1e-3 and errors[2] < TILING_ERROR_BOUND
    radius = tiling.receptive_radius(model.arch)
    assert radius == 15 * 1 + 4
    exact = _float_sr(model, lq, tile=16, overlap=radius)
    assert float((exact - full).abs().max()) < 1e-5  # exact up to float rounding
    # one tile covering the image is the plain forward pass, bit for bit
    assert torch.equal(_float_sr(model, lq, tile=48, overlap=4), full)


@pytest.mark.parametrize("preset", ["+fa", "+spsa"])
def test_tiled_attention_generator_is_exact_with_the_receptive_radius(preset):
    model = _generator(preset)
    lq = _lq(20, 18)
    full = _float_sr(model, lq, None)
    radius = tiling.receptive_radius(model.arch)
    assert float((_float_sr(model, lq, tile=8, overlap=radius) - full).abs().max()) < 1e-5
    # the upsampling tail alone is exact with TAIL_OVERLAP: only the trunk's overlap trades accuracy
    feat = torch.randn(1, 8, 20, 18)
    with torch.no_grad():
        tail = tiling.tiled(model.tail, feat, 8, tiling.TAIL_OVERLAP, 4)
        assert float((tail - model.tail(feat)).abs().max()) < 1e-5
        assert float((tiling.tiled(model.tail, feat, 8, 1, 4) - model.tail(feat)).abs().max()) > 1e-3


def _checkpoint(path: Path, preset: str, segmenter: str | None = None) -> Path:
    model = _generator(preset)
    save_model(path, model, preset=preset, step=1, params={"note": "test"}, segmenter=segmenter)
    return path


def test_upscale_tiles_with_the_given_options(tmp_path, monkeypatch, capsys):
    ckpt = _checkpoint(tmp_path / "esrgan.pth", "esrgan")
    lq = _lq(21, 30)
    Image.fromarray(lq).save(tmp_path / "img.png")
    model = _generator("esrgan")
    expected, untiled = sr_with_model(model, lq, tile=8, tile_overlap=3), sr_with_model(model, lq)
    assert not np.array_equal(expected, untiled)  # overlap 3 < radius 19: tiles show
    calls = []
    real = tiling.tiled_forward
    monkeypatch.setattr(tiling, "tiled_forward", lambda *a, **k: calls.append(a[3:5]) or real(*a, **k))
    (out,) = up.upscale(
        ckpt, [tmp_path / "img.png"], tmp_path / "a", device="cpu", tile=8, tile_overlap=3, progress=False
    )
    assert calls == [(8, 3)]
    assert np.array_equal(read_image(out), expected)
    assert (
        up.main(
            [
                str(ckpt),
                str(tmp_path / "img.png"),
                "-o",
                str(tmp_path / "b"),
                "--tile",
                "8",
                "--tile-overlap",
                "3",
                "-q",
            ]
        )
        == 0
    )
    assert np.array_equal(read_image(tmp_path / "b" / "img_x4.png"), read_image(out))
    assert calls[-1] == (8, 3)
    assert up.main([str(ckpt), str(tmp_path / "img.png"), "-o", str(tmp_path / "c"), "--tile", "0", "-q"]) == 0
    assert np.array_equal(read_image(tmp_path / "c" / "img_x4.png"), untiled)
    assert len(calls) == 2
    assert up.main([str(ckpt), str(tmp_path / "img.png"), "-o", str(tmp_path / "d"), "--tile-overlap", "-1", "-q"]) == 1
    assert "tile_overlap" in capsys.readouterr().err and not (tmp_path / "d").exists()
