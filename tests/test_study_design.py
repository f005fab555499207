"""spsagan-study create: a reproducible blind design from a finished run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from study_fixtures import fake_run, make_study, spec

from spsagan.errors import ConfigError
from spsagan.image import read_image
from spsagan.study.design import create_study, resolve_methods, texture_patch


def test_design_follows_the_paper_layout(tmp_path):
    study, design = make_study(tmp_path)
    # methods are named by their SR folders from here on: SPSAGAN is our `spsagan`
    assert design["task1_methods"] == ["SRResNet", "SAN", "spsagan", "HR"] and design["target"] == "spsagan"
    assert design["pair_methods"] == ["SFTGAN", "ESRGAN", "NatSR"]
    assert len(design["slots"]) == 3
    for slot in design["slots"]:
        assert len(slot) == 3 * (1 + 3)  # 2 category + 1 out-of-category image; 1 ranking + 3 pairs each
        groups = {(t["group"], t["image"], t["dataset"]) for t in slot}
        assert sum(g == "ost" for g, _, _ in groups) == 2 and sum(g == "other" for g, _, _ in groups) == 1
        for t in slot:
            methods = [o["method"] for o in t["options"]]
            if t["task"] == 1:
                assert sorted(methods) == sorted(design["task1_methods"])
            else:
                assert "spsagan" in methods and len(methods) == 2
    # the method order is randomised per trial and recorded
    orders = {tuple(o["method"] for o in t["options"]) for s in design["slots"] for t in s if t["task"] == 1}
    assert len(orders) > 1
    # every image the design names is in the study folder, under an id that does not name its method
    files = {p.stem for p in (study / "images").iterdir()}
    assert files == set(design["images"])
    for key in files:
        assert not any(m.lower() in key.lower() for m in ("san", "hr", "esrgan", "spsagan", "natsr", "sftgan"))


def test_same_seed_same_study_other_seed_other_study(tmp_path):
    fake_run(tmp_path)
    a = create_study(tmp_path / "results/evaluate/sr", tmp_path / "results/make_lr", tmp_path / "a", spec())
    b = create_study(tmp_path / "results/evaluate/sr", tmp_path / "results/make_lr", tmp_path / "b", spec())
    c = create_study(tmp_path / "results/evaluate/sr", tmp_path / "results/make_lr", tmp_path / "c", spec(seed=1))
    assert (tmp_path / "a/design.json").read_bytes() == (tmp_path / "b/design.json").read_bytes()
    assert a == b and a["slots"] != c["slots"]
    for key in a["images"]:
        assert (tmp_path / "a/images" / f"{key}.png").read_bytes() == (
            tmp_path / "b/images" / f"{key}.png"
        ).read_bytes()


def test_task2_patches_are_the_textured_crop_enlarged(tmp_path):
    study, design = make_study(tmp_path)
    crops = [(k, v) for k, v in design["images"].items() if v["crop"] is not None]
    assert crops
    for key, info in crops:
        top, left, side = info["crop"]
        assert side == 32 and top < 32 and left < 48  # inside the noisy top-left quarter of the fixture
        img = read_image(study / "images" / f"{key}.png")
        assert img.shape[:2] == (64, 64)  # 32 px enlarged twice
        src = read_image(tmp_path / "results/evaluate/sr" / info["folder"] / info["dataset"] / f"{info['image']}.png")
        assert np.array_equal(img[::2, ::2], src[top : top + side, left : left + side])


def test_texture_patch_breaks_ties_with_the_seed():
    flat = np.full((64, 64), 128, np.uint8)
    picks = {texture_patch(flat, 16, np.random.default_rng(s))[:2] for s in range(20)}
    assert len(picks) > 1
    assert texture_patch(flat, 16, np.random.default_rng(3)) == texture_patch(flat, 16, np.random.default_rng(3))
    edge = flat.copy()
    edge[40:, 40:] = np.random.default_rng(0).integers(0, 255, (24, 24))
    top, left, side = texture_patch(edge, 16, np.random.default_rng(0))
    assert (top, left, side) == (44, 44, 16)
    assert texture_patch(flat, 999, np.random.default_rng(0)) == (0, 0, 64)  # clipped to the image


def test_resolve_methods_by_folder_or_report_name():
    found, missing = resolve_methods(["SPSAGAN", "ESRGAN", "SAN", "HR", "+FA"], ["ESRGAN", "esrgan", "spsagan", "+fa"])
    assert found == {"SPSAGAN": "spsagan", "ESRGAN": "ESRGAN", "HR": "HR", "+FA": "+fa"} and missing == ["SAN"]
    # the paper's ESRGAN is the published weights, never our retraining of it
    assert resolve_methods(["ESRGAN"], ["esrgan"]) == ({}, ["ESRGAN"])
    assert resolve_methods(["ESRGAN (retrained)"], ["esrgan"]) == ({"ESRGAN (retrained)": "esrgan"}, [])


def test_missing_methods_and_sets_are_named(tmp_path):
    fake_run(tmp_path)
    sr, hr = tmp_path / "results/evaluate/sr", tmp_path / "results/make_lr"
    with pytest.raises(ConfigError) as err:
        create_study(sr, hr, tmp_path / "s", spec(rank_methods=["EDSR", "SPSAGAN"], other_sets=["Set5"]))
    message = str(err.value)
    assert "EDSR" in message and "Set5" in message and "--skip-missing" in message and "it has:" in message
    assert not (tmp_path / "s").exists()
    design = create_study(
        sr, hr, tmp_path / "s", spec(rank_methods=["EDSR", "SPSAGAN"], other_sets=["Set5"], skip_missing=True)
    )
    assert design["missing"] == {"methods": ["EDSR"], "sets": ["Set5"]}
    assert design["task1_methods"] == ["spsagan", "HR"] and design["pool_sizes"] == {"ost": 4, "other": 0}
    with pytest.raises(ConfigError, match="--target"):
        create_study(sr, hr, tmp_path / "t", spec(target="NoSuch", skip_missing=True))
    with pytest.raises(ConfigError, match="evaluate"):
        create_study(tmp_path / "nothing", hr, tmp_path / "u", spec())


def test_design_json_is_the_record(tmp_path):
    study, design = make_study(tmp_path)
    saved = json.loads((study / "design.json").read_text())
    assert saved["spec"]["seed"] == 0 and saved["spec"]["category_sets"] == ["OSTx"]
    assert saved["slots"] == design["slots"]
