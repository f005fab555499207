"""Training data: aligned crops under flips/rotations, the mixing sampler, on-disk sets."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from spsagan import errors
from spsagan.data.pairs import INDEX_COLUMNS
from spsagan.errors import ConfigError
from spsagan.image import imresize, write_image
from spsagan.segmentation.storage import dequantize, load_quantized, save_seg
from spsagan.training import data as tdata
from spsagan.training.data import Draw, MixSampler, SubImageSet, TrainData, batch_to_device, batches, crop_and_augment

torch.set_num_threads(1)


def coordinate_set(n_images=3, height=64, width=48):
    """Images whose pixels spell out their own coordinates, so alignment is checkable exactly.

    gt[y, x] = (y, x, image index); lq[y', x'] = (4 y', 4 x', image index) (the HR pixel at the
    LR pixel's top-left); seg[0] = y / 255, seg[1] = x / 255, seg[2] = index / 255.
    """
    gts, lqs, segs = [], [], []
    for k in range(n_images):
        y, x = np.mgrid[0:height, 0:width]
        gts.append(np.stack([y, x, np.full_like(y, k)], -1).astype(np.uint8))
        ly, lx = np.mgrid[0 : height // 4, 0 : width // 4]
        lqs.append(np.stack([4 * ly, 4 * lx, np.full_like(ly, k)], -1).astype(np.uint8))
        seg = np.zeros((8, height, width), np.float32)
        seg[0], seg[1], seg[2] = y / 255.0, x / 255.0, k / 255.0
        segs.append(seg)
    return gts, lqs, segs


def check_aligned(gt, lq, seg):
    """Every LR pixel sits over the 4x4 HR block it was made from; the map matches the HR pixels."""
    p = gt.shape[0]
    assert gt.shape == (p, p, 3) and lq.shape == (p // 4, p // 4, 3) and seg.shape == (8, p, p)
    for i in range(p // 4):
        for j in range(p // 4):
            block = gt[4 * i : 4 * i + 4, 4 * j : 4 * j + 4].reshape(-1, 3).astype(int)
            # the block holds exactly the 16 HR pixels below LR pixel (lq_y/4, lq_x/4)
            ys, xs = lq[i, j, 0] // 4, lq[i, j, 1] // 4
            assert set(map(tuple, block[:, :2] // 4)) == {(ys, xs)}
            assert len(set(map(tuple, block[:, :2]))) == 16
            assert np.all(block[:, 2] == lq[i, j, 2])
    np.testing.assert_array_equal(seg[0], gt[..., 0] / np.float32(255.0))
    np.testing.assert_array_equal(seg[1], gt[..., 1] / np.float32(255.0))
    np.testing.assert_array_equal(seg[2], gt[..., 2] / np.float32(255.0))


def orientation(gt):
    """(hflip, vflip, transpose) recovered from the coordinate gradients of an augmented crop."""
    dy_rows = int(gt[1, 0, 0]) - int(gt[0, 0, 0])  # change of y going down
    dx_rows = int(gt[1, 0, 1]) - int(gt[0, 0, 1])
    transpose = dy_rows == 0  # going down changes x: rows and columns swapped
    if transpose:
        vflip = dx_rows < 0  # after transpose the original width runs down
        hflip = int(gt[0, 1, 0]) - int(gt[0, 0, 0]) < 0
        return hflip, vflip, transpose
    return int(gt[0, 1, 1]) - int(gt[0, 0, 1]) < 0, dy_rows < 0, False


def test_crops_stay_aligned_under_all_eight_transforms():
    gts, lqs, segs = coordinate_set()
    seen = set()
    sampler = MixSampler([len(gts)], [1.0], batch_size=8, seed=3)
    for step in range(12):
        for d in sampler.draw(step):
            gt, lq, seg = crop_and_augment(gts[d.item], lqs[d.item], segs[d.item], d, crop_size=16)
            check_aligned(gt, lq, seg)
            # the pixel arrangement is the transform the draw asked for (flip order: h, v, then transpose)
            hflip, vflip, transpose = orientation(gt)
            if transpose:  # transposing swaps which flip shows along which axis
                hflip, vflip = vflip, hflip
            assert (hflip, vflip, transpose) == (d.hflip, d.vflip, d.transpose)
            seen.add((d.hflip, d.vflip, d.transpose))
    assert len(seen) == 8


def test_crop_positions_reach_both_edges_and_stay_on_the_lr_grid():
    gts, lqs, segs = coordinate_set(1, 64, 48)
    tops, lefts = set(), set()
    for u in (0.0, 0.4999, 0.9999999):
        d = Draw(0, 0, u, u, False, False, False)
        gt, lq, _ = crop_and_augment(gts[0], lqs[0], None, d, crop_size=16)
        assert gt[0, 0, 0] % 4 == 0 and gt[0, 0, 1] % 4 == 0
        tops.add(int(lq[0, 0, 0]) // 4)
        lefts.add(int(lq[0, 0, 1]) // 4)
    assert min(tops) == 0 and max(tops) == 16 - 4 and min(lefts) == 0 and max(lefts) == 12 - 4


def test_crop_larger_than_image_is_refused():
    gts, lqs, _ = coordinate_set(1, 32, 32)
    with pytest.raises(ConfigError, match="smaller than"):
        crop_and_augment(gts[0], lqs[0], None, Draw(0, 0, 0.5, 0.5, False, False, False), crop_size=48)


def test_batches_are_aligned_tensors_and_seg_only_when_asked():
    gts, lqs, segs = coordinate_set()
    data = TrainData([SubImageSet.from_arrays("coords", gts, lqs, segs)], [1.0])
    sampler = data.sampler(batch_size=4, seed=0)
    batch = data.make_batch(sampler.draw(5), crop_size=16, with_seg=True)
    assert batch["gt"].dtype == torch.uint8 and batch["gt"].shape == (4, 3, 16, 16)
    assert batch["lq"].shape == (4, 3, 4, 4) and batch["seg"].shape == (4, 8, 16, 16)
    for b in range(4):
        check_aligned(
            batch["gt"][b].permute(1, 2, 0).numpy(), batch["lq"][b].permute(1, 2, 0).numpy(), batch["seg"][b].numpy()
        )
    assert "seg" not in data.make_batch(sampler.draw(5), crop_size=16, with_seg=False)
    on_device = batch_to_device(batch, torch.device("cpu"))
    assert on_device["gt"].dtype == torch.float32
    torch.testing.assert_close(on_device["gt"], batch["gt"].float() / 255, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# Sampler


def test_sampler_is_a_pure_function_of_seed_and_step():
    a = MixSampler([10, 3], [10, 1], batch_size=6, seed=7)
    b = MixSampler([10, 3], [10, 1], batch_size=6, seed=7)
    assert [a.draw(k) for k in (5, 0, 9)] == [b.draw(k) for k in (5, 0, 9)]
    assert a.draw(4) != a.draw(5)
    assert MixSampler([10, 3], [10, 1], batch_size=6, seed=8).draw(4) != a.draw(4)
    for d in a.draw(11):
        assert 0 <= d.item < (10, 3)[d.set_index] and 0 <= d.u_top < 1 and 0 <= d.u_left < 1


def test_sampler_state_restores_the_same_stream():
    a = MixSampler([10, 3], [10, 1], batch_size=4, seed=1)
    for _ in range(7):
        next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(5)]
    b = MixSampler([10, 3], [10, 1], batch_size=4, seed=1)
    b.load_state_dict(state)
    assert [next(b) for _ in range(5)] == expected
    with pytest.raises(ValueError, match="seed"):
        MixSampler([10, 3], [10, 1], batch_size=4, seed=2).load_state_dict(state)


def test_sampler_mixes_sets_in_the_given_ratio():
    s = MixSampler([50, 20], [10, 1], batch_size=16, seed=0)
    picks = np.array([d.set_index for k in range(400) for d in s.draw(k)])
    share = picks.mean()  # fraction from the second set; expected 1/11
    n = picks.size
    assert abs(share - 1 / 11) < 4 * np.sqrt((1 / 11) * (10 / 11) / n)
    items = np.array([d.item for k in range(400) for d in s.draw(k) if d.set_index == 0])
    assert set(items) == set(range(50))  # uniform over the set's items


def test_sampler_rejects_bad_ratios():
    with pytest.raises(ValueError, match="ratio"):
        MixSampler([5], [1, 1], 2, 0)
    with pytest.raises(ValueError, match=">= 0"):
        MixSampler([5, 5], [1, -1], 2, 0)


def test_worker_processes_build_the_same_batches():
    gts, lqs, segs = coordinate_set()
    data = TrainData([SubImageSet.from_arrays("coords", gts, lqs, segs)], [1.0])
    sampler = data.sampler(batch_size=2, seed=4)
    inline = list(batches(data, sampler, 16, True, start=3, stop=6, workers=0))
    forked = list(batches(data, sampler, 16, True, start=3, stop=6, workers=1))
    assert len(inline) == len(forked) == 3
    for x, y in zip(inline, forked):
        for key in x:
            assert torch.equal(x[key], y[key])


# --------------------------------------------------------------------------------------------------
# On disk (pipeline layout)


def write_training_set(root, n=3, size=32, with_maps=True):
    """results/make_lr/<ds>/sub/... and results/make_seg_maps/<ds>/sub/*.npz for synthetic images."""
    rng = np.random.default_rng(0)
    make_lr, maps = root / "make_lr" / "toy", root / "make_seg_maps" / "toy"
    rows = []
    for k in range(n):
        gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        name = f"img{k}_s001"
        write_image(make_lr / "sub" / "HR" / f"{name}.png", gt)
        write_image(make_lr / "sub" / "LR_x4" / f"{name}.png", imresize(gt, 0.25))
        if with_maps:  # one-hot on a coordinate code, so map/pixel alignment is checkable
            y, x = np.mgrid[0:size, 0:size]
            probs = np.eye(8, dtype=np.float64)[(y * size + x + k) % 8].transpose(2, 0, 1)
            save_seg(
                maps / "sub" / f"{name}.npz",
                probs,
                {"segmenter": "test", "segmenter_label": "test-onehot", "semantic": False},
            )
        rows.append({"sub": name, "source": f"img{k}", "top": 0, "left": 0, "size": size})
    (make_lr / "sub").mkdir(parents=True, exist_ok=True)
    with open(make_lr / "sub" / "index.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return make_lr, maps


def test_open_from_disk_with_maps(tmp_path):
    make_lr, maps = write_training_set(tmp_path)
    data = tdata.open_train_data(tmp_path / "make_lr", {"toy": 1.0}, seg_root=tmp_path / "make_seg_maps")
    assert data.segmenter == "test-onehot" and data.has_seg
    s = data.sets[0]
    gt, lq, q = s.get(1, with_seg=True)
    np.testing.assert_array_equal(lq, imresize(gt, 0.25))
    np.testing.assert_array_equal(q, load_quantized(maps / "sub" / "img1_s001.npz"))
    batch = data.make_batch(data.sampler(4, seed=0).draw(0), crop_size=16, with_seg=True)
    seg = batch_to_device(batch, torch.device("cpu"))["seg"]
    assert torch.all(seg.sum(1).sub(1).abs() < 1e-6)
    # the uint8 stored form converts exactly as the storage module dequantizes
    np.testing.assert_array_equal(seg.numpy(), dequantize(batch["seg"].numpy()))


def test_selection_keeps_only_sub_images_of_selected_sources(tmp_path):
    write_training_set(tmp_path, n=3, with_maps=False)
    data = tdata.open_train_data(tmp_path / "make_lr", {"toy": 1.0}, sources={"toy": ["img0", "img2"]})
    assert data.sets[0].names == ["img0_s001", "img2_s001"]
    with pytest.raises(errors.ConfigError, match="no sub-image left"):
        tdata.open_train_data(tmp_path / "make_lr", {"toy": 1.0}, sources={"toy": ["other"]})


def test_map_alignment_on_disk(tmp_path):
    write_training_set(tmp_path, n=1, size=32)
    s = SubImageSet.from_dir("toy", tmp_path / "make_lr" / "toy", tmp_path / "make_seg_maps" / "toy")
    gt, lq, q = s.get(0, with_seg=True)
    # tag gt with its coordinate code and crop/augment both: the one-hot channel must follow
    y, x = np.mgrid[0:32, 0:32]
    code = np.stack([(y * 32 + x) % 8] * 3, -1).astype(np.uint8)
    for d in MixSampler([1], [1.0], 8, seed=2).draw(0):
        tagged, _, qc = crop_and_augment(code, lq, q, d, crop_size=16)
        np.testing.assert_array_equal(qc.argmax(0), tagged[..., 0])


def test_no_maps_are_read_for_models_without_the_prior(tmp_path, monkeypatch):
    write_training_set(tmp_path, with_maps=False)
    calls = []
    monkeypatch.setattr(tdata, "_load_seg_quantized", lambda p: calls.append(p))
    data = tdata.open_train_data(tmp_path / "make_lr", {"toy": 1.0})  # no seg_root: no maps exist
    data.make_batch(data.sampler(4, seed=0).draw(0), crop_size=16, with_seg=False)
    assert calls == [] and not data.has_seg and data.segmenter is None
    with pytest.raises(ConfigError, match="without segmentation maps"):
        data.make_batch(data.sampler(4, seed=0).draw(0), crop_size=16, with_seg=True)


def test_decoded_images_are_cached(tmp_path, monkeypatch):
    write_training_set(tmp_path, with_maps=False)
    s = SubImageSet.from_dir("toy", tmp_path / "make_lr" / "toy")
    reads = []
    real = tdata.read_image
    monkeypatch.setattr(tdata, "read_image", lambda p, gray: reads.append(p) or real(p, gray=gray))
    for _ in range(3):
        s.get(0, with_seg=False)
    assert len(reads) == 2  # HR and LR, decoded once
    uncached = SubImageSet.from_dir("toy", tmp_path / "make_lr" / "toy", cache_mb=0)
    reads.clear()
    uncached.get(0, False)
    uncached.get(0, False)
    assert len(reads) == 4


def test_missing_files_are_named(tmp_path):
    make_lr, maps = write_training_set(tmp_path)
    (make_lr / "sub" / "LR_x4" / "img2_s001.png").unlink()
    with pytest.raises(ConfigError, match="img2_s001.png"):
        SubImageSet.from_dir("toy", make_lr)
    with pytest.raises(ConfigError, match="index"):
        SubImageSet.from_dir("toy", tmp_path / "nowhere")
    (maps / "sub" / "img0_s001.npz").unlink()
    write_image(make_lr / "sub" / "LR_x4" / "img2_s001.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConfigError, match="img0_s001.npz"):
        SubImageSet.from_dir("toy", make_lr, maps)


def test_fingerprint_follows_the_listing(tmp_path):
    make_lr, maps = write_training_set(tmp_path)
    a = SubImageSet.from_dir("toy", make_lr, maps)
    before = (a.fingerprint(False), a.fingerprint(True))
    assert before[0] != before[1]
    write_image(make_lr / "sub" / "HR" / "img0_s001.png", np.zeros((32, 32, 3), np.uint8))  # new content, new size
    assert SubImageSet.from_dir("toy", make_lr, maps).fingerprint(False) != before[0]


def test_batch_workers_survive_stop_signals():
    """SLURM signals every process of a job: a worker must outlive SIGUSR1/SIGTERM so that the
    training process can still save its checkpoint."""
    import os
    import signal

    gts, lqs, segs = coordinate_set()
    data = TrainData([SubImageSet.from_arrays("coords", gts, lqs, segs)], [1.0])
    sampler = data.sampler(batch_size=2, seed=4)
    stream = batches(data, sampler, 16, False, start=0, stop=40, workers=1)
    first = next(stream)
    pids = [p.pid for p in __import__("multiprocessing").active_children()]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
        os.kill(pid, signal.SIGTERM)
    rest = list(stream)
    assert len(rest) == 39 and torch.equal(rest[-1]["gt"], data.make_batch(sampler.draw(39), 16, False)["gt"])
    assert first["gt"].shape == (2, 3, 16, 16)
