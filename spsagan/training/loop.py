"""The training loop both training stages share: iterations, logging, validation, checkpoints.

`fit` calls a stage's `train_step(batch, step)` once per iteration, averages its losses over
`log_every` iterations into the run log (mirrored to dvclive), validates PSNR every `val_every`,
checkpoints every `ckpt_every` and when SIGTERM/SIGUSR1/SIGINT/SIGHUP arrives or the processes that
started it exit (`signals.StopSignals`), and at the end writes the model file. A rerun with the
same resume key continues from the newest checkpoint (`checkpoint.ResumeDir`), with the same
batches and the same metric history. A run holds its instance's checkpoint folder exclusively,
from start to end.

Data-parallel runs (torchrun, `spsagan.training.distributed`): every rank trains on its share of
each global batch; rank 0 alone holds the folder lock, writes checkpoints, logs and the model file,
and validates. All ranks resume from the checkpoint rank 0 picked, log loss means over all ranks,
and stop together: each iteration they agree whether any of them was asked to stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from spsagan import errors
from spsagan.config import runtime_keys
from spsagan.image import imresize, to_tensor, to_uint8
from spsagan.metrics.psnr_ssim import psnr
from spsagan.models import modelfile
from spsagan.runtime import describe, precision_label
from spsagan.training import checkpoint as ckpt
from spsagan.training import signals
from spsagan.training.data import TrainData, ValImage, batch_to_device, batches
from spsagan.training.distributed import World
from spsagan.training.schedule import due

VAL_CROP_BORDER = 4  # the SR convention for x4 (SPEC section 4); Y channel

# The runtime keys (spsagan.config) change how a run executes, not what it trains: they are left out
# of the resume key, so a run may resume on another world size. log_every stays in: it was hashed
# before it was declared a runtime key, and dropping it would orphan every unfinished run's checkpoints.
_HASHED_RUNTIME_KEYS = ("log_every",)


def resume_key(stage: str, cfg, run: dict, extra: dict) -> str:
    """Hash of everything that determines the trained weights: the stage's config (without its
    runtime keys), the run's own settings (preset, mask) and `extra` (data listing, init model)."""
    skip = set(runtime_keys(stage)) - set(_HASHED_RUNTIME_KEYS)
    hashed = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
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


class QuietStream:
    """A text stream that drops what it cannot write instead of raising.

    The progress bar writes through it. When the reader of the step's output is gone (a pipe whose
    reader SLURM killed with the rest of the job, a closed terminal), a failed write must stop
    neither the training nor the save of the checkpoint that ends it.
    """

    def __init__(self, stream):
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):  # EPIPE, EIO, or a closed file
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.broken = True

    def __getattr__(self, name):
        return getattr(self._stream, name)


# --------------------------------------------------------------------------------------------------
# The loop


