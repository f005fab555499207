"""make_pairs (the make_lr library): LR bit-exact against a literal MATLAB-bicubic reference and MATLAB's own
Set5/Set14 LR files, image-mode rules, sub-images and index.csv, small images, atomic output."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from spsagan.data.pairs import INDEX_COLUMNS, lr_crop, make_pairs, plan_subimages, read_index, subimage_positions
from spsagan.errors import ConfigError, ImageError

torch.set_num_threads(1)
BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


from matlab_reference import ref_imresize as reference_imresize  # noqa: E402  (tests/ is on sys.path)


def _read(path):
    return np.asarray(Image.open(path))


def _smooth(h, w, seed=0, channels=3):
    """A random but spatially smooth image with saturated patches (exercises clipping)."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(
        rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, channels), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC
    ).reshape(h, w, channels)
    base[: h // 5, : w // 5] = 255
    base[-3:, -4:] = 0
    return base[:, :, 0] if channels == 1 else base


# --------------------------------------------------------------------------------------------------
# HR/LR pairs


def test_lr_bit_exact_against_literal_reference(tmp_path):
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    img = _smooth(26, 35, seed=1)  # not multiples of 4: mod-crop to 24 x 32
    Image.fromarray(img).save(hr_dir / "a.png")
    summary = make_pairs(hr_dir, tmp_path / "out")
    hr, lq = _read(tmp_path / "out" / "HR" / "a.png"), _read(tmp_path / "out" / "LR_x4" / "a.png")
    np.testing.assert_array_equal(hr, img[:24, :32])
    assert lq.shape == (6, 8, 3)
    np.testing.assert_array_equal(lq, reference_imresize(img[:24, :32], 0.25))
    assert summary["images"] == 1 and summary["subimages"] == 0 and summary["gray_images"] == []
    assert summary["hr_pixels"] == 24 * 32 and summary["bytes"] > 0


@pytest.mark.parametrize("gray", ["keep", "rgb"])
def test_gray_images(tmp_path, gray):
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    img = _smooth(16, 20, seed=2, channels=1)
    Image.fromarray(img).save(hr_dir / "g.png")
    summary = make_pairs(hr_dir, tmp_path / "out", gray=gray)
    lq = _read(tmp_path / "out" / "LR_x4" / "g.png")
    expected = reference_imresize(img, 0.25)
    if gray == "keep":
        assert lq.shape == (4, 5) and summary["gray_images"] == ["g"]
        np.testing.assert_array_equal(lq, expected)
    else:
        assert lq.shape == (4, 5, 3) and summary["gray_images"] == []
        np.testing.assert_array_equal(lq, np.repeat(expected[:, :, None], 3, axis=2))


def test_rgba_palette_and_16bit(tmp_path):
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    rgb = _smooth(16, 16, seed=3)
    alpha = np.full((16, 16, 1), 7, np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(hr_dir / "rgba.png")
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.save(hr_dir / "pal.png")
    gray = _smooth(16, 16, seed=4, channels=1)
    Image.fromarray(gray.astype(np.uint16) * 257).save(hr_dir / "g16.png")  # 16-bit gray, v * 257
    cv2.imwrite(str(hr_dir / "c16.png"), rgb[:, :, ::-1].astype(np.uint16) * 257)  # 16-bit colour
    assert Image.open(hr_dir / "pal.png").mode == "P"
    assert Image.open(hr_dir / "g16.png").mode.startswith("I")
    make_pairs(hr_dir, tmp_path / "out", gray="keep")
    out = tmp_path / "out"
    expected = {
        "rgba": rgb,  # alpha dropped, colours as stored
        "pal": np.asarray(pal.convert("RGB")),  # through the palette
        "g16": gray,  # round(v / 257) recovers the 8-bit values; stays gray
        "c16": rgb,
    }
    for name, hr in expected.items():
        np.testing.assert_array_equal(_read(out / "HR" / f"{name}.png"), hr, err_msg=name)
        np.testing.assert_array_equal(_read(out / "LR_x4" / f"{name}.png"), reference_imresize(hr, 0.25), err_msg=name)


def test_too_small_is_an_error_naming_the_file(tmp_path):
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    Image.fromarray(_smooth(100, 120)).save(hr_dir / "big.png")
    Image.fromarray(_smooth(99, 200)).save(hr_dir / "tiny.png")  # 96 x 200 after mod-crop: fine
    Image.fromarray(_smooth(95, 200)).save(hr_dir / "small.png")  # 92 after mod-crop: too small
    with pytest.raises(ConfigError, match=r"small\.png \(92x200 after mod-crop\)"):
        make_pairs(hr_dir, tmp_path / "out", min_size=96, subimage_size=96)
    assert not (tmp_path / "out").exists()
    summary = make_pairs(hr_dir, tmp_path / "out", min_size=96, subimage_size=96, too_small="skip")
    assert summary["skipped_too_small"] == ["small.png"] and summary["images"] == 2
    assert sorted(p.name for p in (tmp_path / "out" / "HR").iterdir()) == ["big.png", "tiny.png"]


def test_too_small_names_the_users_file_when_known(tmp_path):
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    Image.fromarray(_smooth(100, 120)).save(hr_dir / "big.png")
    Image.fromarray(_smooth(95, 200)).save(hr_dir / "img3.png")
    mine = "/data/mine"
    with pytest.raises(ConfigError) as err:
        make_pairs(hr_dir, tmp_path / "out", min_size=96, sources={"img3.png": f"{mine}/img3.png"}, source_dir=mine)
    assert f"{mine}/img3.png (92x200 after mod-crop)" in str(err.value) and f"remove them from {mine}" in str(err.value)
    assert str(hr_dir) not in str(err.value)


def test_corrupt_file_leaves_previous_output(tmp_path):
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    Image.fromarray(_smooth(16, 16)).save(hr_dir / "a.png")
    make_pairs(hr_dir, tmp_path / "out")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    (hr_dir / "b.png").write_bytes(Image.open(hr_dir / "a.png").tobytes()[:50])  # not a PNG
    with pytest.raises(ImageError, match="b.png"):
        make_pairs(hr_dir, tmp_path / "out")
    (hr_dir / "b.png").unlink()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_empty_or_clashing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        make_pairs(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no such folder of images; run the download_data stage"):
        make_pairs(tmp_path / "missing", tmp_path / "out")
    clash = tmp_path / "clash"
    clash.mkdir()
    Image.fromarray(_smooth(8, 8)).save(clash / "a.png")
    Image.fromarray(_smooth(8, 8)).save(clash / "a.bmp")
    with pytest.raises(ValueError, match=r"share the name 'a'"):
        make_pairs(clash, tmp_path / "out")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(subimage_size=30), "multiple of scale"),
        (dict(subimage_size=32, subimage_step=6), "subimage_step"),
        (dict(subimage_step=8), "without subimage_size"),
        (dict(subimage_size=64, min_size=96), "at least min_size"),
        (dict(gray="grey"), "gray must be"),
        (dict(too_small="ignore"), "too_small"),
    ],
)
def test_argument_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_pairs(tmp_path, tmp_path / "out", **kwargs)


