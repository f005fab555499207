"""evaluate's timing records: per-repeat times, the statistic named, and the scope with and without
the segmentation prior for SPSA models."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spsagan.image import write_image
from spsagan.models.presets import build_generator, preset_arch
from spsagan.segmentation.run import prior_from_lq
from spsagan.segmentation.standin import StandInSegmenter
from spsagan.segmentation.storage import save_seg

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _evaluate_step():
    spec = importlib.util.spec_from_file_location("evaluate_step", ROOT / "steps" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def timing_set(tmp_path):
    rng = np.random.default_rng(0)
    lr, seg = tmp_path / "LR_x4", tmp_path / "seg"
    segmenter = StandInSegmenter(seed=0)
    for name in ("a", "b"):
        image = rng.integers(0, 256, (8, 10, 3)).astype(np.uint8)
        write_image(lr / f"{name}.png", image)
        meta = {"segmenter": segmenter.label, "segmenter_label": segmenter.label, "semantic": False}
        save_seg(seg / f"{name}.npz", prior_from_lq(segmenter, image), meta)
    return lr, seg, segmenter.label


def test_times_per_repeat_and_the_prior_outside_then_inside(timing_set):
    step = _evaluate_step()
    lr, seg, label = timing_set
    torch.manual_seed(0)
    spsa = build_generator(preset_arch("+spsa", num_feat=8, num_block=1, num_grow_ch=4)).eval()
    plain = build_generator(preset_arch("esrgan", num_feat=8, num_block=1, num_grow_ch=4)).eval()
    methods = {
        "+spsa": step.Method(spsa, True, {"segmenter": label}),
        "esrgan": step.Method(plain, False, {}),
    }
    cfg = SimpleNamespace(timing_images="all", timing_warmup=0, timing_repeats=3)
    costs = step.inference_costs(methods, lr, seg, cfg, torch.device("cpu"))
    for name in methods:
        c = costs[name]
        assert len(c["times_s"]) == 2 and all(len(t) == 3 for t in c["times_s"])  # images x repeats
        assert c["median_s"] == pytest.approx(np.mean([np.median(t) for t in c["times_s"]]))
        assert c["statistic"] == step.TIMING_STATISTIC and "median" in c["statistic"]
    assert "prior is precomputed (make_seg_maps) and not timed" in costs["+spsa"]["timing_scope"]
    assert "with_prior_median_s" not in costs["esrgan"]
    with_prior = costs["+spsa"]
    assert len(with_prior["with_prior_times_s"]) == 2 and with_prior["with_prior_reason"] == ""
    assert with_prior["with_prior_median_s"] > 0


def test_a_segmenter_that_cannot_be_built_is_named_not_fatal(timing_set):
    step = _evaluate_step()
    lr, seg, _ = timing_set
    model = build_generator(preset_arch("+spsa", num_feat=8, num_block=1, num_grow_ch=4)).eval()
    methods = {"+spsa": step.Method(model, True, {"segmenter": "outdoor_scene_seg(sha256=0123456789abcdef)"})}
    cfg = SimpleNamespace(timing_images=1, timing_warmup=0, timing_repeats=2)
    c = step.inference_costs(methods, lr, seg, cfg, torch.device("cpu"))["+spsa"]
    assert c["with_prior_median_s"] is None and c["with_prior_reason"].startswith("segmenter outdoor_scene_seg")


def test_precision_label_names_tf32_on_cuda():
    step = _evaluate_step()
    assert step.precision_label(torch.device("cpu")) == "float32"
    cuda = torch.device("cuda")
    assert step.precision_label(cuda, conv_tf32=True, matmul_tf32=False) == "float32, TF32 convolutions"
    assert step.precision_label(cuda, conv_tf32=True, matmul_tf32=True) == "float32, TF32 convolutions and matmuls"
    assert step.precision_label(cuda, conv_tf32=False, matmul_tf32=False) == "float32"
