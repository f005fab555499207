"""spsagan.image: MATLAB-exact imresize, modcrop, reading rules, tensors."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spsagan.errors import ImageError
from spsagan.image import imresize, modcrop, read_image, rgb_to_y, to_tensor, to_uint8, write_image

torch.set_num_threads(1)
BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


from matlab_reference import ref_imresize  # noqa: E402  (tests/ is on sys.path)


@pytest.mark.parametrize("scale", [4, 0.25, 1 / 3, 0.5, 2, 1.5])
@pytest.mark.parametrize("shape", [(9, 7, 3), (12, 5)])
def test_imresize_matches_literal_reference(scale, shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    got = imresize(img, scale)
    ref = ref_imresize(img, scale)
    assert got.dtype == np.uint8 and got.shape == ref.shape
    assert np.array_equal(got, ref)
    imgf = rng.random(shape)
    np.testing.assert_allclose(imresize(imgf, scale), ref_imresize(imgf, scale), rtol=0, atol=1e-12)


def test_imresize_tiny_input_folds_more_than_once():
    # A 2-pixel line shrunk by 1/4 needs taps far outside the image: folding must wrap repeatedly.
    img = np.array([[10, 200], [30, 90]], dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, 0.25), ref_imresize(img, 0.25))


def test_imresize_identity_constant_and_sizes():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(10, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, 1), img)
    const = np.full((13, 17), 77, dtype=np.uint8)
    out = imresize(const, 0.25)
    assert out.shape == (4, 5)  # ceil
    assert np.all(out == 77)
    imgf = rng.random((8, 8))
    assert imresize(imgf, 0.5).dtype == np.float64


def test_imresize_float_not_rounded_or_clipped():
    img = np.array([[0.0, 1.0, 0.0, 1.0]] * 4)
    out = imresize(img, 2)
    assert out.min() < 0 and out.max() > 1  # cubic overshoot survives in float


def test_imresize_bad_input():
    with pytest.raises(ValueError, match="uint8 or float"):
        imresize(np.zeros((4, 4), dtype=np.int32), 0.5)
    with pytest.raises(ValueError, match="scale"):
        imresize(np.zeros((4, 4), dtype=np.uint8), 0)
    with pytest.raises(ValueError, match="shape"):
        imresize(np.zeros((4,), dtype=np.uint8), 0.5)


def _benchmark_pairs():
    for ds in ("Set5", "Set14"):
        for hr in sorted((BENCH / ds / "HR").glob("*.png")):
            yield hr, BENCH / ds / "LR_bicubic_x4" / f"{hr.stem}x4.png"


@pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/benchmarks not available")
def test_imresize_reproduces_matlab_lr_bit_for_bit():
    pairs = list(_benchmark_pairs())
    assert len(pairs) == 19
    for hr_path, lr_path in pairs:
        hr = modcrop(read_image(hr_path), 4)
        ref = read_image(lr_path)
        lr = imresize(hr, 1 / 4)
        assert lr.shape == ref.shape, hr_path.name
        assert np.array_equal(lr, ref), hr_path.name


def test_modcrop():
    img = np.zeros((13, 10, 3), dtype=np.uint8)
    assert modcrop(img, 4).shape == (12, 8, 3)
    assert modcrop(img[:, :, 0], 8).shape == (8, 8)
    with pytest.raises(ValueError):
        modcrop(img, 0)


# ---------------------------------------------------------------- colour and tensors


def test_rgb_to_y_literal():
    img = np.array([[[255, 255, 255], [0, 0, 0], [10, 200, 30]]], dtype=np.uint8)
    y = rgb_to_y(img)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y[0, 0], 235.0, atol=1e-9)
    np.testing.assert_allclose(y[0, 1], 16.0, atol=1e-12)
    expected = 16 + 65.481 * 10 / 255 + 128.553 * 200 / 255 + 24.966 * 30 / 255
    np.testing.assert_allclose(y[0, 2], expected, rtol=1e-14)


def test_tensor_round_trip():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    t = to_tensor(img)
    assert t.shape == (3, 5, 6) and t.dtype == torch.float32
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    np.testing.assert_array_equal(to_uint8(t), img)
    np.testing.assert_array_equal(to_uint8(t[None]), img)
    gray = img[:, :, 0]
    assert to_tensor(gray).shape == (3, 5, 6)
    out = to_uint8(torch.tensor([[[-0.5, 1.5, 0.5 / 255]]]).expand(3, 1, 3))
    np.testing.assert_array_equal(out[0, :, 0], [0, 255, 1])  # clipped, half rounds up


# ---------------------------------------------------------------- reading and writing


def _save(path, arr, mode=None, **kw):
    Image.fromarray(arr, mode=mode).save(path, **kw) if mode else Image.fromarray(arr).save(path, **kw)
    return path


def test_read_rgb_and_gray(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(_save(tmp_path / "rgb.png", rgb)), rgb)
    g = rgb[:, :, 1].copy()
    p = _save(tmp_path / "gray.png", g)
    assert Image.open(p).mode == "L"
    np.testing.assert_array_equal(read_image(p), g)
    as_rgb = read_image(p, gray="rgb")
    assert as_rgb.shape == (6, 7, 3)
    np.testing.assert_array_equal(as_rgb[:, :, 2], g)
    with pytest.raises(ValueError, match="gray"):
        read_image(p, gray="bgr")


def test_read_alpha_dropped_not_composited(tmp_path):
    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 256, size=(5, 4, 4), dtype=np.uint8)
    rgba[:, :, 3] = 0  # fully transparent: colours must still come back as stored
    p = _save(tmp_path / "rgba.png", rgba)
    assert Image.open(p).mode == "RGBA"
    np.testing.assert_array_equal(read_image(p), rgba[:, :, :3])
    la = Image.fromarray(rgba[:, :, 0]).convert("LA")
    la.putalpha(Image.fromarray(rgba[:, :, 3]))
    la.save(tmp_path / "la.png")
    assert Image.open(tmp_path / "la.png").mode == "LA"
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), rgba[:, :, 0])
    assert read_image(tmp_path / "la.png", gray="rgb").shape == (5, 4, 3)


def test_read_palette(tmp_path):
    palette = [255, 0, 0, 0, 128, 0, 1, 2, 3] + [0] * (256 * 3 - 9)
    idx = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette(palette)
    im.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    out = read_image(tmp_path / "p.png")
    table = np.array(palette[:9], dtype=np.uint8).reshape(3, 3)
    np.testing.assert_array_equal(out, table[idx])


def test_read_16bit_gray_and_colour(tmp_path):
    import cv2

    values = np.array([[0, 128, 129, 385], [65535, 257 * 200, 257 * 200 + 128, 257 * 200 + 129]], dtype=np.uint16)
    expected = np.array([[0, 0, 1, 1], [255, 200, 200, 201]], dtype=np.uint8)  # round(v / 257)
    cv2.imwrite(str(tmp_path / "g16.png"), values)
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png"), expected)
    rgb16 = np.stack([values, values[::-1], values[:, ::-1]], axis=2)
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[:, :, ::-1])  # cv2 writes BGR
    expected_rgb = np.stack([expected, expected[::-1], expected[:, ::-1]], axis=2)
    np.testing.assert_array_equal(read_image(tmp_path / "c16.png"), expected_rgb)
    bgra = np.concatenate([rgb16[:, :, ::-1], np.full(values.shape + (1,), 7, np.uint16)], axis=2)
    cv2.imwrite(str(tmp_path / "c16a.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "c16a.png"), expected_rgb)


def _write_png16(path, arr, colour_type):
    """Minimal PNG encoder for 16-bit samples (neither PIL nor OpenCV writes 16-bit gray+alpha)."""
    h = arr.shape[0]
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", arr.shape[1], h, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def test_read_16bit_gray_alpha(tmp_path):
    gray = np.array([[0, 385], [65535, 257 * 200 + 128]], dtype=np.uint16)
    la = np.stack([gray, np.full_like(gray, 9)], axis=2)
    p = _write_png16(tmp_path / "la16.png", la, colour_type=4)
    np.testing.assert_array_equal(read_image(p), [[0, 1], [255, 200]])
    assert read_image(p, gray="rgb").shape == (2, 2, 3)


def test_read_bad_files(tmp_path):
    rng = np.random.default_rng(5)
    good = _save(tmp_path / "good.png", rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    corrupt = bytearray(data)
    corrupt[60:80] = b"\x00" * 20
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    for name in ("trunc.png", "junk.png", "corrupt.png", "missing.png"):
        with pytest.raises(ImageError, match=name):
            read_image(tmp_path / name)
    assert issubclass(ImageError, ValueError)


def test_write_image_atomic_png(tmp_path):
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    out = tmp_path / "sub" / "x.png"
    write_image(out, img)
    np.testing.assert_array_equal(read_image(out), img)
    write_image(tmp_path / "g.png", img[:, :, 0])
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), img[:, :, 0])
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "f.png", img.astype(np.float32))
    with pytest.raises(ValueError, match="PNG"):
        write_image(tmp_path / "x.jpg", img)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "sub"]  # no temp files left
