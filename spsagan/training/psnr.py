"""PSNR-oriented pretraining (L1 loss) and the training loop it shares with the GAN stage.

`train_psnr` trains the attention-free generator of a preset (RRDB, or RRSB with a pruning mask)
with L1, Adam and a step schedule (ESRGAN: lr 2e-4 halved every 200k of 1M iterations), validates
PSNR on held-out images, logs to dvclive, and checkpoints for resumption (see `checkpoint`).

`fit` is the loop itself: one call per iteration of a stage-specific `train_step`, then logging,
validation, periodic and signal-triggered checkpoints, and finally the model file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from spsagan.image import imresize, to_tensor, to_uint8
from spsagan.metrics import psnr
from spsagan.models.presets import PRESETS, build_generator, preset_arch
from spsagan.training import checkpoint as ckpt
from spsagan.training.data import TrainData, ValImage, batch_to_device, batches
from spsagan.training.device import (autocast, describe, determinism, resolve_device, seed_everything,
                                     to_device, use_channels_last)
from spsagan.training.schedule import REQUIRED, due, resolve_cfg, set_lr

STAGE = "pretrain_psnr"
VAL_CROP_BORDER = 4  # the SR convention for x4 (SPEC section 4); Y channel

# Keys of every stage that change how a run executes, not what it computes: left out of the resume key.
RUNTIME_KEYS = ("workers", "ckpt_every", "progress")

# cfg keys of `train_psnr` with their defaults (REQUIRED: no default).
PSNR_CFG = {
    "preset": REQUIRED,        # generator variant (spsagan.models.presets.PRESETS); pretraining drops its attention
    "num_feat": REQUIRED,      # trunk channels (64)
    "num_block": REQUIRED,     # RRDB/RRSB blocks (23)
    "num_grow_ch": REQUIRED,   # dense growth channels (32)
    "keep": None,              # RRSB mask: None, the mask list, or a JSON file path; required iff the preset is pruned
    "iters": REQUIRED,         # iterations (1M in the paper profile)
    "batch_size": REQUIRED,    # 16
    "crop_size": REQUIRED,     # HR crop side, a multiple of 4 (96; LR 24)
    "lr": REQUIRED,            # Adam learning rate (2.0e-4)
    "lr_milestones": REQUIRED,  # iterations at which lr is multiplied by lr_gamma ([200000, 400000, 600000, 800000])
    "lr_gamma": 0.5,
    "adam_betas": [0.9, 0.999],
    "val_every": REQUIRED,     # iterations between validations on the held-out images
    "ckpt_every": REQUIRED,    # iterations between resume checkpoints (also saved at the end and on SIGTERM/SIGUSR1)
    "log_every": 25,           # iterations between logged training-loss means (dvclive rows)
    "seed": REQUIRED,          # initialisation and sample stream
    "deterministic": False,    # deterministic algorithms (bitwise reproducible; slower on GPU)
    "mixed_precision": True,   # bf16 autocast on CUDA (ignored on CPU)
    "channels_last": "auto",   # NHWC memory format: "auto" = on CUDA only, or true/false
    "workers": 0,              # batch-building worker processes (0: in the training process)
    "progress": True,          # tqdm progress bar on stderr
}


def load_keep(keep, where: str):
    """A pruning mask from cfg: None, a mask list, or a path to a JSON file (a list, or {"keep": list})."""
    if keep is None or isinstance(keep, list):
        return keep
    if isinstance(keep, (str, os.PathLike)):
        path = Path(keep)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: keep mask file {path} not found; run the prune stage first")
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{where}: {path} is not valid JSON ({err})") from err
        if isinstance(obj, dict):
            if "keep" not in obj:
                raise ValueError(f"{where}: {path} holds a JSON object without a 'keep' entry")
            obj = obj["keep"]
        return obj
    raise TypeError(f"{where}: keep must be null, a mask list or a JSON file path, got {type(keep).__name__}")


def default_instance(out_model: Path) -> str:
    """Instance label for the resume folder: the output's folder for `.../<instance>/model.pt`."""
    out_model = Path(out_model)
    return out_model.parent.name if out_model.stem == "model" else out_model.stem


# --------------------------------------------------------------------------------------------------
# Validation and logging


@torch.no_grad()
def validate(model: torch.nn.Module, images: list[ValImage], device: torch.device, with_seg: bool) -> float:
    """Mean PSNR (dB, Y channel, 4-pixel border crop) of the model's outputs on held-out images.

    Runs in float32, one image at a time; outputs are clipped and rounded to uint8 first.
    """
    was_training = model.training
    model.eval()
    values = []
    for v in images:
        lq = to_tensor(v.lq)[None].to(device)
        seg = None
        if with_seg:
            if v.seg is None:
                raise ValueError(f"held-out image {v.name} has no segmentation map, which this model needs")
            seg = torch.from_numpy(np.asarray(v.seg, dtype=np.float32))[None].to(device)
        sr = model(lq, seg)
        values.append(psnr(to_uint8(sr[0]), v.gt, VAL_CROP_BORDER, test_y_channel=True))
    model.train(was_training)
    return float(np.mean(values))