# --------------------------------------------------------------------------------------------------
# Sub-images


def test_subimage_positions():
    assert subimage_positions(10, 4, 3) == [0, 3, 6]
    assert subimage_positions(11, 4, 3) == [0, 3, 6, 7]  # last window flush with the end
    assert subimage_positions(4, 4, 3) == [0]
    assert subimage_positions(3, 4, 3) == []
    assert plan_subimages(8, 20, 16, 4) == [(0, 0, 8), (0, 4, 8), (0, 8, 8), (0, 12, 8)]  # whole-height rule


def test_subimages_index_and_crops(tmp_path):
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    img = _smooth(203, 138, seed=5)  # mod-crop -> 200 x 136
    Image.fromarray(img).save(hr_dir / "x.png")
    Image.fromarray(_smooth(100, 300, seed=6)).save(hr_dir / "y.png")  # narrower than the sub-image size
    summary = make_pairs(hr_dir, tmp_path / "out", subimage_size=128, subimage_step=48, min_size=96, gray="rgb")
    out = tmp_path / "out"
    rows = read_index(out / "sub" / "index.csv")
    with open(out / "sub" / "index.csv") as f:
        assert tuple(next(csv.reader(f))) == INDEX_COLUMNS
    assert summary["subimages"] == len(rows)
    x_rows = [r for r in rows if r["source"] == "x"]
    # 200 x 136: tops 0, 48 and 72 (flush); lefts 0 and 8 (flush)
    assert [(r["top"], r["left"], r["size"]) for r in x_rows] == [(t, l, 128) for t in (0, 48, 72) for l in (0, 8)]
    y_rows = [r for r in rows if r["source"] == "y"]
    assert {r["size"] for r in y_rows} == {100} and [r["left"] for r in y_rows] == [0, 48, 96, 144, 192, 200]
    assert [r["sub"] for r in x_rows] == [f"x_s{k:03d}" for k in range(1, 7)]
    covered = np.zeros((200, 136), bool)
    for r in rows:
        assert r["top"] % 4 == 0 and r["left"] % 4 == 0
        hr_full = _read(out / "HR" / f"{r['source']}.png")
        lq_full = _read(out / "LR_x4" / f"{r['source']}.png")
        t, l, s = r["top"], r["left"], r["size"]
        sub_hr = _read(out / "sub" / "HR" / f"{r['sub']}.png")
        sub_lq = _read(out / "sub" / "LR_x4" / f"{r['sub']}.png")
        np.testing.assert_array_equal(sub_hr, hr_full[t : t + s, l : l + s])
        np.testing.assert_array_equal(sub_lq, lq_full[t // 4 : (t + s) // 4, l // 4 : (l + s) // 4])
        np.testing.assert_array_equal(sub_lq, lr_crop(lq_full, t, l, s))
        if r["source"] == "x":
            covered[t : t + s, l : l + s] = True
    assert covered.all()


def test_default_step_is_half_the_size(tmp_path):
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    Image.fromarray(_smooth(64, 64)).save(hr_dir / "a.png")
    summary = make_pairs(hr_dir, tmp_path / "out", subimage_size=40)
    # offsets 0 and 20 (20 + 40 = 60 < 64), then the window flush with the edge at 24: 3 x 3 sub-images
    assert summary["subimage_step"] == 20 and summary["subimages"] == 9


def test_workers_give_identical_output(tmp_path):
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    for i in range(3):
        Image.fromarray(_smooth(40, 44, seed=i)).save(hr_dir / f"{i}.png")
    make_pairs(hr_dir, tmp_path / "one", subimage_size=32, subimage_step=16)
    make_pairs(hr_dir, tmp_path / "two", subimage_size=32, subimage_step=16, workers=2)
    files = sorted(str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").rglob("*.*"))
    assert files == sorted(str(p.relative_to(tmp_path / "two")) for p in (tmp_path / "two").rglob("*.*"))
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


# --------------------------------------------------------------------------------------------------
# MATLAB's own LR files


@pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/benchmarks not present")
@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
def test_matches_matlab_lr_files(tmp_path, dataset):
    summary = make_pairs(BENCH / dataset / "HR", tmp_path / dataset, gray="keep")
    names = sorted(p.stem for p in (BENCH / dataset / "HR").glob("*.png"))
    assert summary["images"] == len(names)
    for name in names:
        ours = _read(tmp_path / dataset / "LR_x4" / f"{name}.png")
        matlab = _read(BENCH / dataset / "LR_bicubic_x4" / f"{name}x4.png")
        np.testing.assert_array_equal(ours, matlab, err_msg=f"{dataset}/{name}")
    if dataset == "Set14":
        assert summary["gray_images"] == ["bridge"]
