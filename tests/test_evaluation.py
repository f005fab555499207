"""Evaluation (spsagan.evaluation) and timing (spsagan.timing) on tiny synthetic images."""

from __future__ import annotations

import math
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from spsagan import evaluation, metrics, timing
from spsagan.errors import ConfigError
from spsagan.image import imresize
from spsagan.runtime import compiler_missing

torch.set_num_threads(1)

# 104 x 200 leaves two 96x96 NIQE blocks after the 4-pixel crop.
H, W = 104, 200


def _smooth_rgb(seed: int, shape=(H, W)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = [np.sin(xx / (7 + 3 * c) + c) * np.cos(yy / (5 + 2 * c)) for c in range(3)]
    img = 127.5 + 80 * np.stack(base, axis=2) + rng.normal(0, 12, size=(*shape, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _noisy(img: np.ndarray, seed: int, sigma: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)


def _literal_psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """PSNR on MATLAB Y (or the gray values), written out per the protocol: crop, convert, MSE."""

    def y(img):
        img = img[border:-border, border:-border].astype(np.float64)
        if img.ndim == 2:
            return img
        return 16.0 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0

    mse = np.mean((y(sr) - y(hr)) ** 2)
    return 10.0 * math.log10(255.0**2 / mse)


@pytest.fixture()
def pairs(tmp_path: Path):
    """HR folder with two RGB images and one gray image; SR = HR plus noise."""
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    hr = {"alpha": _smooth_rgb(1), "beta": _smooth_rgb(2), "gray": _smooth_rgb(3)[:, :, 1]}
    for name, img in hr.items():
        Image.fromarray(img).save(hr_dir / f"{name}.png")
    sr = {name: _noisy(img, seed=10 + k) for k, (name, img) in enumerate(hr.items())}
    return hr_dir, hr, sr


@pytest.fixture()
def no_pyiqa(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiqa", None)


def test_evaluate_pairs_matches_direct_metric_calls(pairs, no_pyiqa):
    hr_dir, hr, sr = pairs
    df = evaluation.evaluate_pairs(sr, hr_dir, crop_border=4)
    assert list(df.columns) == evaluation.RESULT_COLUMNS
    assert list(df["name"]) == ["alpha", "beta", "gray"]
    for _, row in df.iterrows():
        name = row["name"]
        assert row["psnr"] == metrics.psnr(sr[name], hr[name], 4, test_y_channel=True)
        assert row["ssim"] == metrics.ssim(sr[name], hr[name], 4, test_y_channel=True)
        assert row["niqe"] == metrics.niqe(sr[name], crop_border=4)
        assert row["psnr"] == pytest.approx(_literal_psnr_y(sr[name], hr[name], 4), abs=1e-9)
        assert math.isnan(row["pi"]) and math.isnan(row["ma"])
        assert row["pi_reason"] == evaluation.REASON_NO_PYIQA


def test_evaluate_pairs_passes_protocol_options(pairs, no_pyiqa):
    hr_dir, hr, sr = pairs
    df = evaluation.evaluate_pairs(sr, hr_dir, crop_border=8, test_y_channel=False, niqe=False)
    row = df.set_index("name").loc["alpha"]
    assert row["psnr"] == metrics.psnr(sr["alpha"], hr["alpha"], 8, test_y_channel=False)
    assert row["ssim"] == metrics.ssim(sr["alpha"], hr["alpha"], 8, test_y_channel=False)
    assert math.isnan(row["niqe"])


def test_niqe_of_an_image_too_small_is_nan_with_a_reason(tmp_path, fake_pyiqa):
    """An 80x60 test image passes make_lr; NIQE (two 96x96 blocks) is undefined, the row gets NaN."""
    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    hr = _smooth_rgb(4, shape=(60, 80))
    Image.fromarray(hr).save(hr_dir / "small.png")
    weights = tmp_path / "NRQM_model.mat"
    weights.write_bytes(b"fake")
    df = evaluation.evaluate_pairs({"small": _noisy(hr, seed=5)}, hr_dir, nrqm_weights=weights)
    row = df.iloc[0]
    assert math.isfinite(row["psnr"]) and math.isfinite(row["ssim"])
    assert math.isnan(row["niqe"]) and "96x96" in row["niqe_reason"] and "52x72" in row["niqe_reason"]
    assert math.isnan(row["pi"]) and "NIQE" in row["pi_reason"]  # Ma alone is no PI
    assert evaluation.summarise(df)["niqe"] is None  # the reports print n/a
    df = evaluation.evaluate_pairs({"small": _noisy(hr, seed=5)}, hr_dir, niqe=False)
    assert math.isnan(df["niqe"].iloc[0]) and df["niqe_reason"].iloc[0] == "NIQE not requested"


def test_rgb_output_of_gray_reference_is_reduced_to_channel_mean(pairs, no_pyiqa):
    hr_dir, hr, sr = pairs
    gray_sr = sr["gray"]
    rgb_sr = np.stack([gray_sr, np.clip(gray_sr.astype(int) + 1, 0, 255), gray_sr], axis=2).astype(np.uint8)
    expected = np.floor(rgb_sr.astype(np.float64).mean(axis=2) + 0.5).astype(np.uint8)
    df = evaluation.evaluate_pairs({"gray": rgb_sr}, hr_dir, niqe=False)
    assert df["psnr"].iloc[0] == metrics.psnr(expected, hr["gray"], 4)


def test_evaluate_pairs_errors_name_the_image(pairs, no_pyiqa):
    hr_dir, hr, sr = pairs
    with pytest.raises(ConfigError, match="delta"):
        evaluation.evaluate_pairs({"delta": sr["alpha"]}, hr_dir)
    with pytest.raises(ConfigError, match="alpha.*HR image is"):
        evaluation.evaluate_pairs({"alpha": sr["alpha"][:-4]}, hr_dir)
    with pytest.raises(ConfigError, match="alpha.*gray"):
        evaluation.evaluate_pairs({"alpha": sr["alpha"][:, :, 0]}, hr_dir)
    with pytest.raises(ConfigError, match="no such folder"):
        evaluation.evaluate_pairs(sr, hr_dir.parent / "missing")


# --------------------------------------------------------------------------------------------------
# PI through pyiqa (a fake module stands in for it)


class _FakeNRQM:
    """Records its options; scores an image as 10 * mean of what it receives (in [0, 1] units)."""

    instances: list = []

    def __init__(self, test_y_channel=True, color_space="yiq", crop_border=0, pretrained_model_path=None):
        self.options = dict(
            test_y_channel=test_y_channel,
            color_space=color_space,
            crop_border=crop_border,
            pretrained_model_path=pretrained_model_path,
        )
        self.inputs = []
        _FakeNRQM.instances.append(self)

    def __call__(self, x):
        self.inputs.append(x.clone())
        scale = 1.0 if x.shape[1] == 3 else 255.0
        return torch.tensor(10.0 * float(x.mean()) / scale)


@pytest.fixture()
def fake_pyiqa(monkeypatch):
    _FakeNRQM.instances = []
    pkg = types.ModuleType("pyiqa")
    archs = types.ModuleType("pyiqa.archs")
    nrqm_arch = types.ModuleType("pyiqa.archs.nrqm_arch")
    nrqm_arch.NRQM = _FakeNRQM
    pkg.archs, archs.nrqm_arch = archs, nrqm_arch
    for name, mod in (("pyiqa", pkg), ("pyiqa.archs", archs), ("pyiqa.archs.nrqm_arch", nrqm_arch)):
        monkeypatch.setitem(sys.modules, name, mod)
    return _FakeNRQM


def test_pi_with_pyiqa_and_local_weights(pairs, fake_pyiqa, tmp_path):
    hr_dir, hr, sr = pairs
    weights = tmp_path / "NRQM_model.mat"
    weights.write_bytes(b"fake")
    df = evaluation.evaluate_pairs(sr, hr_dir, crop_border=4, nrqm_weights=weights).set_index("name")
    (net,) = fake_pyiqa.instances
    assert net.options == dict(
        test_y_channel=True, color_space="ycbcr", crop_border=4, pretrained_model_path=str(weights)
    )
    rgb_in, _, gray_in = net.inputs
    assert rgb_in.shape == (1, 3, H, W) and float(rgb_in.max()) <= 1.0
    assert torch.equal(rgb_in[0, 1], torch.from_numpy(sr["alpha"][:, :, 1].astype(np.float32) / 255.0))
    assert gray_in.shape == (1, 1, H, W) and torch.equal(gray_in[0, 0], torch.from_numpy(sr["gray"].astype(np.float32)))
    for name in sr:
        ma = 10.0 * float(torch.from_numpy(sr[name].astype(np.float32)).mean()) / 255.0
        assert df.loc[name, "ma"] == pytest.approx(ma, rel=1e-6)
        assert df.loc[name, "pi"] == 0.5 * ((10.0 - df.loc[name, "ma"]) + df.loc[name, "niqe"])
        assert df.loc[name, "pi_reason"] == ""


def test_pi_weights_found_in_pyiqa_cache(pairs, fake_pyiqa, tmp_path, monkeypatch):
    hr_dir, hr, sr = pairs
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    df = evaluation.evaluate_pairs({"alpha": sr["alpha"]}, hr_dir)
    assert math.isnan(df["pi"].iloc[0])
    assert df["pi_reason"].iloc[0].startswith(evaluation.REASON_NO_WEIGHTS)
    cached = tmp_path / "torch" / "hub" / "pyiqa" / "NRQM_model.mat"
    assert evaluation.default_nrqm_path() == cached
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"fake")
    df = evaluation.evaluate_pairs({"alpha": sr["alpha"]}, hr_dir)
    assert math.isfinite(df["pi"].iloc[0]) and df["pi_reason"].iloc[0] == ""


def test_pi_skipped_without_niqe(pairs, fake_pyiqa, tmp_path):
    hr_dir, hr, sr = pairs
    weights = tmp_path / "NRQM_model.mat"
    weights.write_bytes(b"fake")
    df = evaluation.evaluate_pairs({"alpha": sr["alpha"]}, hr_dir, niqe=False, nrqm_weights=weights)
    assert math.isnan(df["pi"].iloc[0]) and "NIQE" in df["pi_reason"].iloc[0]
    df = evaluation.evaluate_pairs({"alpha": sr["alpha"]}, hr_dir, niqe=False, pi=False)
    assert df["pi_reason"].iloc[0] == "PI not requested"


# --------------------------------------------------------------------------------------------------
# Folders of outside methods


def test_match_names_tolerates_suffixes_and_prefers_longest():
    mapping = evaluation.match_names(
        ["baby_x4", "Bird_SR", "img_2_x4", "img-ESRGAN", "head"], ["baby", "bird", "img", "img_2", "head"]
    )
    assert mapping == {"baby_x4": "baby", "Bird_SR": "bird", "img_2_x4": "img_2", "img-ESRGAN": "img", "head": "head"}
    assert evaluation.match_names(["img_10_x4"], ["img_10"]) == {"img_10_x4": "img_10"}


def test_match_names_errors_name_the_files():
    with pytest.raises(ConfigError, match="no HR image of the same name: zebra_x4") as info:
        evaluation.match_names(["baby_x4", "zebra_x4"], ["baby", "bird"])
    assert "HR images with no SR image: bird" in str(info.value)
    with pytest.raises(ConfigError, match=r"baby <- baby_x4, baby_SR"):
        evaluation.match_names(["baby_x4", "baby_SR"], ["baby"])
    with pytest.raises(ConfigError, match="same name: img_10;"):  # img_10 does not match img_1
        evaluation.match_names(["img_10"], ["img_1"])


def test_sr_folder_read_by_name_equals_evaluate_pairs(pairs, tmp_path, no_pyiqa):
    hr_dir, hr, sr = pairs
    sr_dir = tmp_path / "SR"
    sr_dir.mkdir()
    Image.fromarray(sr["alpha"]).save(sr_dir / "alpha_x4.png")
    Image.fromarray(sr["beta"]).save(sr_dir / "beta_SR.bmp")
    Image.fromarray(sr["gray"]).save(sr_dir / "gray.png")
    (sr_dir / "notes.txt").write_text("not an image")
    from_folder = evaluation.evaluate_pairs(evaluation.read_sr_folder(sr_dir, hr_dir), hr_dir, niqe=False)
    direct = evaluation.evaluate_pairs(sr, hr_dir, niqe=False)
    pd.testing.assert_frame_equal(from_folder, direct)
    Image.fromarray(sr["alpha"]).save(sr_dir / "stray_x4.png")
    with pytest.raises(ConfigError, match="stray_x4"):
        evaluation.read_sr_folder(sr_dir, hr_dir)


def test_summarise_means_and_missing_values():
    df = pd.DataFrame(
        {
            "name": ["a", "b"],
            "psnr": [30.0, 32.0],
            "ssim": [0.8, 0.9],
            "niqe": [4.0, 6.0],
            "ma": [math.nan, math.nan],
            "pi": [math.nan, math.nan],
            "pi_reason": [evaluation.REASON_NO_PYIQA] * 2,
        }
    )
    s = evaluation.summarise(df)
    assert s == {
        "num_images": 2,
        "psnr": 31.0,
        "ssim": pytest.approx(0.85),
        "niqe": 5.0,
        "ma": None,
        "pi": None,
        "pi_reason": evaluation.REASON_NO_PYIQA,
    }
    df.loc[0, "psnr"] = math.inf
    assert evaluation.summarise(df)["psnr"] is None


# --------------------------------------------------------------------------------------------------
# Super-resolving


def test_bicubic_sr_is_matlab_imresize_x4():
    lq = _smooth_rgb(7, shape=(9, 11))
    out = evaluation.bicubic_sr(lq)
    assert out.shape == (36, 44, 3) and out.dtype == np.uint8
    assert np.array_equal(out, imresize(lq, 4))


class _Nearest4(torch.nn.Module):
    """x4 nearest upsampling times per-channel gains; records the seg it gets."""

    def __init__(self, gains=(1.0, 1.0, 1.0)):
        super().__init__()
        self.gains = torch.nn.Parameter(torch.tensor(gains).view(1, 3, 1, 1))
        self.seen_seg = None

    def forward(self, lq, seg=None):
        self.seen_seg = seg
        return torch.nn.functional.interpolate(lq, scale_factor=4, mode="nearest") * self.gains


def test_sr_with_model_rgb_round_trip():
    lq = _smooth_rgb(8, shape=(6, 5))
    sr = evaluation.sr_with_model(_Nearest4(), lq)
    assert sr.dtype == np.uint8 and sr.shape == (24, 20, 3)
    assert np.array_equal(sr, lq.repeat(4, axis=0).repeat(4, axis=1))


def test_sr_with_model_gray_returns_channel_mean():
    lq = _smooth_rgb(9, shape=(6, 5))[:, :, 0]
    gains = (0.5, 1.0, 1.2)
    sr = evaluation.sr_with_model(_Nearest4(gains), lq)
    up = lq.repeat(4, axis=0).repeat(4, axis=1).astype(np.float32) / np.float32(255.0)
    channels = [np.clip(up * np.float32(g), 0, 1).astype(np.float64) for g in gains]  # the network runs in float32
    expected = (channels[0] + channels[1] + channels[2]) / 3.0
    assert sr.shape == (24, 20) and sr.dtype == np.uint8
    assert np.array_equal(sr, np.floor(expected * 255.0 + 0.5).astype(np.uint8))


def test_sr_with_model_passes_seg_and_checks_its_shape():
    lq = _smooth_rgb(10, shape=(4, 6))
    model = _Nearest4()
    seg = np.full((8, 16, 24), 1 / 8, dtype=np.float32)
    evaluation.sr_with_model(model, lq, seg=seg)
    assert model.seen_seg.shape == (1, 8, 16, 24) and model.seen_seg.dtype == torch.float32
    with pytest.raises(ValueError, match=r"expected \(8, 16, 24\)"):
        evaluation.sr_with_model(model, lq, seg=seg[:, :8])
    with pytest.raises(ValueError, match="uint8"):
        evaluation.sr_with_model(model, lq.astype(np.float32))


def test_sr_with_model_real_generator():
    from spsagan.models.rrdb import RRDBNet

    torch.manual_seed(0)
    model = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, attention="spsa")
    lq = _smooth_rgb(11, shape=(5, 7))
    seg = np.random.default_rng(0).dirichlet(np.ones(8), size=(20, 28)).transpose(2, 0, 1).astype(np.float32)
    sr = evaluation.sr_with_model(model, lq, seg=seg)
    with torch.no_grad():
        ref = model(torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255, torch.from_numpy(seg)[None])
    expected = np.floor(ref[0].clamp(0, 1).double().numpy() * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    assert np.array_equal(sr, expected)
    assert evaluation.sr_with_model(model, lq[:, :, 0], seg=seg).shape == (20, 28)


# --------------------------------------------------------------------------------------------------
# Timing


def test_time_inference_counts_calls_and_takes_the_median():
    calls = []
    durations = iter([0.0, 0.0, 0.03, 0.0, 0.01, 0.02])  # 2 warm-up, then 4 timed

    def fn():
        calls.append(1)
        time.sleep(next(durations))

    out = timing.time_inference(fn, warmup=2, repeats=4, device="cpu", dtype=torch.float16, size=(1, 3, 8, 8))
    assert len(calls) == 6
    assert out["repeats"] == 4 and out["warmup"] == 2 and len(out["times_s"]) == 4
    assert out["median_s"] == pytest.approx(np.median(out["times_s"]))
    assert 0.005 <= out["median_s"] < 0.03  # median of ~{0.03, 0, 0.01, 0.02}
    assert out["device"] == "cpu" and out["dtype"] == "float16" and out["size"] == "1x3x8x8"
    with pytest.raises(ValueError, match="repeats"):
        timing.time_inference(fn, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        timing.time_inference(fn, warmup=-1)


def test_time_inference_synchronizes_on_cuda(monkeypatch):
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    timing.time_inference(lambda: None, warmup=1, repeats=3, device="cuda:0")
    assert len(synced) == 6  # before and after each timed call, none around warm-up
    synced.clear()
    timing.time_inference(lambda: None, warmup=1, repeats=3, device="cpu")
    assert synced == []


def test_time_generator_and_model_cost():
    from spsagan.models.rrdb import RRDBNet

    torch.manual_seed(0)
    model = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    out = timing.time_generator(model, torch.rand(1, 3, 6, 6), warmup=1, repeats=2)
    assert out["size"] == "1x3x6x6" and out["dtype"] == "float32" and out["median_s"] > 0
    cost = timing.model_cost(model, (1, 3, 6, 6))
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    # MACs of the convolutions written out: each conv costs Cout * Cin * k * k per output pixel.
    lr_px, hr2_px, hr_px = 36, 144, 576
    dense_in = [8, 12, 16, 20, 24]
    dense_out = [4, 4, 4, 4, 8]
    rdb = sum(i * o * 9 for i, o in zip(dense_in, dense_out)) * lr_px
    expected = (
        3 * 8 * 9 * lr_px
        + 3 * rdb
        + 8 * 8 * 9 * lr_px  # conv_first, 3 RDBs, conv_body
        + 8 * 8 * 9 * hr2_px
        + 8 * 8 * 9 * hr_px
        + 8 * 8 * 9 * hr_px
        + 8 * 3 * 9 * hr_px
    )
    assert cost["flops"] == expected


# --------------------------------------------------------------------------------------------------
# Published numbers

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


@pytest.mark.parametrize("dataset, psnr, ssim", [("Set5", 28.429, 0.8111), ("Set14", 25.994, 0.7029)])
def test_bicubic_reproduces_the_protocol_numbers(tmp_path, dataset, psnr, ssim, no_pyiqa):
    """Bicubic x4 of the MATLAB LR images scores SPEC section 4's numbers (Set14 includes gray `bridge`)."""
    if not (BENCHMARKS / dataset).is_dir():
        pytest.skip("shared/benchmarks not available")
    from spsagan.image import modcrop, read_image

    hr_dir = tmp_path / "HR"
    hr_dir.mkdir()
    sr = {}
    for path in sorted((BENCHMARKS / dataset / "HR").glob("*.png")):
        Image.fromarray(modcrop(read_image(path), 4)).save(hr_dir / path.name)
        sr[path.stem] = evaluation.bicubic_sr(read_image(BENCHMARKS / dataset / "LR_bicubic_x4" / f"{path.stem}x4.png"))
    means = evaluation.summarise(evaluation.evaluate_pairs(sr, hr_dir, niqe=False))
    assert means["num_images"] == {"Set5": 5, "Set14": 14}[dataset]
    assert means["psnr"] == pytest.approx(psnr, abs=5e-4)
    assert means["ssim"] == pytest.approx(ssim, abs=5e-5)


@pytest.mark.slow  # compiles a tiny generator's forward: tens of seconds on a 2-core CPU
@pytest.mark.skipif(
    compiler_missing(torch.device("cpu")) is not None, reason="torch.compile on CPU needs a C++ compiler"
)
def test_compiled_inference_equals_eager_within_float_rounding():
    """evaluate.compile: the compiled generator super-resolves like the eager one (one grey level at most)."""
    from spsagan.models.rrdb import RRDBNet
    from spsagan.runtime import compiled

    torch.manual_seed(0)
    model = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).eval()
    lq = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    eager = evaluation.sr_with_model(model, lq)
    fast = evaluation.sr_with_model(compiled(model, torch.device("cpu"), True), lq)
    assert np.abs(eager.astype(int) - fast.astype(int)).max() <= 1  # float reordering may flip a rounding


def test_compared_metrics_are_set_means_of_psnr_and_the_perceptual_score():
    from spsagan.evaluation import compared_metrics

    def means(psnr, niqe, pi=None):
        return {"num_images": 5, "psnr": psnr, "ssim": 0.8, "niqe": niqe, "ma": None, "pi": pi, "pi_reason": ""}

    summary = {
        "methods": {
            "bicubic": {"Set5": means(28.0, 7.0, 6.5), "Set14": means(26.0, 7.5, 6.0)},  # PI on every set
            "spsagan": {"Set5": means(29.0, 4.0, 3.0), "Set14": means(27.5, 4.5, None)},  # PI missing on one
            "HR": {"Set5": means(None, 3.0, 2.5), "Set14": means(None, 3.5, 2.0)},  # PSNR infinite: left out
            "published": {"Set5": means(30.0, 5.0)},
        }
    }
    got = compared_metrics(summary, ["bicubic", "spsagan", "HR", "esrgan"])
    assert got == {
        "bicubic": {"psnr": 27.0, "pi": 6.25},  # every set weighs the same
        "spsagan": {"psnr": 28.25, "niqe": 4.25},
        "HR": {"pi": 2.25},
    }
    assert "published" not in got and "esrgan" not in got  # only the names asked for, when evaluated
