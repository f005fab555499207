"""Segmentation priors: OutdoorSceneSeg layout and forward, SFTGAN preprocessing, stand-in, the
dataset runner (resume, sub-images, refusal of bad weights), selection and the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spsagan.errors import ConfigError
from spsagan.image import imresize, make_lq, write_image
from spsagan.segmentation import CLASSES, OutdoorSceneSeg, StandInSegmenter, preprocess_lq, selection
from spsagan.segmentation.figure import plot_segmentation
from spsagan.segmentation.outdoor_scene_seg import (
    PARAMETER_COUNT,
    OutdoorSceneSegmenter,
    file_sha256,
    load_outdoor_scene_seg,
)
from spsagan.segmentation.run import build_segmenter, segment_dataset
from spsagan.segmentation.storage import load_quantized, load_seg, read_seg_meta

torch.set_num_threads(1)

# (in, mid, out, blocks, dilation, stride of the first block): the layer list of SFTGAN's network
LAYER_LIST = [(128, 64, 256, 3, 1, 1), (256, 128, 512, 4, 1, 2), (512, 256, 1024, 23, 2, 1), (1024, 512, 2048, 3, 4, 1)]


def documented_layout() -> dict[str, tuple]:
    """Key -> shape of segmentation_OST_bic.pth, written out from the layer list."""
    shapes = {}

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["feature.0.weight"] = (64, 3, 3, 3)
    bn("feature.1", 64)
    shapes["feature.3.weight"] = (64, 64, 3, 3)
    bn("feature.4", 64)
    shapes["feature.6.weight"] = (128, 64, 3, 3)
    bn("feature.7", 128)
    index = 10
    for cin, mid, cout, blocks, _, _ in LAYER_LIST:
        for b in range(blocks):
            p, i = f"feature.{index}", (cin if b == 0 else cout)
            shapes[f"{p}.res.0.weight"] = (mid, i, 1, 1)
            bn(f"{p}.res.1", mid)
            shapes[f"{p}.res.3.weight"] = (mid, mid, 3, 3)
            bn(f"{p}.res.4", mid)
            shapes[f"{p}.res.6.weight"] = (cout, mid, 1, 1)
            bn(f"{p}.res.7", cout)
            if b == 0:
                shapes[f"{p}.proj.0.weight"] = (cout, i, 1, 1)
                bn(f"{p}.proj.1", cout)
            index += 1
    assert index == 43
    shapes["feature.43.weight"] = (512, 2048, 3, 3)
    bn("feature.44", 512)
    shapes["feature.47.weight"] = (8, 512, 1, 1)
    shapes["feature.47.bias"] = (8,)
    shapes["deconv.weight"] = (8, 1, 16, 16)
    return shapes


def synthetic_state_dict(seed=0) -> dict[str, torch.Tensor]:
    """Seeded weights of the documented layout; He-scaled convs, residual branches damped, BN near identity."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in documented_layout().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 1.0 + 0.1 * torch.rand(shape, generator=gen)
        elif len(shape) == 1:  # BN weight/bias/mean, head bias
            base = 1.0 if key.endswith(".weight") else 0.0
            state[key] = base + 0.05 * torch.randn(shape, generator=gen)
        else:
            fan_in = shape[1] * shape[2] * shape[3]
            scale = (2.0 / fan_in) ** 0.5 * (0.2 if ".res.6." in key else 1.0)
            state[key] = scale * torch.randn(shape, generator=gen)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "segmentation_OST_bic.pth"
    torch.save(synthetic_state_dict(), path)
    return path


