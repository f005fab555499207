"""Segmentation map storage: quantisation bounds, exact coding, crops, metadata, refusal of bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from spsagan.errors import SegStorageError
from spsagan.segmentation import storage
from spsagan.segmentation.storage import (
    crop_map,
    dequantize,
    load_quantized,
    load_seg,
    pad_map,
    quantize,
    read_seg_meta,
    save_seg,
)

torch.set_num_threads(1)
META = {"segmenter": "standin", "segmenter_label": "standin(test seed=0)", "semantic": False}


def dirichlet_map(height, width, seed=0, concentration=0.3):
    rng = np.random.default_rng(seed)
    return rng.dirichlet([concentration] * 8, size=(height, width)).transpose(2, 0, 1)


def reference_quantize(probs):
    """Largest remainder per pixel, written out literally: floor, then +1 to the largest fractions
    (ties to the lower channel) until the pixel sums to 255."""
    out = np.zeros(probs.shape, dtype=np.int64)
    for y in range(probs.shape[1]):
        for x in range(probs.shape[2]):
            scaled = [255.0 * float(probs[k, y, x]) for k in range(8)]
            q = [int(np.floor(s)) for s in scaled]
            order = sorted(range(8), key=lambda k: (-(scaled[k] - q[k]), k))
            for k in order[: 255 - sum(q)]:
                q[k] += 1
            out[:, y, x] = q
    return out


def test_quantize_matches_literal_largest_remainder():
    probs = dirichlet_map(5, 7, seed=1)
    probs[:, 0, 0] = 1.0 / 8  # a full tie: 7 channels get 32, the last 31
    probs[:, 0, 1] = np.eye(8)[3]  # one-hot
    q = quantize(probs)
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q.astype(np.int64), reference_quantize(probs))
    assert q[:, 0, 0].tolist() == [32] * 7 + [31]
    assert q[:, 0, 1].tolist() == [0, 0, 0, 255, 0, 0, 0, 0]


def test_round_trip_error_below_one_level_and_sums(tmp_path):
    probs = dirichlet_map(61, 83, seed=2)
    path = tmp_path / "m.npz"
    nbytes = save_seg(path, probs, META)
    assert nbytes == path.stat().st_size > 0
    loaded = load_seg(path)
    assert loaded.dtype == np.float32 and loaded.shape == (8, 61, 83)
    assert np.abs(loaded - probs).max() <= 1 / 255
    assert np.abs(loaded.sum(axis=0) - 1).max() <= 1e-3
    # Re-saving loaded maps reproduces the stored integers exactly (no drift on re-quantisation).
    np.testing.assert_array_equal(quantize(loaded), load_quantized(path))


def test_second_difference_coding_is_exact_with_wraparound():
    rng = np.random.default_rng(3)
    q = rng.integers(0, 256, size=(8, 17, 29), dtype=np.uint8)  # large jumps wrap modulo 256
    coded = storage._encode(q)
    # literal second difference of the zero-padded array, modulo 256
    padded = np.zeros((8, 18, 30), dtype=np.int64)
    padded[:, 1:, 1:] = q
    expect = (padded[:, 1:, 1:] - padded[:, :-1, 1:] - padded[:, 1:, :-1] + padded[:, :-1, :-1]) % 256
    np.testing.assert_array_equal(coded, expect)
    np.testing.assert_array_equal(storage._decode(coded), q)


def test_meta_is_recorded_and_required(tmp_path):
    path = tmp_path / "m.npz"
    save_seg(path, dirichlet_map(8, 12), {**META, "source": "img"})
    meta = read_seg_meta(path)
    assert meta["segmenter_label"] == META["segmenter_label"] and meta["semantic"] is False
    assert (meta["height"], meta["width"], meta["format_version"]) == (8, 12, storage.FORMAT_VERSION)
    with np.load(path, allow_pickle=False) as npz:  # nothing pickled
        assert set(npz.files) == {"q_grad2d", "meta"}
    with pytest.raises(ValueError, match="segmenter"):
        save_seg(tmp_path / "n.npz", dirichlet_map(4, 4), {"source": "x"})
    assert not (tmp_path / "n.npz").exists()


def test_crop_matches_training_crop(tmp_path):
    probs = dirichlet_map(40, 48, seed=4)
    path = tmp_path / "m.npz"
    save_seg(path, probs, META)
    full = load_seg(path)
    lq_top, lq_left, lq_size = 2, 3, 5  # an LR crop ...
    part = load_seg(path, crop=(4 * lq_top, 4 * lq_left, 4 * lq_size, 4 * lq_size))  # ... and its HR map
    np.testing.assert_array_equal(part, full[:, 8:28, 12:32])
    with pytest.raises(ValueError, match="does not fit"):
        load_seg(path, crop=(30, 0, 20, 20))


def test_refuses_non_probabilities(tmp_path):
    with pytest.raises(ValueError, match="sum to 1"):
        save_seg(tmp_path / "a.npz", np.random.default_rng(0).uniform(0.1, 3.0, size=(8, 4, 4)), META)
    with pytest.raises(ValueError, match=r"\(8, H, W\)"):
        save_seg(tmp_path / "b.npz", dirichlet_map(4, 4).transpose(1, 2, 0), META)
    assert list(tmp_path.iterdir()) == []


def test_bad_files_raise_naming_the_file(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(SegStorageError, match="missing.npz.*make_seg_maps"):
        load_seg(missing)
    truncated = tmp_path / "trunc.npz"
    save_seg(truncated, dirichlet_map(16, 16), META)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(SegStorageError, match="trunc.npz"):
        load_seg(truncated)
    # valid zip, tampered data: per-pixel sums no longer 255
    tampered = tmp_path / "tampered.npz"
    save_seg(tampered, dirichlet_map(16, 16), META)
    with np.load(tampered) as npz:
        coded, meta = npz["q_grad2d"].copy(), npz["meta"]
        coded[0, 3, 3] ^= 7
        np.savez_compressed(tampered, q_grad2d=coded, meta=meta)
    with pytest.raises(SegStorageError, match="corrupt"):
        load_seg(tampered)
    other = tmp_path / "other.npz"
    np.savez_compressed(other, q_grad2d=coded, meta=np.array(json.dumps({"format_version": 99})))
    with pytest.raises(SegStorageError, match="version"):
        load_seg(other)


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError):
        save_seg(path, dirichlet_map(8, 8), META)
    assert list(tmp_path.iterdir()) == []


def test_pad_map_replicates_edges():
    probs = dirichlet_map(3, 4)
    padded = pad_map(probs, 5, 6)
    assert padded.shape == (8, 5, 6)
    np.testing.assert_array_equal(padded[:, :3, :4], probs)
    np.testing.assert_array_equal(padded[:, 4, 5], probs[:, 2, 3])
    np.testing.assert_array_equal(padded[:, 1, 5], probs[:, 1, 3])
    with pytest.raises(ValueError):
        pad_map(probs, 2, 4)
    with pytest.raises(ValueError):
        crop_map(probs, 0, 2, 3, 3)


def test_compact_on_smooth_maps(tmp_path):
    """Smooth maps (like a network's upsampled softmax) store far below float32's 32 MB/megapixel."""
    rng = np.random.default_rng(5)
    logits = torch.from_numpy(rng.normal(size=(1, 8, 8, 12)).astype(np.float32) * 8)
    smooth = torch.nn.functional.interpolate(logits, size=(256, 384), mode="bilinear", align_corners=False)
    probs = torch.softmax(smooth, dim=1)[0].numpy()
    save_seg(tmp_path / "smooth.npz", probs, META)
    per_mp = (tmp_path / "smooth.npz").stat().st_size / (256 * 384 / 1e6)
    assert per_mp < 2.0e6, per_mp  # bytes per megapixel; raw uint8 would be 8e6
    assert dequantize(quantize(probs)).dtype == np.float32


def test_no_temp_files_left(tmp_path):
    save_seg(tmp_path / "m.npz", dirichlet_map(8, 8), META)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert zipfile.is_zipfile(tmp_path / "m.npz")
