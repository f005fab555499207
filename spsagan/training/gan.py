"""GAN training (ESRGAN recipe, SPSAGAN section 4) of the Fig. 11 presets esrgan, +fa, +spsa, spsagan.

Generator loss: w_perceptual * L1(VGG19 conv5_4 features) + w_gan * RaGAN + w_pixel * L1
(paper: 1, 5e-3, 1e-2). The discriminator is VGG-style for the HR crop size (96 or 128) and is
trained with the relativistic average loss after every generator step (ESRGAN's order).

Initialisation: the generator is the preset's network with the PSNR-pretrained weights loaded
strictly for everything but the new attention layer (`attention.*`, whose output gate gamma starts
at 0, so training starts from the pretrained model's outputs). SPSA's alpha gets its
data-dependent init on the first batch. Adam has two generator groups: the attention parameters
(SPSA's f/g/h, segmentation transform, alpha, gamma; lr 5e-4) and the rest (1e-4); the
discriminator has its own Adam (1e-4). All rates follow the same step schedule (halved every 100k).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F

from spsagan.losses import PerceptualLoss, ragan_discriminator_loss, ragan_generator_loss
from spsagan.models.discriminator import VGGStyleDiscriminator
from spsagan.models.presets import PRESETS, attention_parameters, build_generator, load_generator, preset_arch
from spsagan.models.vgg import VGG19FeatureExtractor
from spsagan.training import checkpoint as ckpt
from spsagan.training.data import TrainData, batch_to_device
from spsagan.training.device import (autocast, determinism, resolve_device, seed_everything, to_device,
                                     use_channels_last)
from spsagan.training.psnr import default_instance, fit, hashed_cfg
from spsagan.training.schedule import REQUIRED, resolve_cfg, set_lr

STAGE = "train_gan"

# cfg keys of `train_gan` with their defaults (REQUIRED: no default).
GAN_CFG = {
    "preset": REQUIRED,             # esrgan | +fa | +spsa | spsagan (spsagan.models.presets.PRESETS)
    "iters": REQUIRED,              # 400000 in the paper profile
    "batch_size": REQUIRED,         # 16
    "crop_size": REQUIRED,          # HR crop side, also the discriminator's input size (96 or 128)
    "lr": REQUIRED,                 # generator parameters outside the attention layer (1.0e-4)
    "lr_attention": REQUIRED,       # attention layer incl. transform, alpha, gamma (5.0e-4)
    "lr_d": REQUIRED,               # discriminator (1.0e-4)
    "lr_milestones": REQUIRED,      # e.g. [100000, 200000, 300000]
    "lr_gamma": 0.5,
    "adam_betas": [0.9, 0.999],
    "weight_perceptual": REQUIRED,  # 1.0 (0 skips the VGG entirely)
    "weight_gan": REQUIRED,         # 5.0e-3
    "weight_pixel": REQUIRED,       # 1.0e-2
    "perceptual_weights": None,     # torchvision vgg19-dcbb9e9d.pth path; None: seeded random VGG (labelled)
    "perceptual_layer": "conv5_4",  # VGG19 layer (before ReLU); shallower layers make tests cheap
    "d_num_feat": 64,               # discriminator width
    "val_every": REQUIRED,
    "ckpt_every": REQUIRED,
    "log_every": 25,
    "seed": REQUIRED,               # attention/discriminator init, random VGG, sample stream
    "deterministic": False,
    "mixed_precision": True,
    "channels_last": "auto",
    "workers": 0,
    "progress": True,
}


def init_generator(preset: str, init_model: str | Path) -> torch.nn.Module:
    """The preset's generator with `init_model`'s (PSNR-pretrained) weights; the attention layer is new.

    Every weight of the init model must load (strict), and the only weights left unloaded must be
    the attention layer's. The init model must have no attention and match the preset's pruning.
    """
    if preset not in PRESETS:
        raise KeyError(f"{STAGE}.preset: unknown preset {preset!r}; valid: {sorted(PRESETS)}")
    init, info = load_generator(init_model)
    arch = info["arch"]
    if arch.get("attention") is not None:
        raise ValueError(f"{init_model}: the GAN starts from a PSNR-pretrained model without attention, "
                         f"but this one has attention={arch['attention']!r}")
    try:
        arch = preset_arch(preset, arch["num_feat"], arch["num_block"], arch["num_grow_ch"], arch["keep"])
    except ValueError as err:
        raise ValueError(f"{init_model} does not fit preset {preset!r}: {err}") from err
    model = build_generator(arch)
    result = model.load_state_dict(init.state_dict(), strict=False)
    stray = [k for k in result.missing_keys if not k.startswith("attention.")]
    if stray or result.unexpected_keys:
        raise ValueError(f"{init_model}: weights do not match preset {preset!r} "
                         f"(missing {stray[:4]}, unexpected {result.unexpected_keys[:4]})")
    return model


def train_gan(cfg: dict, init_model: str | Path, data: TrainData, out_model: str | Path, ckpt_root: str | Path,
              live_dir: str | Path | None, device=None, instance: str | None = None,
              on_step: Callable[[int], None] | None = None) -> dict:
    """Train a preset's GAN from a PSNR-pretrained model; writes `out_model` (contracts format).

    cfg: see GAN_CFG (unknown or missing keys raise KeyError naming the key).
    init_model: the pretrain_psnr model file (RRDB for esrgan/+fa/+spsa, RRSB for spsagan).
    data: training sets with segmentation maps when the preset has SPSA (`needs_seg`), held-out
    images (with maps likewise). Other arguments as `train_psnr`. The resume key also covers the
    init model's bytes and the VGG weights file, so a retrained PSNR model restarts the GAN.
    Raises `checkpoint.Preempted` after saving when SIGTERM/SIGUSR1 arrives; a rerun resumes.
    """
    cfg = resolve_cfg(cfg, GAN_CFG, STAGE)
    for key in ("weight_perceptual", "weight_gan", "weight_pixel"):
        if not isinstance(cfg[key], (int, float)) or isinstance(cfg[key], bool) or cfg[key] < 0:
            raise ValueError(f"{STAGE}.{key} must be a number >= 0, got {cfg[key]!r}")
    preset = cfg["preset"]
    device = resolve_device(device)
    out_model, init_model = Path(out_model), Path(init_model)
    with_seg = PRESETS.get(preset, {}).get("attention") == "spsa"
    if with_seg and not data.has_seg:
        raise ValueError(f"preset {preset!r} needs segmentation maps: open the training data with seg maps")
    if with_seg and any(v.seg is None for v in data.val):
        raise ValueError(f"preset {preset!r} needs segmentation maps of the held-out images too")
    vgg_file = cfg["perceptual_weights"]
    extra = {"data": data.fingerprint(with_seg), "init": ckpt.file_digest(init_model),
             "vgg": ckpt.file_digest(vgg_file) if vgg_file and cfg["weight_perceptual"] > 0 else None}
    key = ckpt.run_key(STAGE, hashed_cfg(cfg), extra)
    resume = ckpt.ResumeDir(ckpt_root, STAGE, instance or default_instance(out_model), key)
    channels_last = use_channels_last(device, cfg["channels_last"])

    with determinism(cfg["deterministic"]):
        seed_everything(cfg["seed"])
        gen = to_device(init_generator(preset, init_model), device, channels_last).train()
        disc = to_device(VGGStyleDiscriminator(3, cfg["d_num_feat"], cfg["crop_size"]), device, channels_last).train()
        percep = None
        if cfg["weight_perceptual"] > 0:
            vgg = VGG19FeatureExtractor(vgg_file, cfg["perceptual_layer"], seed=cfg["seed"])
            cfg["perceptual_extractor"] = vgg.weights_label  # recorded in the model file's params
            percep = to_device(PerceptualLoss(vgg), device, channels_last)
        if with_seg:  # alpha's data-dependent init; a resumed run then loads the saved alpha
            first = data.make_batch(data.sampler(cfg["batch_size"], cfg["seed"]).draw(0), cfg["crop_size"], True)
            first = batch_to_device(first, device, channels_last)
            gen.init_attention(first["lq"], first["seg"])

        attention = attention_parameters(gen)
        attention_ids = {id(p) for p in attention}
        groups = [{"params": [p for p in gen.parameters() if id(p) not in attention_ids],
                   "initial_lr": cfg["lr"], "name": "g"}]
        if attention:
            groups.append({"params": attention, "initial_lr": cfg["lr_attention"], "name": "attention"})
        betas = tuple(cfg["adam_betas"])
        fused = device.type == "cuda"  # one kernel per step instead of several per tensor
        opt_g = torch.optim.Adam(groups, lr=cfg["lr"], betas=betas, fused=fused)
        opt_d = torch.optim.Adam([{"params": list(disc.parameters()), "initial_lr": cfg["lr_d"], "name": "d"}],
                                 lr=cfg["lr_d"], betas=betas, fused=fused)
        gate = getattr(gen.attention, "gamma", None)

        def train_step(batch, step):
            milestones, gamma = cfg["lr_milestones"], cfg["lr_gamma"]
            lrs = {"lr/g": set_lr(opt_g, step, milestones, gamma), "lr/d": set_lr(opt_d, step, milestones, gamma)}
            if attention:
                lrs["lr/attention"] = opt_g.param_groups[1]["lr"]
            lq, gt, seg = batch["lq"], batch["gt"], batch.get("seg")

            disc.requires_grad_(False)
            with autocast(device, cfg["mixed_precision"]):
                sr = gen(lq, seg)
                real_logits = disc(gt).detach()
                fake_logits = disc(sr)
                l_percep = percep(sr, gt).float() if percep is not None else torch.zeros((), device=device)
            l_pix = F.l1_loss(sr.float(), gt)
            l_gan = ragan_generator_loss(real_logits.float(), fake_logits.float())
            loss_g = cfg["weight_perceptual"] * l_percep + cfg["weight_gan"] * l_gan + cfg["weight_pixel"] * l_pix
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            disc.requires_grad_(True)
            with autocast(device, cfg["mixed_precision"]):
                real_logits = disc(gt)
                fake_logits = disc(sr.detach())
            l_d = ragan_discriminator_loss(real_logits.float(), fake_logits.float())
            opt_d.zero_grad(set_to_none=True)
            l_d.backward()
            opt_d.step()

            losses = {"train/l1": l_pix.detach(), "train/perceptual": l_percep.detach(),
                      "train/gan_g": l_gan.detach(), "train/total_g": loss_g.detach(), "train/d": l_d.detach(),
                      "train/d_real_logit": real_logits.detach().float().mean(),
                      "train/d_fake_logit": fake_logits.detach().float().mean()}
            if gate is not None:
                losses["attention/gamma"] = gate.detach().float()
            return losses, lrs

        return fit(stage=STAGE, cfg=cfg, data=data, device=device, generator=gen, modules={"g": gen, "d": disc},
                   optimizers={"g": opt_g, "d": opt_d}, train_step=train_step, with_seg=with_seg,
                   channels_last=channels_last, resume=resume, live_dir=live_dir, out_model=out_model,
                   preset=preset, on_step=on_step)
