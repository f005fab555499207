"""Byte-stable model files and content-based resume keys (spsagan/models/modelfile.py).

Downstream stages hash model.pt, and the GAN's resume key covers its init model: the same weights
and settings must give the same bytes (whatever the file's name, the commit or the day), and
re-saving the same weights must not restart a GAN that starts from them.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import ddp_trainer as toy  # tests/ is on sys.path
import numpy as np
import pytest
import torch

from spsagan.image import imresize
from spsagan.models import modelfile
from spsagan.models.presets import build_generator, preset_arch
from spsagan.pipeline.params import load_config
from spsagan.training import SubImageSet, TrainData, gan, train_psnr

torch.set_num_threads(1)

PSNR = replace(
    load_config("pretrain_psnr", "demo"),
    num_feat=4,
    num_block=1,
    num_grow_ch=4,
    iters=4,
    batch_size=1,
    crop_size=32,
    val_every=2,
    ckpt_every=2,
    log_every=2,
    seeds=[3],
    deterministic=True,
)


class Captured(Exception):
    """Ends a run where the test has seen what it needs."""


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_generator(preset_arch("esrgan", 4, 1, 4, None))


def git_repo(path, message: str):
    """A git checkout at `path` with one commit (its own revision)."""
    path.mkdir(parents=True)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for argv in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", message]):
        subprocess.run(["git", *argv], cwd=path, env=env, check=True, capture_output=True)
    return path


def test_the_same_tensors_saved_under_two_names_give_the_same_bytes(tmp_path):
    model = tiny_model()
    for name in ("x1.pt", "x2.pt"):
        modelfile.save_model(tmp_path / name, model, "esrgan", 1, {"lr": 1e-3}, None)
    assert (tmp_path / "x1.pt").read_bytes() == (tmp_path / "x2.pt").read_bytes()
    note = json.loads((tmp_path / "x1.provenance.json").read_text())
    assert note["model"] == "x1.pt" and note["model_sha256"] == modelfile._sha256(tmp_path / "x1.pt")
    assert {"git_rev", "host", "written", "torch"} <= set(note)
    # Weights in another memory format (channels_last, as trained on a GPU) save the same bytes too.
    modelfile.save_model(
        tmp_path / "x3.pt", model.to(memory_format=torch.channels_last), "esrgan", 1, {"lr": 1e-3}, None
    )
    assert (tmp_path / "x3.pt").read_bytes() == (tmp_path / "x1.pt").read_bytes()
    _, ckpt = modelfile.load_generator(tmp_path / "x2.pt")
    assert "git_rev" not in ckpt and set(ckpt) == {
        "arch",
        "params_g",
        "preset",
        "method",
        "step",
        "segmenter",
        "params",
        "info",
    }


def test_the_same_training_at_two_commits_gives_the_same_model_bytes(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    data = TrainData([SubImageSet.from_arrays("toy", gts, [imresize(g, 0.25) for g in gts])], [1.0])
    revs = []
    for name, cfg in (("a", PSNR), ("b", replace(PSNR, ckpt_every=3))):  # a runtime key differs too
        root = git_repo(tmp_path / name, f"commit {name}")
        monkeypatch.chdir(root)  # git_revision reads the checkout it runs in
        train_psnr(cfg, "esrgan", data, root / "out" / "model.pt", root / "ckpt", None, device="cpu", progress=False)
        revs.append(json.loads((root / "out" / "model.provenance.json").read_text()))
    assert revs[0]["git_rev"] != revs[1]["git_rev"] and None not in (revs[0]["git_rev"], revs[1]["git_rev"])
    assert revs[0]["runtime_params"]["ckpt_every"] == 2 and revs[1]["runtime_params"]["ckpt_every"] == 3
    assert (tmp_path / "a" / "out" / "model.pt").read_bytes() == (tmp_path / "b" / "out" / "model.pt").read_bytes()
    _, ckpt = modelfile.load_generator(tmp_path / "a" / "out" / "model.pt")
    assert "ckpt_every" not in ckpt["params"] and ckpt["params"]["iters"] == PSNR.iters
    assert "device" not in ckpt["info"] and revs[0]["device"].startswith("cpu")


def test_the_weights_digest_follows_the_weights_not_the_file(tmp_path):
    model = tiny_model()
    modelfile.save_model(tmp_path / "ours.pt", model, "esrgan", 1, {}, None)
    old = {"arch": model.arch, "params_g": model.state_dict(), "preset": "esrgan", "step": 1, "git_rev": "f" * 40}
    torch.save(old, tmp_path / "older-format.pt")  # other bytes, other entries, the same weights
    assert (tmp_path / "ours.pt").read_bytes() != (tmp_path / "older-format.pt").read_bytes()
    digest = modelfile.weights_digest(tmp_path / "ours.pt")
    assert modelfile.weights_digest(tmp_path / "older-format.pt") == digest
    modelfile.save_model(tmp_path / "other.pt", tiny_model(seed=1), "esrgan", 1, {}, None)
    assert modelfile.weights_digest(tmp_path / "other.pt") != digest


def test_a_gan_from_a_resaved_init_model_keeps_its_resume_key(tmp_path, monkeypatch):
    # Train a tiny PSNR model, then re-save its weights as another commit would: other bytes.
    root = tmp_path / "psnr"
    toy.run("psnr", root, replace(toy.PSNR, iters=2, val_every=2))
    first = root / "psnr" / "model.pt"
    model, ckpt = modelfile.load_generator(first)
    again = tmp_path / "again" / "model.pt"
    again.parent.mkdir()
    torch.save({**ckpt, "git_rev": "0" * 40}, again)
    assert first.read_bytes() != again.read_bytes()

    keys = []

    def capture(run, *args, **kw):  # the resume folder the GAN would use; nothing trains
        keys.append(run.resume.path.name)
        raise Captured

    monkeypatch.setattr(gan, "fit", capture)
    for init in (first, again):
        with pytest.raises(Captured):
            toy.run("gan", tmp_path / "gan", init=init)
    assert len(keys) == 2 and keys[0] == keys[1]