def reference_forward(sd, x):
    """Functional OutdoorSceneSeg written from the layer list, to check the module's wiring."""

    def conv_bn(x, conv, bn, stride=1, dilation=1, relu=True):
        w = sd[f"{conv}.weight"]
        x = F.conv2d(x, w, stride=stride, padding=dilation * (w.shape[-1] - 1) // 2, dilation=dilation)
        x = F.batch_norm(
            x,
            sd[f"{bn}.running_mean"],
            sd[f"{bn}.running_var"],
            sd[f"{bn}.weight"],
            sd[f"{bn}.bias"],
            training=False,
            eps=1e-5,
        )
        return F.relu(x) if relu else x

    x = conv_bn(x, "feature.0", "feature.1", stride=2)
    x = conv_bn(x, "feature.3", "feature.4")
    x = conv_bn(x, "feature.6", "feature.7")
    x = F.max_pool2d(x, 3, stride=2, padding=0, ceil_mode=True)
    index = 10
    for _, _, _, blocks, dilation, stride in LAYER_LIST:
        for b in range(blocks):
            p, s = f"feature.{index}", (stride if b == 0 else 1)
            r = conv_bn(x, f"{p}.res.0", f"{p}.res.1")
            r = conv_bn(r, f"{p}.res.3", f"{p}.res.4", stride=s, dilation=dilation)
            r = conv_bn(r, f"{p}.res.6", f"{p}.res.7", relu=False)
            shortcut = conv_bn(x, f"{p}.proj.0", f"{p}.proj.1", stride=s, relu=False) if b == 0 else x
            x = F.relu(shortcut + r)
            index += 1
    x = conv_bn(x, "feature.43", "feature.44")
    x = F.conv2d(x, sd["feature.47.weight"], sd["feature.47.bias"])
    x = F.conv_transpose2d(x, sd["deconv.weight"], stride=8, padding=4, groups=8)
    return torch.softmax(x, dim=1)


# --------------------------------------------------------------------------------------------------
# OutdoorSceneSeg


def test_class_order_is_sftgan():
    assert CLASSES == ("background", "sky", "water", "grass", "mountain", "building", "plant", "animal")


def test_documented_layout_loads_strictly_and_counts_52_07m():
    layout = documented_layout()
    count = sum(
        int(np.prod(s))
        for k, s in layout.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert count == PARAMETER_COUNT == 52_068_296
    model = OutdoorSceneSeg()
    assert sum(p.numel() for p in model.parameters()) == PARAMETER_COUNT
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout
    state = synthetic_state_dict()
    model.load_state_dict(state, strict=True)
    # files from PyTorch < 0.4.1 have no num_batches_tracked: they load strictly too
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    OutdoorSceneSeg().load_state_dict(old, strict=True)


def test_forward_64x64_probabilities_and_matches_reference():
    state = synthetic_state_dict()
    model = OutdoorSceneSeg().eval()
    model.load_state_dict(state)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 50
    with torch.no_grad():
        out = model(x)
        ref = reference_forward(state, x)
    assert out.shape == (1, 8, 64, 64)
    assert out.min() >= 0 and torch.allclose(out.sum(dim=1), torch.ones(1, 64, 64), atol=1e-5)
    assert torch.allclose(out, ref, atol=1e-5)
    assert out.argmax(dim=1).unique().numel() > 1  # a non-degenerate check
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 16, 24)).shape == (2, 8, 16, 24)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 3, 20, 24))


