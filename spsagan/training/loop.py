"""The training loop both training stages share: iterations, logging, validation, checkpoints.

`fit` calls a stage's `train_step(batch, step)` once per iteration, averages its losses over
`log_every` iterations into the run log (mirrored to dvclive), validates PSNR every `val_every`,
checkpoints every `ckpt_every` and when SIGTERM/SIGUSR1 arrives (`checkpoint.StopSignals`), and at
the end writes the model file. A rerun with the same resume key continues from the newest
checkpoint (`checkpoint.ResumeDir`), with the same batches and the same metric history.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from spsagan.image import imresize, to_tensor, to_uint8
from spsagan.metrics.psnr_ssim import psnr
from spsagan.training import checkpoint as ckpt
from spsagan.training.data import TrainData, ValImage, batch_to_device, batches
from spsagan.training.device import describe, precision_label
from spsagan.training.schedule import due

VAL_CROP_BORDER = 4  # the SR convention for x4 (SPEC section 4); Y channel

# Settings that change how a run executes, not what it computes: left out of the resume key.
RUNTIME_FIELDS = ("workers", "ckpt_every")


def resume_key(stage: str, cfg, run: dict, extra: dict) -> str:
    """Hash of everything that determines the trained weights: the stage's config (without the
    runtime fields), the run's own settings (preset, mask) and `extra` (data listing, init model)."""
    hashed = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUNTIME_FIELDS}
    return ckpt.run_key(stage, {**hashed, **run}, extra)


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


@dataclasses.dataclass
class Run:
    """One training run: what it trains, where its state and outputs go, and how it executes.

    cfg: the stage's typed config (`spsagan.config`); method: the name reports show for the model
    (e.g. "rrsb_psnr", "spsagan"); record: extra facts written into the model file (its `info`).
    """

    stage: str
    cfg: object
    preset: str
    method: str
    out_model: Path
    resume: ckpt.ResumeDir
    live_dir: Path | None
    device: torch.device
    channels_last: bool
    with_seg: bool
    record: dict = dataclasses.field(default_factory=dict)
    progress: bool = True
    on_step: Callable[[int], None] | None = None


def fit(run: Run, data: TrainData, generator: torch.nn.Module, modules: dict, optimizers: dict,
        train_step: Callable) -> dict:
    """Run iterations [resumed step, cfg.iters) of `train_step(batch, step) -> (losses, lrs)`.

    batch: dict of float32 tensors on the device (`batch_to_device`); step: 0-based iteration.
    losses: {name: detached scalar tensor}, averaged over `log_every` iterations for the log;
    lrs: {name: float}. `modules`/`optimizers` are what a resume checkpoint saves and restores.
    `run.on_step(done)` is called after each iteration (tests use it to interrupt a run).
    Writes the final `generator` to `run.out_model`; returns a summary dict.
    """
    from tqdm import tqdm

    cfg, device, resume, stage, preset, with_seg = run.cfg, run.device, run.resume, run.stage, run.preset, run.with_seg
    iters = cfg.iters
    sampler = data.sampler(cfg.batch_size, cfg.seed)
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
    log = RunLog(run.live_dir, history["rows"], {"val/psnr_bicubic": bicubic} if bicubic is not None else None)
    acc = {k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in history["acc"].items()}
    acc_n = int(history["acc_n"])

    def save(done: int) -> Path:
        return resume.save({
            "step": done, "models": ckpt.module_states(modules), "optimizers": ckpt.optimizer_states(optimizers),
            "rng": ckpt.rng_state(), "sampler": sampler.state_dict(),
            "history": {"rows": log.rows, "acc": {k: float(v) for k, v in acc.items()}, "acc_n": acc_n}})

    stream = batches(data, sampler, cfg.crop_size, with_seg, start, iters, cfg.workers,
                     pin_memory=device.type == "cuda")
    t0 = time.perf_counter()
    bar = tqdm(total=iters, initial=start, desc=f"{stage}:{preset}", unit="it", mininterval=2.0,
               disable=not run.progress, dynamic_ncols=True)
    try:
        with ckpt.StopSignals() as stop:
            for step in range(start, iters):
                batch = batch_to_device(next(stream), device, run.channels_last)
                losses, lrs = train_step(batch, step)
                for name, value in losses.items():
                    acc[name] = acc.get(name, 0) + value.detach().double()
                acc_n += 1
                done = step + 1
                sampler.next_step = done
                metrics = {}
                if due(done, cfg.log_every, iters):
                    metrics.update({name: float(v) / acc_n for name, v in acc.items()})
                    metrics.update(lrs)
                    acc, acc_n = {}, 0
                    bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in metrics.items() if k.startswith("train/")},
                                    refresh=False)
                if data.val and due(done, cfg.val_every, iters):
                    metrics["val/psnr"] = validate(generator, data.val, device, with_seg)
                if metrics:
                    log.log(done, metrics)
                bar.update(1)
                if run.on_step is not None:
                    run.on_step(done)
                if done % cfg.ckpt_every == 0 or done == iters or stop.received:
                    path = save(done)
                    if stop.received and done < iters:
                        raise ckpt.Preempted(stop.received, done, path)
    finally:
        bar.close()
        stream.close()
    seconds = time.perf_counter() - t0
    ckpt.save_model(run.out_model, generator, preset, iters, dataclasses.asdict(cfg),
                    data.segmenter if with_seg else None, method=run.method,
                    info={**run.record, "precision": precision_label(device, cfg.mixed_precision),
                          "device": describe(device, cfg.mixed_precision)})
    log.close()
    ran = iters - start
    return {"stage": stage, "preset": preset, "step": iters, "resumed_from": start if state is not None else None,
            "iterations_run": ran, "seconds": round(seconds, 3),
            "it_per_s": round(ran / seconds, 3) if ran and seconds > 0 else None,
            "device": describe(device, cfg.mixed_precision), "checkpoint_dir": str(resume.path),
            "metrics": {**log.latest(), **({"val/psnr_bicubic": bicubic} if bicubic is not None else {})}}