def bicubic_psnr(images: list[ValImage]) -> float:
    """Mean PSNR of MATLAB-bicubic x4 upscaling on the held-out images (the floor a model must beat)."""
    return float(np.mean([psnr(imresize(v.lq, 4), v.gt, VAL_CROP_BORDER, test_y_channel=True) for v in images]))


class RunLog:
    """Metric history, kept inside resume checkpoints and mirrored to dvclive.

    On every (re)start the dvclive folder is rebuilt from the history, so its files equal those of
    an uninterrupted run even after Snakemake deleted the failed job's outputs.
    Rows: {"step": iterations done, "metrics": {name: float}}.
    """

    def __init__(self, live_dir: str | Path | None, rows: list[dict], summary: dict | None = None):
        self.rows = rows
        self.live = None
        if live_dir is not None:
            from dvclive import Live

            self.live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None)
            for name, value in (summary or {}).items():  # summary-only values, no plot
                self.live.log_metric(name, float(value), plot=False)
            for row in rows:
                self._write(row)

    def _write(self, row: dict) -> None:
        if self.live is not None:
            self.live.step = row["step"]
            for name, value in row["metrics"].items():
                self.live.log_metric(name, value)

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": int(step), "metrics": {k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        self._write(row)
        if self.live is not None:
            self.live.make_summary()

    def latest(self) -> dict:
        out = {}
        for row in self.rows:
            out.update(row["metrics"])
        return out

    def close(self) -> None:
        if self.live is not None:
            self.live.make_summary()
            self.live.end()


# --------------------------------------------------------------------------------------------------
# The loop


def fit(*, stage: str, cfg: dict, data: TrainData, device: torch.device, generator: torch.nn.Module,
        modules: dict, optimizers: dict, train_step: Callable, with_seg: bool, channels_last: bool,
        resume: ckpt.ResumeDir, live_dir, out_model: Path, preset: str,
        on_step: Callable[[int], None] | None = None) -> dict:
    """Run iterations [resumed step, cfg["iters"]) of `train_step(batch, step) -> (losses, lrs)`.

    batch: dict of float32 tensors on `device` (`batch_to_device`); step: 0-based iteration.
    losses: {name: detached scalar tensor}, averaged over `log_every` iterations for the log;
    lrs: {name: float}. `modules`/`optimizers` are what a resume checkpoint saves and restores.
    `on_step(done)` is called after each iteration (tests use it to interrupt a run).
    Writes the final `generator` to `out_model`; returns a summary dict.
    """
    from tqdm import tqdm

    iters = cfg["iters"]
    sampler = data.sampler(cfg["batch_size"], cfg["seed"])
    history = {"rows": [], "acc": {}, "acc_n": 0}
    start = 0
    state = resume.load_latest()
    if state is not None:
        ckpt.load_module_states(modules, state["models"])
        ckpt.load_optimizer_states(optimizers, state["optimizers"])
        ckpt.set_rng_state(state["rng"])
        sampler.load_state_dict(state["sampler"])
        history = state["history"]
        start = int(state["step"])
    if start > iters:
        raise RuntimeError(f"{resume.path}: checkpoint at step {start} is past iters={iters}; delete the folder")
    bicubic = bicubic_psnr(data.val) if data.val else None
    log = RunLog(live_dir, history["rows"], {"val/psnr_bicubic": bicubic} if bicubic is not None else None)
    acc = {k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in history["acc"].items()}
    acc_n = int(history["acc_n"])

    def save(done: int) -> Path:
        return resume.save({
            "step": done, "models": ckpt.module_states(modules), "optimizers": ckpt.optimizer_states(optimizers),
            "rng": ckpt.rng_state(), "sampler": sampler.state_dict(),
            "history": {"rows": log.rows, "acc": {k: float(v) for k, v in acc.items()}, "acc_n": acc_n}})

    stream = batches(data, sampler, cfg["crop_size"], with_seg, start, iters, cfg["workers"],
                     pin_memory=device.type == "cuda")
    t0 = time.perf_counter()
    bar = tqdm(total=iters, initial=start, desc=f"{stage}:{preset}", unit="it", mininterval=2.0,
               disable=not cfg["progress"], dynamic_ncols=True)
    try:
        with ckpt.StopSignals() as stop:
            for step in range(start, iters):
                batch = batch_to_device(next(stream), device, channels_last)
                losses, lrs = train_step(batch, step)
                for name, value in losses.items():
                    acc[name] = acc.get(name, 0) + value.detach().double()
                acc_n += 1
                done = step + 1
                sampler.next_step = done
                metrics = {}
                if due(done, cfg["log_every"], iters):
                    metrics.update({name: float(v) / acc_n for name, v in acc.items()})
                    metrics.update(lrs)
                    acc, acc_n = {}, 0
                    bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in metrics.items() if k.startswith("train/")},
                                    refresh=False)
                if data.val and due(done, cfg["val_every"], iters):
                    metrics["val/psnr"] = validate(generator, data.val, device, with_seg)
                if metrics:
                    log.log(done, metrics)
                bar.update(1)
                if on_step is not None:
                    on_step(done)
                if done % cfg["ckpt_every"] == 0 or done == iters or stop.received:
                    path = save(done)
                    if stop.received and done < iters:
                        raise ckpt.Preempted(stop.received, done, path)
    finally:
        bar.close()
        stream.close()
    seconds = time.perf_counter() - t0
    ckpt.save_model(out_model, generator, preset, iters, cfg,
                    data.segmenter if with_seg else None)
    log.close()
    ran = iters - start
    return {"stage": stage, "preset": preset, "step": iters, "resumed_from": start if state is not None else None,
            "iterations_run": ran, "seconds": round(seconds, 3),
            "it_per_s": round(ran / seconds, 3) if ran and seconds > 0 else None,
            "device": describe(device, cfg["mixed_precision"]), "checkpoint_dir": str(resume.path),
            "metrics": {**log.latest(), **({"val/psnr_bicubic": bicubic} if bicubic is not None else {})}}


