"""PSNR-oriented pretraining (L1 loss) of a preset's attention-free generator.

`train_psnr` trains the RRDB (or, with a pruning mask, the RRSB) with L1, Adam and a step schedule
(ESRGAN: lr 2e-4 halved every 200k of 1M iterations), validates PSNR on held-out images, logs to
dvclive and checkpoints for resumption, all through the shared loop (`spsagan.training.loop`).
Under torchrun it runs as one of several data-parallel processes (`spsagan.training.distributed`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from spsagan.config import PretrainPSNRConfig
from spsagan.models.presets import build_generator, method_name, preset_arch
from spsagan.runtime import (
    autocast,
    check_compile,
    compiled,
    determinism,
    resolve_device,
    seed_everything,
    tf32,
    to_device,
    use_channels_last,
)
from spsagan.training import checkpoint as ckpt
from spsagan.training.data import TrainData
from spsagan.training.distributed import process_group, rank_device, world_from_env, wrap
from spsagan.training.loop import Run, default_instance, fit, resume_key
from spsagan.training.schedule import set_lr

STAGE = "pretrain_psnr"


def train_psnr(
    cfg: PretrainPSNRConfig,
    preset: str,
    data: TrainData,
    out_model: str | Path,
    ckpt_root: str | Path,
    live_dir: str | Path | None,
    keep=None,
    device="auto",
    instance: str | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """L1 pretraining of `preset`'s generator without its attention layer; writes `out_model`.

    cfg: the stage's typed config (params.yaml `pretrain_psnr`). preset: a key of
    `spsagan.models.presets.PRESETS`; keep: the RRSB connection mask (`spsagan.pruning.load_mask`),
    required exactly for pruned presets. data: training sets, mix ratios and held-out images (no
    segmentation maps are read). ckpt_root: side folder for resume checkpoints
    (`<ckpt_root>/pretrain_psnr-<instance>/<key>/`). live_dir: dvclive folder, or None.
    device: "auto", "cpu", "cuda", ... (`spsagan.runtime.resolve_device`); with several processes,
    each takes cuda:LOCAL_RANK on CUDA.
    Raises `errors.Preempted` after saving when SIGTERM/SIGUSR1/SIGINT/SIGHUP arrives; a rerun resumes.
    Returns a summary: method, step, seconds, it/s, parameters, device, latest metrics (train/l1, val/psnr, ...).
    """
    world = world_from_env()
    cfg.check_world(world.size, world.torchrun)  # before anything is read or written
    arch = {**preset_arch(preset, cfg.num_feat, cfg.num_block, cfg.num_grow_ch, keep), "attention": None}
    device = rank_device(world, resolve_device(device))
    check_compile(device, cfg.compile, STAGE)
    out_model = Path(out_model)
    key = resume_key(STAGE, cfg, {"preset": preset, "keep": keep}, {"data": data.fingerprint(with_seg=False)})
    channels_last = use_channels_last(device, cfg.channels_last)

    with process_group(world, device) as world, determinism(cfg.deterministic), tf32(cfg.tf32):
        run = Run(
            stage=STAGE,
            cfg=cfg,
            preset=preset,
            method=method_name(STAGE, arch, preset),
            out_model=out_model,
            resume=ckpt.ResumeDir(ckpt_root, STAGE, instance or default_instance(out_model), key),
            live_dir=live_dir,
            device=device,
            channels_last=channels_last,
            with_seg=False,
            progress=progress,
            on_step=on_step,
            world=world,
        )
        seed_everything(cfg.seed)
        model = to_device(build_generator(arch), device, channels_last).train()
        net = compiled(wrap(model, world, device), device, cfg.compile)  # what the step calls
        opt = torch.optim.Adam(
            [{"params": list(model.parameters()), "initial_lr": cfg.lr}],
            lr=cfg.lr,
            betas=tuple(cfg.adam_betas),
            fused=device.type == "cuda",
        )
        milestones = cfg.lr_milestones()

        def train_step(batch, step):
            lr_now = set_lr(opt, step, milestones, cfg.lr_gamma)
            with autocast(device, cfg.mixed_precision):
                sr = net(batch["lq"])
            loss = F.l1_loss(sr.float(), batch["gt"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"train/l1": loss.detach()}, {"lr/g": lr_now}

        return fit(run, data, model, {"g": model}, {"g": opt}, train_step)