def test_preprocess_lq_is_sftgan_bgr_caffe_means_on_the_x4_bicubic():
    lq = np.zeros((17, 11, 3), np.uint8)
    lq[...] = (200, 100, 50)  # RGB
    x = preprocess_lq(lq)
    assert x.shape == (3, 64, 40) and x.dtype == torch.float32  # 68 x 44 at x4, cropped to multiples of 8
    # bicubic of a constant is the constant: BGR order minus (103.939, 116.779, 123.68)
    expect = torch.tensor([50 - 103.939, 100 - 116.779, 200 - 123.68]).view(3, 1, 1).expand(3, 64, 40)
    assert torch.allclose(x, expect, atol=1e-4)
    rng = np.random.default_rng(0)
    lq = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    x = preprocess_lq(lq)
    up = imresize(lq[:, :, ::-1].astype(np.float64) / 255, 4)[:32, :48]  # the whole LR upsampled, then cropped
    ref = up * 255 - np.array([103.939, 116.779, 123.68])
    np.testing.assert_allclose(x.numpy(), ref.transpose(2, 0, 1), atol=1e-3)
    assert np.abs(up * 255 - np.round(up * 255)).max() > 0.1  # float, not rounded to uint8
    gray = preprocess_lq(lq[:, :, 0])  # replicated to 3 channels, then the per-channel means
    assert torch.allclose(gray[0] + 103.939, gray[2] + 123.68, atol=1e-4)
    with pytest.raises(ValueError, match="too small"):
        preprocess_lq(lq[:1])


def test_segmenter_pads_mod8_crop_by_edge_replication(weights_file):
    model, digest = load_outdoor_scene_seg(weights_file)
    seg = OutdoorSceneSegmenter(model, digest)
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (20, 27, 3), dtype=np.uint8)
    (probs,) = seg.segment([hr])
    assert probs.shape == (8, 20, 27)
    lq = make_lq(hr)  # 5 x 6: 20 x 24 at x4, segmented on its 16 x 24 crop
    with torch.no_grad():
        inner = model(preprocess_lq(lq)[None])[0].numpy()
    np.testing.assert_allclose(probs[:, :16, :24], inner, atol=1e-6)
    np.testing.assert_array_equal(probs[:, 19, :24], probs[:, 15, :24])
    np.testing.assert_array_equal(probs[:, :, 26], probs[:, :, 23])
    np.testing.assert_array_equal(probs[:, :20, :24], seg.segment_lq([lq])[0])  # an HR image is its LR's prior
    # a batch of two same-size images gives the same maps as one at a time (up to float rounding)
    other = rng.integers(0, 256, (20, 27, 3), dtype=np.uint8)
    both = seg.segment([hr, other])
    np.testing.assert_allclose(both[0], probs, atol=5e-5)
    np.testing.assert_allclose(both[1], seg.segment([other])[0], atol=5e-5)


# --------------------------------------------------------------------------------------------------
# Weights refusal (before any map is written)


def make_seg_maps(tmp_path, name, weights=None, sha256=None):
    """What the stage does: build the segmenter, then segment."""
    hr_dir = tmp_path / "HR"
    write_image(hr_dir / "a.png", np.full((16, 16, 3), 90, np.uint8))
    segmenter = build_segmenter(name, weights=weights, sha256=sha256)
    return segment_dataset(segmenter, hr_dir, tmp_path / "maps", progress=False)


def test_missing_weights_refused_with_instructions(tmp_path):
    missing = tmp_path / "models" / "segmentation_OST_bic.pth"
    with pytest.raises(ConfigError) as err:
        make_seg_maps(tmp_path, "outdoor_scene_seg", weights=missing)
    message = str(err.value)
    for part in (str(missing), "segmentation_OST_bic.pth", "drive.google.com", "sha256sum", "52,068,296", "strictly"):
        assert part in message
    assert not (tmp_path / "maps").exists()
    with pytest.raises(ConfigError, match="needs the path"):
        make_seg_maps(tmp_path, "outdoor_scene_seg", weights=None)


def test_wrong_checksum_refused(tmp_path, weights_file):
    with pytest.raises(ConfigError, match="sha256 is [0-9a-f]{64}, but params expect 0000") as err:
        make_seg_maps(tmp_path, "outdoor_scene_seg", weights=weights_file, sha256="0000" + "f" * 60)
    assert "Download segmentation_OST_bic.pth" in str(err.value)
    assert not (tmp_path / "maps").exists()


