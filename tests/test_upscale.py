"""spsagan-upscale on tiny random checkpoints: RGB, gray and RGBA inputs, SPSA prior, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spsagan import errors
from spsagan import upscale as up
from spsagan.evaluation import sr_with_model
from spsagan.image import read_image
from spsagan.models.modelfile import load_generator, save_model
from spsagan.models.presets import build_generator, preset_arch
from spsagan.segmentation.standin import StandInSegmenter

torch.set_num_threads(1)


def _checkpoint(path: Path, preset: str, segmenter: str | None = None) -> Path:
    torch.manual_seed(0)
    model = build_generator(preset_arch(preset, num_feat=8, num_block=1, num_grow_ch=4))
    with torch.no_grad():
        model.conv_last.bias.fill_(0.5)  # outputs mid-grey rather than clamped at 0
        if model.attention is not None:
            model.attention.gamma.fill_(20.0)  # make the attention visible in uint8 outputs
    save_model(path, model, preset=preset, step=1, params={"note": "test"}, segmenter=segmenter)
    return path


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    yy, xx = np.mgrid[0:10, 0:12]
    rgb = np.stack([(xx * 20 + 10 * c) % 256 for c in range(3)], axis=2) + rng.integers(0, 30, (10, 12, 3))
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    paths = {"rgb": folder / "rgb.png", "gray": folder / "gray.png", "rgba": folder / "rgba.png"}
    Image.fromarray(rgb).save(paths["rgb"])
    Image.fromarray(rgb[:, :, 1]).save(paths["gray"])
    alpha = rng.integers(0, 256, (10, 12, 1)).astype(np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), mode="RGBA").save(paths["rgba"])
    return paths


def test_upscale_rgb_gray_rgba(tmp_path, images):
    ckpt = _checkpoint(tmp_path / "esrgan.pth", "esrgan")
    out_dir = tmp_path / "out"
    written = up.upscale(ckpt, [images["rgb"], images["gray"], images["rgba"]], out_dir, device="cpu", progress=False)
    assert written == [out_dir / "rgb_x4.png", out_dir / "gray_x4.png", out_dir / "rgba_x4.png"]
    model, _ = load_generator(ckpt)
    rgb_lq = read_image(images["rgb"])
    sr_rgb = read_image(written[0])
    assert sr_rgb.shape == (40, 48, 3)
    assert np.array_equal(sr_rgb, sr_with_model(model, rgb_lq))
    sr_gray = read_image(written[1])
    assert sr_gray.shape == (40, 48)  # gray stays gray
    assert np.array_equal(sr_gray, sr_with_model(model, rgb_lq[:, :, 1]))
    assert np.array_equal(read_image(written[2]), sr_rgb)  # alpha dropped, colour as stored


def test_upscale_spsa_uses_the_recorded_segmenter(tmp_path, images, monkeypatch):
    from spsagan.segmentation import run

    built = []
    real_build = run.build_segmenter
    monkeypatch.setattr(
        run, "build_segmenter", lambda name, **kw: built.append((name, kw["seed"])) or real_build(name, **kw)
    )
    label = StandInSegmenter(seed=3).label
    ckpt = _checkpoint(tmp_path / "spsa.pth", "+spsa", segmenter=label)
    model, _ = load_generator(ckpt)
    lq = read_image(images["rgb"])
    seg = up.stored_prior(StandInSegmenter(seed=3), lq)
    expected = sr_with_model(model, lq, seg=seg)
    (out,) = up.upscale(ckpt, [images["rgb"]], tmp_path / "a", device="cpu", progress=False)
    assert np.array_equal(read_image(out), expected)
    assert built == [("standin", 3)]  # name and seed parsed from the checkpoint's label
    # the prior matters: another segmentation changes the output
    uniform = np.full_like(seg, 1 / 8)
    assert not np.array_equal(sr_with_model(model, lq, seg=uniform), expected)
    up.upscale(ckpt, [images["rgb"]], tmp_path / "b", device="cpu", segmenter_seed=4, progress=False)
    assert built[-1] == ("standin", 4)  # an explicit seed overrides the recorded one
    # a tiny attention budget forces query-row chunking; the result is the same up to float rounding
    (chunked,) = up.upscale(
        ckpt, [images["rgb"]], tmp_path / "c", device="cpu", max_attention_bytes=4096, progress=False
    )
    assert np.abs(read_image(chunked).astype(int) - expected.astype(int)).max() <= 1


def test_upscale_prior_is_the_pipelines_prior(tmp_path, monkeypatch):
    """For a make_lr LR image, upscale feeds the SPSA layer make_seg_maps' stored map, bit for bit.

    Both compute the prior from the LR (`prior_from_lq`), not from up(down(up(LR))), and upscale uses it
    at the stored uint8 precision, so its output equals what the evaluate stage computes from the map.
    """
    from spsagan.data.pairs import make_pairs
    from spsagan.segmentation.run import segment_dataset
    from spsagan.segmentation.storage import load_quantized, load_seg, quantize

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:46, 0:54]
    hr = np.stack([(xx * 5 + yy * 3 * c) % 256 for c in range(3)], axis=2) + rng.integers(0, 40, (46, 54, 3))
    (tmp_path / "src").mkdir()
    Image.fromarray(np.clip(hr, 0, 255).astype(np.uint8)).save(tmp_path / "src" / "img.png")
    make_pairs(tmp_path / "src", tmp_path / "set", scale=4, gray="keep")
    segment_dataset(StandInSegmenter(seed=3), tmp_path / "set" / "HR", tmp_path / "maps", progress=False)
    ckpt = _checkpoint(tmp_path / "spsa.pth", "+spsa", segmenter=StandInSegmenter(seed=3).label)

    seen = []
    real_sr = up.sr_with_model
    monkeypatch.setattr(
        up,
        "sr_with_model",
        lambda model, lq, seg=None, **kw: seen.append(np.asarray(seg)) or real_sr(model, lq, seg=seg, **kw),
    )
    lq_file = tmp_path / "set" / "LR_x4" / "img.png"
    (out,) = up.upscale(ckpt, [lq_file], tmp_path / "out", device="cpu", progress=False)
    stored = load_quantized(tmp_path / "maps" / "img.npz")
    assert seen[0].shape == stored.shape == (8, 44, 52)
    assert np.array_equal(quantize(seen[0]), stored)  # same map after the storage quantisation
    assert np.array_equal(seen[0], load_seg(tmp_path / "maps" / "img.npz"))  # and used at that precision
    model, _ = load_generator(ckpt)
    expected = real_sr(model, read_image(lq_file), seg=load_seg(tmp_path / "maps" / "img.npz"))
    assert np.array_equal(read_image(out), expected)


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_output_path_blocked_by_a_file_fails_before_inference(tmp_path, images, monkeypatch, capsys, where):
    ckpt = _checkpoint(tmp_path / "spsa.pth", "+spsa", segmenter=StandInSegmenter(seed=0).label)
    blocker = tmp_path / "taken.png"
    blocker.write_bytes(b"not a folder")
    out_dir = blocker if where == "file" else blocker / "a" / "b"

    def no_inference(*args, **kwargs):
        raise AssertionError("inference ran before the output path was checked")

    from spsagan.models.rrdb import RRDBNet
    from spsagan.segmentation.run import build_segmenter  # noqa: F401 (the module the segmenter comes from)

    monkeypatch.setattr(up, "sr_with_model", no_inference)
    monkeypatch.setattr(RRDBNet, "forward", no_inference)
    monkeypatch.setattr(RRDBNet, "trunk_features", no_inference)
    monkeypatch.setattr(StandInSegmenter, "segment_one", no_inference)
    monkeypatch.setattr(StandInSegmenter, "segment", no_inference)
    with pytest.raises(errors.ConfigError, match=str(blocker).replace(".", r"\.")) as info:
        up.upscale(ckpt, [images["rgb"]], out_dir, device="cpu", progress=False)
    assert "file" in str(info.value)
    assert up.main([str(ckpt), str(images["rgb"]), "-o", str(out_dir), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("spsagan-upscale: error") == 1 and str(blocker) in err and "Traceback" not in err
    assert blocker.read_bytes() == b"not a folder"


def test_spsa_checkpoint_without_segmenter_is_an_error(tmp_path, images):
    ckpt = _checkpoint(tmp_path / "spsa.pth", "+spsa", segmenter=None)
    with pytest.raises(errors.ConfigError, match="records no segmenter"):
        up.upscale(ckpt, [images["rgb"]], tmp_path / "out", device="cpu", progress=False)


def test_parse_segmenter_label():
    assert up.parse_segmenter_label(StandInSegmenter(seed=7).label) == ("standin", {"seed": 7})
    assert up.parse_segmenter_label("outdoor_scene_seg(segmentation_OST_bic.pth sha256:00ff12)") == (
        "outdoor_scene_seg",
        {"sha256_prefix": "00ff12"},
    )
    assert up.parse_segmenter_label("OutdoorSceneSeg")[0] == "outdoor_scene_seg"


def test_unreadable_file_stops_before_writing(tmp_path, images):
    ckpt = _checkpoint(tmp_path / "esrgan.pth", "esrgan")
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out_dir = tmp_path / "out"
    with pytest.raises(errors.ConfigError, match="broken.png"):
        up.upscale(ckpt, [images["rgb"], broken], out_dir, device="cpu", progress=False)
    assert not out_dir.exists() or not any(out_dir.iterdir())
    with pytest.raises(errors.ConfigError, match="missing.png"):
        up.upscale(ckpt, [tmp_path / "missing.png"], out_dir, device="cpu", progress=False)


def test_folder_input_and_name_clash(tmp_path, images):
    ckpt = _checkpoint(tmp_path / "esrgan.pth", "esrgan")
    written = up.upscale(ckpt, [images["rgb"].parent], tmp_path / "out", device="cpu", progress=False)
    assert sorted(p.name for p in written) == ["gray_x4.png", "rgb_x4.png", "rgba_x4.png"]
    twin = tmp_path / "twin"
    twin.mkdir()
    Image.open(images["rgb"]).save(twin / "rgb.png")
    with pytest.raises(errors.ConfigError, match="clash"):
        up.upscale(ckpt, [images["rgb"], twin / "rgb.png"], tmp_path / "out2", device="cpu", progress=False)


def test_main_console_script(tmp_path, images, capsys):
    ckpt = _checkpoint(tmp_path / "esrgan.pth", "esrgan")
    out_dir = tmp_path / "cli"
    assert up.main([str(ckpt), str(images["rgb"]), "-o", str(out_dir), "--device", "cpu", "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(out_dir / "rgb_x4.png")
    assert (out_dir / "rgb_x4.png").is_file()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    assert up.main([str(ckpt), str(broken), "-o", str(out_dir), "-q"]) == 1
    err = capsys.readouterr().err
    assert "spsagan-upscale: error" in err and "broken.jpg" in err
    not_ckpt = tmp_path / "x.pth"
    not_ckpt.write_bytes(b"garbage")
    assert up.main([str(not_ckpt), str(images["rgb"]), "-o", str(out_dir), "-q"]) == 1
    assert "x.pth" in capsys.readouterr().err


def _photo(path: Path, height: int, width: int) -> Path:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_attention_estimate_scales_with_the_square_of_the_pixels(monkeypatch):
    from spsagan.models import attention_cost

    asked = []
    monkeypatch.setattr(attention_cost, "time_attention", lambda model, pixels: asked.append(pixels) or (4096, 1.0))
    model = torch.nn.Conv2d(1, 1, 1)  # only its device is read
    exact, measured, took = attention_cost.estimate_seconds(model, [(128, 128), (64, 64)])
    assert asked == [64 * 64] and (measured, took) == (4096, 1.0) and exact == pytest.approx(16.0 + 1.0)
    tiled, _, _ = attention_cost.estimate_seconds(model, [(128, 128)], attention_tile=64)
    assert tiled == pytest.approx(4.0)  # four 64x64 tiles, each one measured call
    assert [up.duration(m) for m in (0.5, 7.46, 42.4, 3350.0)] == ["30 s", "7.5 min", "42 min", "56 h"]


def test_upscale_prints_the_attention_estimate_before_it_starts(tmp_path, images):
    ckpt = _checkpoint(tmp_path / "fa.pth", "+fa")
    lines = []
    up.upscale(ckpt, [images["rgb"], images["gray"]], tmp_path / "out", device="cpu", progress=False, log=lines.append)
    (line,) = lines
    assert line.startswith("exact attention over 240 LR pixels (2 image(s)): about ") and " s (one attention" in line
    assert "square of the pixel count" in line
    lines.clear()
    plain = _checkpoint(tmp_path / "esrgan.pth", "esrgan")
    up.upscale(plain, [images["rgb"]], tmp_path / "e", device="cpu", progress=False, log=lines.append)
    assert lines == []  # no attention, nothing to estimate


def test_over_the_time_budget_stops_with_one_line_naming_the_flags(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "spsa.pth", "+spsa", segmenter=StandInSegmenter(seed=0).label)
    photo = _photo(tmp_path / "photo.png", 40, 56)
    out = tmp_path / "out"
    assert up.main([str(ckpt), str(photo), "-o", str(out), "--device", "cpu", "--max-minutes", "1e-9", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("spsagan-upscale: exact attention over 2,240 LR pixels")
    (error,) = err[1:]
    assert error.startswith("spsagan-upscale: error: exact attention would take about ")
    assert "--max-minutes budget of 1e-09: raise --max-minutes" in error and "--attention tiled" in error
    assert error.endswith("for an approximate result")
    assert not any(out.iterdir())  # stopped before any inference


def test_tiled_attention_runs_and_says_approximate(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "spsa.pth", "+spsa", segmenter=StandInSegmenter(seed=0).label)
    photo = _photo(tmp_path / "photo.png", 40, 56)
    common = [str(ckpt), str(photo), "--device", "cpu", "-q", "--tile", "0"]
    assert up.main([*common, "-o", str(tmp_path / "exact")]) == 0
    assert up.main([*common, "-o", str(tmp_path / "tiled"), "--attention", "tiled", "--attention-tile", "16"]) == 0
    err = capsys.readouterr().err
    assert "approximate attention, computed within 16x16 LR-pixel tiles (--attention tiled" in err
    tiled, exact = read_image(tmp_path / "tiled" / "photo_x4.png"), read_image(tmp_path / "exact" / "photo_x4.png")
    assert tiled.shape == exact.shape == (160, 224, 3) and not np.array_equal(tiled, exact)
    # one tile covering the image is exact attention again (tiled trunk and tail too)
    assert up.main([*common[:-2], "-o", str(tmp_path / "one"), "--attention", "tiled", "--attention-tile", "64"]) == 0
    one = read_image(tmp_path / "one" / "photo_x4.png")
    assert np.abs(one.astype(int) - exact.astype(int)).max() <= 1
