"""Interrupted training resumes to bitwise the same result as an uninterrupted run (CPU, deterministic).

Tiny networks (num_feat 8, one block), 32x32 PSNR crops and 96x96 GAN crops (the discriminator's
smallest input), a random VGG cut at conv1_2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from dataclasses import replace

import numpy as np
import pytest
import torch

from spsagan.config import runtime_keys
from spsagan.errors import ConfigError, Preempted
from spsagan.image import imresize
from spsagan.models.modelfile import load_generator, provenance_path
from spsagan.pipeline.params import load_config
from spsagan.training import SubImageSet, TrainData, ValImage, train_gan, train_psnr
from spsagan.training.gan import init_generator

torch.set_num_threads(1)

# The demo profile's configs, shrunk: the same typed configs the pipeline passes.
PSNR = replace(
    load_config("pretrain_psnr", "demo"),
    num_feat=8,
    num_block=1,
    num_grow_ch=4,
    iters=12,
    batch_size=2,
    crop_size=32,
    lr=1.0e-3,
    lr_step=6,
    lr_gamma=0.5,
    val_every=6,
    ckpt_every=4,
    log_every=2,
    seeds=[5],
    deterministic=True,
)
GAN = replace(
    load_config("train_gan", "demo"),
    iters=6,
    batch_size=2,
    crop_size=96,
    lr_g=1.0e-4,
    lr_step=3,
    perceptual_layer="conv1_2",
    perceptual_weights="",
    d_num_feat=4,
    val_every=3,
    ckpt_every=2,
    log_every=1,
    seeds=[6],
    deterministic=True,
)


def textured(rng, size):
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack(
        [np.sin(x / (5 + c) + rng.random() * 6) * 60 + np.cos(y / (4 + c)) * 50 + 128 for c in range(3)], -1
    )
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def soft_map(rng, size):
    logits = rng.normal(size=(8, size, size))
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    gts = [textured(rng, 128) for _ in range(3)]
    train = SubImageSet.from_arrays("toy", gts, [imresize(g, 0.25) for g in gts], [soft_map(rng, 128) for _ in gts])
    val_gt = textured(rng, 48)
    val = [ValImage("val0", imresize(val_gt, 0.25), val_gt, soft_map(rng, 48))]
    return TrainData([train], [1.0], val, segmenter="test-random")


def run_psnr(data, root, cfg=PSNR, preset="esrgan", **kw):
    return train_psnr(
        cfg, preset, data, root / "psnr" / "model.pt", root / "ckpt", root / "live", device="cpu", progress=False, **kw
    )


def weights(path):
    return load_generator(path)[0].state_dict()


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def live_files(live):
    return {p.relative_to(live).as_posix(): p.read_text() for p in sorted(live.rglob("*")) if p.is_file()}


def send_sigterm_at(step):
    def hook(done):
        if done == step:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    summary = run_psnr(data, root)
    return root, summary


def test_uninterrupted_run_writes_the_contract_checkpoint(reference):
    root, summary = reference
    model, ckpt = load_generator(root / "psnr" / "model.pt")
    assert set(ckpt) == {"arch", "params_g", "preset", "method", "step", "segmenter", "params", "info"}
    assert ckpt["preset"] == "esrgan" and ckpt["step"] == 12 and ckpt["segmenter"] is None
    assert ckpt["method"] == "rrdb_psnr" and ckpt["info"]["precision"] == "float32"
    runtime = runtime_keys("pretrain_psnr")  # in the provenance sidecar, not the model file
    params = dataclasses.asdict(PSNR)
    assert ckpt["arch"]["attention"] is None and ckpt["params"] == {k: v for k, v in params.items() if k not in runtime}
    note = json.loads(provenance_path(root / "psnr" / "model.pt").read_text())
    assert note["runtime_params"] == {k: params[k] for k in runtime} and note["device"].startswith("cpu")
    assert summary["resumed_from"] is None and summary["iterations_run"] == 12
    assert {"train/l1", "lr/g", "val/psnr", "val/psnr_bicubic"} <= set(summary["metrics"])
    assert summary["metrics"]["lr/g"] == 0.5e-3  # halved at the milestone
    rows = (root / "live" / "plots" / "metrics" / "train" / "l1.tsv").read_text().split()
    assert rows[:2] == ["step", "l1"] and rows[2::2] == ["2", "4", "6", "8", "10", "12"]


def test_sigterm_saves_then_rerun_resumes_to_identical_weights(data, reference, tmp_path):
    ref_root, _ = reference
    # any step must do; odd steps fall inside a log_every window, the case that needs the saved partial sums
    step = int(np.random.default_rng().choice([1, 3, 5, 7, 9, 11]))
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted) as info:
        run_psnr(data, tmp_path, on_step=send_sigterm_at(step))
    assert info.value.step == step and info.value.exit_code != 0
    assert signal.getsignal(signal.SIGTERM) is previous  # handler restored
    assert not (tmp_path / "psnr" / "model.pt").exists()  # no final output before the end
    summary = run_psnr(data, tmp_path)
    assert summary["resumed_from"] == step
    assert_same_weights(ref_root / "psnr" / "model.pt", tmp_path / "psnr" / "model.pt")
    assert live_files(tmp_path / "live") == live_files(ref_root / "live")  # plots rebuilt from the history


def test_crash_resumes_from_the_newest_valid_checkpoint(data, reference, tmp_path):
    ref_root, _ = reference

    def crash(done):
        if done == 10:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated"):
        run_psnr(data, tmp_path, on_step=crash)
    (ckpt_dir,) = (tmp_path / "ckpt").glob("pretrain_psnr-psnr/*/")  # the key folder, not the lock file
    files = sorted(p.name for p in ckpt_dir.iterdir())
    assert files == ["step_00000004.pt", "step_00000008.pt"]  # every 4, the last 2 kept
    newest = ckpt_dir / "step_00000008.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.warns(RuntimeWarning, match="step_00000008"):
        summary = run_psnr(data, tmp_path)
    assert summary["resumed_from"] == 4
    assert_same_weights(ref_root / "psnr" / "model.pt", tmp_path / "psnr" / "model.pt")


def test_checkpoints_of_another_cfg_are_not_used(data, reference, tmp_path):
    ref_root, _ = reference
    run_psnr(data, tmp_path)  # complete: its final checkpoint sits in ckpt/
    changed = run_psnr(data, tmp_path, cfg=replace(PSNR, lr=2.0e-3))
    assert changed["resumed_from"] is None and changed["iterations_run"] == 12
    w_ref, w_new = weights(ref_root / "psnr" / "model.pt"), weights(tmp_path / "psnr" / "model.pt")
    assert not all(torch.equal(w_ref[k], w_new[k]) for k in w_ref)
    # a runtime-only key (checkpoint period, workers) keeps the key: instant resume
    same = run_psnr(data, tmp_path, cfg=replace(PSNR, ckpt_every=3, workers=1))
    assert same["resumed_from"] == 12 and same["iterations_run"] == 0
    assert_same_weights(ref_root / "psnr" / "model.pt", tmp_path / "psnr" / "model.pt")


def test_bad_values_reaching_the_library_are_one_config_error(data, tmp_path):
    with pytest.raises(ConfigError, match="crop_size: 66 is not a multiple of 4"):
        replace(PSNR, crop_size=66)
    with pytest.raises(ConfigError, match=r"preset 'spsagan' is an RRSB: give its connection mask"):
        run_psnr(data, tmp_path, preset="spsagan")  # RRSB without a mask
    with pytest.raises(ConfigError, match=r"unknown generator preset 'srgan'.*allowed: esrgan, \+fa, \+spsa, spsagan"):
        run_psnr(data, tmp_path, preset="srgan")
    assert not (tmp_path / "psnr").exists()


def run_gan(data, root, init, **kw):
    return train_gan(
        GAN,
        "+spsa",
        init,
        data,
        root / "gan" / "model.pt",
        root / "ckpt",
        root / "live_gan",
        device="cpu",
        progress=False,
        **kw,
    )


def test_gan_resumes_to_identical_weights(data, reference, tmp_path):
    init = reference[0] / "psnr" / "model.pt"
    full = run_gan(data, tmp_path / "full", init)
    assert full["metrics"]["attention/gamma"] != 0  # the attention layer trained
    ckpt = load_generator(tmp_path / "full" / "gan" / "model.pt")[1]
    assert ckpt["preset"] == "+spsa" and ckpt["segmenter"] == "test-random"
    assert ckpt["info"]["perceptual_extractor"] == "vgg19-random-seed0" and ckpt["method"] == "+spsa"
    alpha = ckpt["params_g"]["attention.alpha"]
    assert ckpt["params_g"]["attention.alpha_initialised"] and alpha != 1.0  # data-dependent init ran

    step = 3
    with pytest.raises(Preempted):
        run_gan(data, tmp_path / "cut", init, on_step=send_sigterm_at(step))
    resumed = run_gan(data, tmp_path / "cut", init)
    assert resumed["resumed_from"] == step
    assert_same_weights(tmp_path / "full" / "gan" / "model.pt", tmp_path / "cut" / "gan" / "model.pt")
    # the discriminator and optimiser states continue exactly too (final resume checkpoints)
    (a,) = (tmp_path / "full" / "ckpt").glob("train_gan-gan/*/step_00000006.pt")
    (b,) = (tmp_path / "cut" / "ckpt").glob("train_gan-gan/*/step_00000006.pt")
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    for k, v in sa["models"]["d"].items():
        assert torch.equal(v, sb["models"]["d"][k]), k
    assert sa["history"] == sb["history"]
    for run in ("full", "cut"):  # the resumed run's plots too
        assert_gan_curves(tmp_path / run / "live_gan")


def tsv(path):
    """A dvclive plot file as {step: value}, the step column read as the iteration it was logged at."""
    head, *rows = (line.split("\t") for line in path.read_text().splitlines())
    assert head[0] == "step"
    return {int(step): float(value) for step, value in rows}


def assert_gan_curves(live):
    """Every series carries the real iteration as its step, and the rates are the optimisers' own."""
    plots = live / "plots" / "metrics"

    def rates(initial):  # logged every iteration (log_every 1), halved after lr_step
        return {s: initial * (1 if s <= GAN.lr_step else GAN.lr_gamma) for s in range(1, GAN.iters + 1)}

    for name, initial in (("g", GAN.lr_g), ("d", GAN.lr_d), ("attention", GAN.lr_attention)):
        assert tsv(plots / "lr" / f"{name}.tsv") == pytest.approx(rates(initial), rel=1e-12), name
    assert set(tsv(plots / "val" / "psnr.tsv")) == {GAN.val_every, 2 * GAN.val_every}
    assert set(tsv(plots / "train" / "total_g.tsv")) == set(range(1, GAN.iters + 1))
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] == GAN.iters and summary["lr"]["g"] == GAN.lr_g * GAN.lr_gamma > 0


def test_gan_init_checks_the_preset(reference):
    init = reference[0] / "psnr" / "model.pt"
    with pytest.raises(ConfigError, match="spsagan"):
        init_generator("spsagan", init)  # RRSB preset from an unpruned RRDB
    model = init_generator("+fa", init)
    pretrained = load_generator(init)[0].state_dict()
    for k, v in pretrained.items():
        assert torch.equal(model.state_dict()[k], v)


def test_step_schedule_matches_torch_multisteplr():
    """The stateless schedule (what a resumed run recomputes) equals torch's MultiStepLR stepped per iteration."""
    from spsagan.training.schedule import lr_factor

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[5, 12], gamma=0.5)
    for step in range(20):
        assert opt.param_groups[0]["lr"] == pytest.approx(2.0e-4 * lr_factor(step, [5, 12], 0.5), rel=1e-12)
        opt.step()
        sched.step()