def test_wrong_files_refused(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"<html>Google Drive virus scan warning</html>")
    with pytest.raises(ConfigError, match="not a readable PyTorch weights file"):
        load_outdoor_scene_seg(garbage)
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Conv2d(8, 128, 4, 4).state_dict(), other)  # e.g. an SFTGAN file by mistake
    with pytest.raises(ConfigError, match="missing keys .*feature.0.weight.*unexpected keys"):
        load_outdoor_scene_seg(other)
    shaped = tmp_path / "shaped.pth"
    state = synthetic_state_dict()
    state["deconv.weight"] = torch.zeros(8, 8, 16, 16)
    torch.save(state, shaped)
    with pytest.raises(ConfigError, match="shape mismatch.*deconv.weight"):
        load_outdoor_scene_seg(shaped)
    assert list(tmp_path.glob("*.npz")) == []


def test_good_weights_file_runs_the_stage(tmp_path, weights_file):
    digest = file_sha256(weights_file)
    summary = make_seg_maps(tmp_path, "outdoor_scene_seg", weights=weights_file, sha256=digest.upper())
    assert summary["computed"] == 1 and summary["semantic"] is True
    meta = read_seg_meta(tmp_path / "maps" / "a.npz")
    assert meta["weights_sha256"] == digest and meta["classes"] == list(CLASSES)


# --------------------------------------------------------------------------------------------------
# Stand-in


def test_standin_format_and_determinism():
    from skimage import data

    image = data.astronaut()[:250, :301]  # not a multiple of 4
    maps = StandInSegmenter(seed=3).segment([image])[0]
    assert maps.shape == (8, 250, 301) and maps.dtype == np.float32
    assert maps.min() >= 0 and np.abs(maps.sum(axis=0) - 1).max() < 1e-5
    np.testing.assert_array_equal(maps, StandInSegmenter(seed=3).segment_one(image))
    np.testing.assert_array_equal(maps[:, 249], maps[:, 247])  # padded rows replicate the mod-4 edge
    labels = maps.argmax(axis=0)
    assert len(np.unique(labels)) >= 5
    # channels are ordered by lightness: the darkest cluster is darker than the lightest
    luma = image.astype(float).mean(axis=2)
    assert luma[labels == labels.min()].mean() < luma[labels == labels.max()].mean()


def test_standin_separates_flat_regions():
    image = np.zeros((192, 192, 3), np.uint8)
    image[:, :96] = (200, 30, 30)
    image[:, 96:] = (20, 40, 210)
    image[:48] = 250
    labels = StandInSegmenter(seed=0).segment_one(image).argmax(axis=0)
    # interiors far from the borders, where colour and texture are constant
    left, right, top = labels[120:, :40], labels[120:, 152:], labels[:8]
    for region in (left, right, top):
        assert len(np.unique(region)) == 1
    assert len({left[0, 0], right[0, 0], top[0, 0]}) == 3
    uniform = StandInSegmenter(seed=0).segment_one(np.full((8, 8), 7, np.uint8))
    np.testing.assert_allclose(uniform, 1 / 8, atol=1e-6)


def test_build_segmenter_names():
    assert build_segmenter("standin", seed=5).label.endswith("seed=5)")
    with pytest.raises(ValueError, match="unknown segmenter 'sam'.*outdoor_scene_seg, standin"):
        build_segmenter("sam")


# --------------------------------------------------------------------------------------------------
# segment_dataset