def hashed_cfg(cfg: dict) -> dict:
    """The part of a resolved cfg that determines the trained weights (the resume key)."""
    return {k: v for k, v in cfg.items() if k not in RUNTIME_KEYS}


# --------------------------------------------------------------------------------------------------
# PSNR pretraining


def train_psnr(cfg: dict, data: TrainData, out_model: str | Path, ckpt_root: str | Path,
               live_dir: str | Path | None, device=None, instance: str | None = None,
               on_step: Callable[[int], None] | None = None) -> dict:
    """L1 pretraining of a preset's attention-free generator; writes `out_model` (contracts format).

    cfg: see PSNR_CFG (unknown or missing keys raise KeyError naming the key).
    data: training sets, mix ratios and held-out images (no segmentation maps are read).
    ckpt_root: side folder for resume checkpoints (`<ckpt_root>/pretrain_psnr-<instance>/<key>/`).
    live_dir: dvclive folder (metrics.json, plots/metrics/...), or None for no dvclive.
    device: None picks CUDA when available. instance: resume-folder label (default from out_model).
    Raises `checkpoint.Preempted` after saving when SIGTERM/SIGUSR1 arrives; a rerun resumes.
    Returns a summary: step, seconds, it/s, device, latest metrics (train/l1, val/psnr, ...).
    """
    cfg = resolve_cfg(cfg, PSNR_CFG, STAGE)
    cfg["keep"] = load_keep(cfg["keep"], f"{STAGE}.keep")
    preset = cfg["preset"]
    if preset not in PRESETS:
        raise KeyError(f"{STAGE}.preset: unknown preset {preset!r}; valid: {sorted(PRESETS)}")
    arch = preset_arch(preset, cfg["num_feat"], cfg["num_block"], cfg["num_grow_ch"], cfg["keep"])
    arch = {**arch, "attention": None}  # attention joins at the GAN stage
    device = resolve_device(device)
    out_model = Path(out_model)
    key = ckpt.run_key(STAGE, hashed_cfg(cfg), {"data": data.fingerprint(with_seg=False)})
    resume = ckpt.ResumeDir(ckpt_root, STAGE, instance or default_instance(out_model), key)
    channels_last = use_channels_last(device, cfg["channels_last"])

    with determinism(cfg["deterministic"]):
        seed_everything(cfg["seed"])
        model = to_device(build_generator(arch), device, channels_last).train()
        opt = torch.optim.Adam([{"params": list(model.parameters()), "initial_lr": cfg["lr"]}],
                               lr=cfg["lr"], betas=tuple(cfg["adam_betas"]), fused=device.type == "cuda")

        def train_step(batch, step):
            lr_now = set_lr(opt, step, cfg["lr_milestones"], cfg["lr_gamma"])
            with autocast(device, cfg["mixed_precision"]):
                sr = model(batch["lq"])
            loss = F.l1_loss(sr.float(), batch["gt"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"train/l1": loss.detach()}, {"lr/g": lr_now}

        return fit(stage=STAGE, cfg=cfg, data=data, device=device, generator=model, modules={"g": model},
                   optimizers={"g": opt}, train_step=train_step, with_seg=False, channels_last=channels_last,
                   resume=resume, live_dir=live_dir, out_model=out_model, preset=preset, on_step=on_step)