@dataclasses.dataclass
class Run:
    """One training run: what it trains, where its state and outputs go, and how it executes.

    cfg: the stage's typed config (`spsagan.config`); method: the name reports show for the model
    (e.g. "rrsb_psnr", "spsagan"); record: extra facts written into the model file (its `info`);
    world: this process's place in a data-parallel run (default: a single process).
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
    world: World = dataclasses.field(default_factory=World)


def fit(
    run: Run, data: TrainData, generator: torch.nn.Module, modules: dict, optimizers: dict, train_step: Callable
) -> dict:
    """Run iterations [resumed step, cfg.iters) of `train_step(batch, step) -> (losses, lrs)`.

    batch: dict of float32 tensors on the device (`batch_to_device`); step: 0-based iteration.
    losses: {name: detached scalar tensor}, averaged over `log_every` iterations for the log;
    lrs: {name: float}. `modules`/`optimizers` are what a resume checkpoint saves and restores.
    `run.on_step(done)` is called after each iteration (tests use it to interrupt a run).
    Writes the final `generator` (the module itself, not a DDP or compiled wrapper) to
    `run.out_model`; returns a summary dict.
    Raises `errors.InUse` at once if another trainer holds this instance's folder,
    and `errors.Preempted` after saving on SIGTERM/SIGUSR1/SIGINT/SIGHUP or when its parent exits.
    """
    with contextlib.ExitStack() as held:
        in_use = None
        if run.world.is_main:
            try:  # held to the end: a second trainer stops here, before reading anything
                held.enter_context(run.resume.exclusive())
                remove_partial_writes(run)
            except errors.InUse as err:
                in_use = str(err)
        in_use = run.world.broadcast(in_use)  # every rank stops, with rank 0's message
        if in_use is not None:
            raise errors.InUse(in_use)
        return _fit(run, data, generator, modules, optimizers, train_step)


def remove_partial_writes(run: Run) -> list[Path]:
    """Delete what a kill in the middle of a write left: temporary checkpoint, model and sidecar files.

    Safe only under the instance's lock (a running trainer's write in progress looks the same).
    """
    out, note = Path(run.out_model), modelfile.provenance_path(run.out_model)
    found = run.resume.remove_partial_writes()
    for stem, suffix in ((out.stem, out.suffix), (note.stem, note.suffix)):
        for path in ckpt.partial_writes(out.parent, re.escape(stem), suffix):
            path.unlink(missing_ok=True)
            found.append(path)
    return found


class _History:
    """The metric rows and the loss sums of the current `log_every` window, as a checkpoint keeps them."""

    def __init__(self, saved: dict, device: torch.device):
        self.rows = saved["rows"]
        self.acc = {k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in saved["acc"].items()}
        self.acc_n = int(saved["acc_n"])

    def add(self, losses: dict) -> None:
        for name, value in losses.items():
            self.acc[name] = self.acc.get(name, 0) + value.detach().double()
        self.acc_n += 1

    def take_means(self) -> dict:
        means = {name: float(v) / self.acc_n for name, v in self.acc.items()}
        self.acc, self.acc_n = {}, 0
        return means

    def state(self) -> dict:
        return {"rows": self.rows, "acc": {k: float(v) for k, v in self.acc.items()}, "acc_n": self.acc_n}

    def synchronise(self, world: World) -> None:
        """Replace each rank's partial sums by their mean over the ranks (before a checkpoint): a resumed
        run starts every rank from the sums rank 0 saved, and the next logged means stay exact."""
        if world.distributed:
            means = world.mean({k: float(v) for k, v in self.acc.items()})
            self.acc = {k: torch.tensor(v, dtype=torch.float64, device=self.acc[k].device) for k, v in means.items()}


def _fit(
    run: Run, data: TrainData, generator: torch.nn.Module, modules: dict, optimizers: dict, train_step: Callable
) -> dict:
    """`fit` while holding the lock (rank 0; the other ranks wait for it)."""
    cfg, device, resume, world = run.cfg, run.device, run.resume, run.world
    sampler = data.sampler(cfg.batch_size, cfg.seed, world.rank, world.size)
    state = _load_state(resume, world)
    start = _restore(state, modules, optimizers, sampler) if state is not None else 0
    if start > cfg.iters:
        raise RuntimeError(f"{resume.path}: checkpoint at step {start} is past iters={cfg.iters}; delete the folder")
    history = _History(state["history"] if state is not None else {"rows": [], "acc": {}, "acc_n": 0}, device)
    bicubic = bicubic_psnr(data.val) if data.val and world.is_main else None
    log = RunLog(
        run.live_dir if world.is_main else None,
        history.rows,
        {"val/psnr_bicubic": bicubic} if bicubic is not None else None,
    )

    def save(done: int) -> Path:
        history.synchronise(world)
        if world.is_main:
            resume.save(
                {
                    "step": done,
                    "models": ckpt.module_states(modules),
                    "optimizers": ckpt.optimizer_states(optimizers),
                    "rng": ckpt.rng_state(),
                    "sampler": sampler.state_dict(),
                    "history": history.state(),
                }
            )
        world.barrier()  # no rank goes on (or exits) before the file is complete
        return resume.step_file(done)

    t0 = time.perf_counter()
    clock = _iterate(run, data, generator, sampler, train_step, history, log, save, start)
    seconds = time.perf_counter() - t0
    log.close()
    if world.is_main:
        if run.live_dir is not None:  # whole again, should anything have deleted live files meanwhile
            RunLog(run.live_dir, history.rows, {"val/psnr_bicubic": bicubic} if bicubic is not None else None).close()
        # The model file last: once it exists, every output of the run is complete.
        runtime = runtime_keys(run.stage)
        params = dataclasses.asdict(cfg)
        modelfile.save_model(
            run.out_model,
            generator,
            run.preset,
            cfg.iters,
            {k: v for k, v in params.items() if k not in runtime},  # byte-stable: no runtime keys
            data.segmenter if run.with_seg else None,
            method=run.method,
            info={**run.record, "precision": precision_label(device, cfg.mixed_precision, cfg.tf32)},
            provenance={"device": _device_label(run), "runtime_params": {k: params[k] for k in runtime if k in params}},
        )
    world.barrier()  # every rank returns once the model file exists
    ran = cfg.iters - start
    return {
        "stage": run.stage,
        "preset": run.preset,
        "method": run.method,
        "step": cfg.iters,
        "params": sum(p.numel() for p in generator.parameters()),
        "resumed_from": start if state is not None else None,
        "iterations_run": ran,
        "seconds": round(seconds, 3),
        "it_per_s": round(ran / seconds, 3) if ran and seconds > 0 else None,
        "device": _device_label(run),
        "checkpoint_dir": str(resume.path),
        "timing": clock.summary(ran),
        "metrics": {**log.latest(), **({"val/psnr_bicubic": bicubic} if bicubic is not None else {})},
    }


def _device_label(run: Run) -> str:
    """The device, with the number of processes of a data-parallel run: "cuda:0 (...) x 4 processes"."""
    label = describe(run.device, run.cfg.mixed_precision, run.cfg.tf32)
    return f"{label} x {run.world.size} processes" if run.world.distributed else label


def _load_state(resume: ckpt.ResumeDir, world: World) -> dict | None:
    """The newest complete checkpoint, or None; every rank loads the file rank 0 picked."""
    path, state = resume.latest() if world.is_main else (None, None)
    path = world.broadcast(None if path is None else str(path))
    if path is not None and state is None:
        state = resume.load_file(path)
    return state


def compared_metrics(summary: dict) -> dict:
    """What experiments compare for one training run (a `fit` summary): {method: {params}}, the
    generator's parameter count under the method's name as evaluate's metrics use it.

    Quality is compared on evaluate's test-set scores, which already cover every trained model.
    Speed (it/s) and the final validation PSNR stay in the run's summary and dvclive folder: it/s
    differs on every rerun, and with both per GAN method `dvc exp show --only-changed` after a GAN
    experiment no longer fits a screen (docs/pipeline.md, "What DVC compares").
    """
    return {summary["method"]: {"params": summary["params"]}}


def _restore(state: dict, modules: dict, optimizers: dict, sampler) -> int:
    """Load a resume checkpoint into the modules, optimisers, RNGs and sampler; returns its step."""
    ckpt.load_module_states(modules, state["models"])
    ckpt.load_optimizer_states(optimizers, state["optimizers"])
    ckpt.set_rng_state(state["rng"])
    sampler.load_state_dict(state["sampler"])
    return int(state["step"])


class _Clock:
    """Where a run's time goes: its first iteration (warm-up: allocations, cuDNN autotuning, worker
    start-up), the later iterations, validations and checkpoint writes.

    `lap(kind)` adds the time since the previous lap to `kind`. It is called only where the kind of
    work changes; on CUDA it synchronises first, so queued GPU work is charged to the iterations
    that queued it (a few synchronisations per `val_every`, none per ordinary iteration).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = {"first_iteration": 0.0, "iterations": 0.0, "validation": 0.0, "checkpoint": 0.0}
        self.counts = dict.fromkeys(self.seconds, 0)
        self.mark = time.perf_counter()

    def lap(self, kind: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[kind] += now - self.mark
        self.counts[kind] += 1
        self.mark = now

    def summary(self, ran: int) -> dict:
        """Seconds per kind; `s_per_iteration` excludes the first iteration (None when it ran alone)."""
        later = max(ran - 1, 0)
        out = {f"{kind}_s": round(s, 4) for kind, s in self.seconds.items()}
        out.update(
            validations=self.counts["validation"],
            checkpoints=self.counts["checkpoint"],
            later_iterations=later,
            s_per_iteration=round(self.seconds["iterations"] / later, 4) if later else None,
        )
        return out


def _iterate(
    run: Run,
    data: TrainData,
    generator: torch.nn.Module,
    sampler,
    train_step: Callable,
    history: _History,
    log: RunLog,
    save: Callable[[int], Path],
    start: int,
) -> _Clock:
    """Iterations start..iters-1 with logging, validation and checkpoints; a stop request saves and
    raises `Preempted`. Returns where the time went (`_Clock`)."""
    from tqdm import tqdm

    cfg, device, iters, world = run.cfg, run.device, run.cfg.iters, run.world
    clock = _Clock(device)
    stream = batches(
        data, sampler, cfg.crop_size, run.with_seg, start, iters, cfg.workers, pin_memory=device.type == "cuda"
    )
    bar = tqdm(
        total=iters,
        initial=start,
        desc=f"{run.stage}:{run.preset}",
        unit="it",
        mininterval=2.0,
        disable=not (run.progress and world.is_main),
        dynamic_ncols=True,
        file=QuietStream(sys.stderr),
    )
    try:
        with signals.StopSignals() as stop:
            for step in range(start, iters):
                batch = batch_to_device(next(stream), device, run.channels_last)
                losses, lrs = train_step(batch, step)
                history.add(losses)
                done = step + 1
                sampler.next_step = done
                metrics = {}
                if due(done, cfg.log_every, iters):
                    metrics.update(world.mean(history.take_means()))
                    metrics.update(lrs)
                    shown = {k.split("/")[-1]: f"{v:.4g}" for k, v in metrics.items() if k.startswith("train/")}
                    bar.set_postfix(shown, refresh=False)
                if step == start:
                    clock.lap("first_iteration")
                if data.val and due(done, cfg.val_every, iters):
                    clock.lap("iterations")
                    if world.is_main:  # the eager generator: no collective inside
                        metrics["val/psnr"] = validate(generator, data.val, device, run.with_seg)
                    world.barrier()
                    clock.lap("validation")
                if metrics:
                    log.log(done, metrics)
                bar.update(1)
                if run.on_step is not None:
                    run.on_step(done)
                why = _agree_to_stop(stop.check(), world)
                if done % cfg.ckpt_every == 0 or done == iters or why:
                    clock.lap("iterations")
                    path = save(done)
                    clock.lap("checkpoint")
                    if why and done < iters:
                        raise errors.Preempted(why, done, path)
        clock.lap("iterations")
    finally:
        bar.close()
        stream.close()
    return clock


def _agree_to_stop(why: str | None, world: World) -> str | None:
    """Whether to stop now, the same answer on every rank: a signal may reach the ranks of a
    data-parallel run in different iterations, and they must all save the same one."""
    if world.any(why is not None) and why is None:
        why = "another process of this data-parallel run was asked to stop"
    return why