def tiny_dataset(tmp_path):
    rng = np.random.default_rng(7)
    hr_dir = tmp_path / "HR"
    for name, (h, w) in {"img0": (48, 64), "img1": (40, 40), "img2": (48, 64)}.items():
        base = np.zeros((h, w, 3), np.uint8)
        base[: h // 2] = rng.integers(0, 256, 3)
        base[h // 2 :] = rng.integers(0, 256, 3)
        write_image(hr_dir / f"{name}.png", np.clip(base + rng.integers(0, 20, (h, w, 3)), 0, 255).astype(np.uint8))
    gray = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    write_image(hr_dir / "gray.png", gray)
    index = pd.DataFrame(
        {
            "sub": ["img0_s001", "img0_s002", "img1_s001", "gray_s001"],
            "source": ["img0", "img0.png", "img1", "gray"],
            "top": [0, 16, 8, 4],
            "left": [0, 32, 12, 8],
            "size": [32, 32, 24, 16],
        }
    )
    index.to_csv(tmp_path / "index.csv", index=False)
    return hr_dir, tmp_path / "index.csv"


def test_segment_dataset_writes_full_and_sub_maps(tmp_path):
    hr_dir, index_csv = tiny_dataset(tmp_path)
    out = tmp_path / "maps"
    seg = StandInSegmenter(seed=0)
    summary = segment_dataset(seg, hr_dir, out, index_csv=index_csv, batch_size=2, progress=False)
    assert (summary["images"], summary["computed"], summary["sub_images"], summary["sub_computed"]) == (4, 4, 4, 4)
    assert summary["bytes_per_megapixel"] > 0 and summary["segmenter_label"] == seg.label
    full = load_seg(out / "img0.npz")
    assert full.shape == (8, 48, 64)
    np.testing.assert_array_equal(load_seg(out / "sub" / "img0_s002.npz"), full[:, 16:48, 32:64])
    np.testing.assert_array_equal(load_seg(out / "sub" / "gray_s001.npz"), load_seg(out / "gray.npz")[:, 4:20, 8:24])
    meta = read_seg_meta(out / "sub" / "img1_s001.npz")
    assert (meta["source"], meta["top"], meta["left"], meta["size"]) == ("img1", 8, 12, 24)
    assert meta["semantic"] is False and meta["segmenter_label"] == seg.label
    np.testing.assert_allclose(
        load_seg(out / "img1.npz"), seg.segment_one(np.asarray(Image.open(hr_dir / "img1.png"))), atol=1 / 255
    )
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix != ".npz"]  # no temp files


def test_segment_dataset_resumes(tmp_path):
    hr_dir, index_csv = tiny_dataset(tmp_path)
    out = tmp_path / "maps"

    class Crashing(StandInSegmenter):
        calls = 0

        def segment_lq(self, images):
            Crashing.calls += 1
            if Crashing.calls == 2:
                raise RuntimeError("killed")
            return super().segment_lq(images)

    with pytest.raises(RuntimeError, match="killed"):
        segment_dataset(Crashing(seed=0), hr_dir, out, index_csv=index_csv, progress=False)
    done = sorted(p.name for p in out.glob("*.npz"))
    assert len(done) == 1 and all(load_quantized(p).shape[0] == 8 for p in out.glob("*.npz"))
    first = (out / done[0]).read_bytes()
    summary = segment_dataset(StandInSegmenter(seed=0), hr_dir, out, index_csv=index_csv, progress=False)
    assert (summary["computed"], summary["skipped"]) == (3, 1)
    assert (out / done[0]).read_bytes() == first  # not rewritten
    (out / "sub" / "img1_s001.npz").unlink()
    summary = segment_dataset(StandInSegmenter(seed=0), hr_dir, out, index_csv=index_csv, progress=False)
    assert (summary["computed"], summary["sub_computed"], summary["sub_skipped"]) == (0, 1, 3)
    # another segmenter (seed) makes every map stale
    summary = segment_dataset(StandInSegmenter(seed=1), hr_dir, out, index_csv=index_csv, progress=False)
    assert (summary["computed"], summary["sub_computed"]) == (4, 4)
    assert read_seg_meta(out / "img0.npz")["segmenter_label"].endswith("seed=1)")


def test_segment_dataset_refuses_non_probabilities(tmp_path):
    hr_dir, _ = tiny_dataset(tmp_path)

    class Logits(StandInSegmenter):
        def segment_lq(self, images):
            return [np.full((8, 4 * im.shape[0], 4 * im.shape[1]), 3.0, np.float32) for im in images]

    with pytest.raises(ValueError, match="map of .*gray.png: channels must sum to 1"):
        segment_dataset(Logits(seed=0), hr_dir, tmp_path / "maps", progress=False)
    assert not (tmp_path / "maps").exists()


@pytest.mark.parametrize(
    "row, message",
    [
        ({"source": "nope"}, "source 'nope' is not an image"),
        ({"top": 2}, "multiples of 4"),
        ({"left": 40}, "leaves the 48x64 image"),
    ],
)
def test_bad_index_rows_are_named(tmp_path, row, message):
    hr_dir, index_csv = tiny_dataset(tmp_path)
    table = pd.read_csv(index_csv)
    for key, value in row.items():
        table.loc[1, key] = value
    table.to_csv(index_csv, index=False)
    with pytest.raises(ValueError, match=rf"index.csv line 3 \(sub img0_s002\): .*{message}"):
        segment_dataset(StandInSegmenter(seed=0), hr_dir, tmp_path / "maps", index_csv=index_csv, progress=False)
    assert not (tmp_path / "maps").exists()


# --------------------------------------------------------------------------------------------------
# Selection and figure


def test_selection_rule():
    labels = np.zeros((10, 10), int)
    labels[:, :3] = 1  # sky 30 %
    labels[:, 3:5] = 3  # grass 20 %
    labels[:, 5:6] = 6  # plant 10 %
    probs = np.eye(8)[labels].transpose(2, 0, 1)  # background 40 %
    fractions = selection.class_fractions(probs)
    np.testing.assert_allclose(fractions, [0.4, 0.3, 0, 0.2, 0, 0, 0.1, 0])
    assert selection.count_categories(fractions, 0.15) == 2
    assert selection.count_categories(fractions, 0.15, count_background=True) == 3
    table = selection.select_multi_category({"b": fractions, "a": np.eye(8)[1]}, min_categories=2, min_fraction=0.15)
    assert table["name"].tolist() == ["a", "b"] and table["selected"].tolist() == [False, True]
    assert table["n_categories"].tolist() == [1, 2]
    table3 = selection.select_multi_category({"b": fractions}, min_categories=3, min_fraction=0.1)
    assert table3["selected"].tolist() == [True]
    with pytest.raises(ValueError, match="min_fraction"):
        selection.select_multi_category({"b": fractions}, 2, 0.0)


def test_selection_from_maps_writes_lists(tmp_path):
    hr_dir, _ = tiny_dataset(tmp_path)
    segment_dataset(StandInSegmenter(seed=0), hr_dir, tmp_path / "maps", progress=False)
    fractions, meta = selection.fractions_from_maps(tmp_path / "maps")
    assert sorted(fractions) == ["gray", "img0", "img1", "img2"] and meta["semantic"] is False
    table = selection.select_multi_category(fractions, 2, 0.2, semantic=meta["semantic"])
    names = selection.write_selection(table, tmp_path / "sel.csv", tmp_path / "selected.txt", meta["segmenter_label"])
    assert (tmp_path / "selected.txt").read_text().split() == names
    written = pd.read_csv(tmp_path / "sel.csv")
    assert "cluster 0" in written.columns and set(written["segmenter"]) == {meta["segmenter_label"]}


def test_figure_writes_png(tmp_path):
    from skimage import data

    image = data.chelsea()[::2, ::2]
    maps = StandInSegmenter(seed=0).segment_one(image)
    path = plot_segmentation(image, maps, tmp_path / "fig.png", "chelsea", "standin(test)")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 600 and im.height > 300
    path = plot_segmentation(image[:, :, 0], maps, tmp_path / "gray.png", "gray", "outdoor_scene_seg(x)")
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="do not match"):
        plot_segmentation(image, maps[:, 1:], tmp_path / "bad.png", "x", "standin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "gray.png"]
