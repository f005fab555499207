"""GAN training (ESRGAN recipe, SPSAGAN section 4) of the Fig. 11 presets esrgan, +fa, +spsa, spsagan.

Generator loss: w_perceptual * L1(VGG19 features before ReLU, conv5_4 in the paper) + w_gan * RaGAN
+ w_pixel * L1 (paper: 1, 5e-3, 1e-2). The discriminator is VGG-style for the HR crop size (96 or
128) and is trained with the relativistic average loss after every generator step (ESRGAN's order).

Initialisation: the generator is the preset's network with the PSNR-pretrained weights loaded
strictly for everything but the new attention layer (`attention.*`, whose output gate gamma starts
at 0, so training starts from the pretrained model's outputs). SPSA's alpha gets its
data-dependent init on the first batch. Adam has two generator groups: the attention parameters
(SPSA's f/g/h, segmentation transform, alpha, gamma; lr_attention 5e-4) and the rest (lr_g 1e-4);
the discriminator has its own Adam (lr_d 1e-4). All rates follow the same step schedule.

Data-parallel (several processes under torchrun): DDP averages both networks' gradients over the processes.
The discriminator's BatchNorm normalises with each process's own batch statistics and keeps its
running statistics per process, and the relativistic average is over each process's share of the
batch, as in BasicSR's multi-GPU training (docs/training.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from spsagan.config import TrainGANConfig
from spsagan.errors import ConfigError
from spsagan.losses import PerceptualLoss, ragan_discriminator_loss, ragan_generator_loss
from spsagan.models.discriminator import VGGStyleDiscriminator
from spsagan.models.modelfile import load_generator, weights_digest
from spsagan.models.presets import attention_parameters, build_generator, method_name, needs_seg, preset_arch
from spsagan.models.vgg import VGG19FeatureExtractor, verify_weights
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
from spsagan.training.data import TrainData, batch_to_device
from spsagan.training.distributed import World, process_group, rank_device, world_from_env, wrap
from spsagan.training.loop import Run, default_instance, fit, resume_key
from spsagan.training.schedule import set_lr

STAGE = "train_gan"


def init_generator(preset: str, init_model: str | Path) -> torch.nn.Module:
    """The preset's generator with `init_model`'s (PSNR-pretrained) weights; the attention layer is new.

    Every weight of the init model must load (strict), and the only weights left unloaded must be
    the attention layer's. The init model must have no attention and match the preset's pruning.
    """
    init, info = load_generator(init_model)
    arch = info["arch"]
    if arch.get("attention") is not None:
        raise ConfigError(
            f"--init: {init_model}: the GAN starts from a PSNR-pretrained model without attention, "
            f"but this one has attention={arch['attention']!r}"
        )
    try:
        arch = preset_arch(preset, arch["num_feat"], arch["num_block"], arch["num_grow_ch"], arch["keep"])
    except ConfigError as err:
        raise ConfigError(f"--init: {init_model} does not fit preset {preset!r}: {err}") from None
    model = build_generator(arch)
    result = model.load_state_dict(init.state_dict(), strict=False)
    stray = [k for k in result.missing_keys if not k.startswith("attention.")]
    if stray or result.unexpected_keys:
        raise ConfigError(
            f"--init: {init_model}: weights do not match preset {preset!r} "
            f"(missing {stray[:4]}, unexpected {result.unexpected_keys[:4]})"
        )
    return model


def perceptual_loss(cfg: TrainGANConfig) -> PerceptualLoss | None:
    """The VGG19 feature loss, or None when its weight is 0 (the VGG is then never built)."""
    if cfg.w_perceptual == 0:
        return None
    # The offline stand-in (no weights file) is one fixed network, as ImageNet's VGG19 is one file: every
    # training seed gets the same perceptual loss (its default seed), never a VGG of its own.
    vgg = VGG19FeatureExtractor(cfg.perceptual_weights or None, cfg.perceptual_layer)
    return PerceptualLoss(vgg)


def optimizers(cfg: TrainGANConfig, gen: torch.nn.Module, disc: torch.nn.Module, fused: bool) -> tuple:
    """(generator Adam with groups "g" and "attention", discriminator Adam); rates start at their base."""
    attention = attention_parameters(gen)
    ids = {id(p) for p in attention}
    groups = [{"params": [p for p in gen.parameters() if id(p) not in ids], "initial_lr": cfg.lr_g, "name": "g"}]
    if attention:
        groups.append({"params": attention, "initial_lr": cfg.lr_attention, "name": "attention"})
    betas = tuple(cfg.adam_betas)
    opt_g = torch.optim.Adam(groups, lr=cfg.lr_g, betas=betas, fused=fused)
    opt_d = torch.optim.Adam(
        [{"params": list(disc.parameters()), "initial_lr": cfg.lr_d, "name": "d"}],
        lr=cfg.lr_d,
        betas=betas,
        fused=fused,
    )
    return opt_g, opt_d


def callables(cfg: TrainGANConfig, world: World, device: torch.device, gen, disc, percep) -> tuple:
    """The networks as the step calls them: (generator, discriminator for its own update, discriminator
    for the generator update, perceptual loss), in DDP where gradients are averaged over processes and
    compiled when `cfg.compile`. In the generator update the discriminator's parameters take no
    gradient, so it runs without DDP (nothing to average, no collective)."""
    gen_c = compiled(wrap(gen, world, device), device, cfg.compile)
    disc_c = compiled(wrap(disc, world, device), device, cfg.compile)
    frozen_c = compiled(disc, device, cfg.compile) if world.distributed else disc_c
    percep_c = compiled(percep, device, cfg.compile) if percep is not None else None
    return gen_c, disc_c, frozen_c, percep_c


def gan_step(
    cfg: TrainGANConfig,
    device: torch.device,
    gen,
    disc,
    percep,
    opt_g,
    opt_d,
    gate: torch.Tensor | None = None,
    frozen_disc=None,
) -> Callable:
    """One iteration: a generator update against the frozen discriminator, then a discriminator update.

    gen, disc, percep: the networks as called (`callables`); frozen_disc: the discriminator as called
    in the generator update (default: disc); gate: the attention's gamma, logged when given.
    """
    milestones = cfg.lr_milestones()
    frozen_disc = disc if frozen_disc is None else frozen_disc

    def train_step(batch, step):
        lrs = {
            "lr/g": set_lr(opt_g, step, milestones, cfg.lr_gamma),
            "lr/d": set_lr(opt_d, step, milestones, cfg.lr_gamma),
        }
        if len(opt_g.param_groups) > 1:
            lrs["lr/attention"] = opt_g.param_groups[1]["lr"]
        lq, gt, seg = batch["lq"], batch["gt"], batch.get("seg")

        disc.requires_grad_(False)
        with autocast(device, cfg.mixed_precision):
            sr = gen(lq, seg)
            real_logits = frozen_disc(gt).detach()
            fake_logits = frozen_disc(sr)
            l_percep = percep(sr, gt).float() if percep is not None else torch.zeros((), device=device)
        l_pix = F.l1_loss(sr.float(), gt)
        l_gan = ragan_generator_loss(real_logits.float(), fake_logits.float())
        loss_g = cfg.w_perceptual * l_percep + cfg.w_gan * l_gan + cfg.w_pixel * l_pix
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        disc.requires_grad_(True)
        with autocast(device, cfg.mixed_precision):
            real_logits = disc(gt)
            fake_logits = disc(sr.detach())
        l_d = ragan_discriminator_loss(real_logits.float(), fake_logits.float(), detach_means=cfg.ragan_detach)
        opt_d.zero_grad(set_to_none=True)
        l_d.backward()
        opt_d.step()

        losses = {
            "train/l1": l_pix.detach(),
            "train/perceptual": l_percep.detach(),
            "train/gan_g": l_gan.detach(),
            "train/total_g": loss_g.detach(),
            "train/d": l_d.detach(),
            "train/d_real_logit": real_logits.detach().float().mean(),
            "train/d_fake_logit": fake_logits.detach().float().mean(),
        }
        if gate is not None:
            losses["attention/gamma"] = gate.detach().float()
        return losses, lrs

    return train_step


def check_seg(preset: str, data: TrainData) -> bool:
    """Whether the preset reads segmentation maps; if it does, every training and held-out image has one."""
    with_seg = needs_seg(preset)
    if with_seg and not data.has_seg:
        raise ConfigError(f"preset {preset!r} needs segmentation maps: open the training data with seg maps")
    if with_seg and any(v.seg is None for v in data.val):
        raise ConfigError(f"preset {preset!r} needs segmentation maps of the held-out images too")
    return with_seg


def train_gan(
    cfg: TrainGANConfig,
    preset: str,
    init_model: str | Path,
    data: TrainData,
    out_model: str | Path,
    ckpt_root: str | Path,
    live_dir: str | Path | None,
    device="auto",
    instance: str | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """Train `preset`'s GAN from a PSNR-pretrained model; writes `out_model`.

    cfg: the stage's typed config (params.yaml `train_gan`). init_model: the pretrain_psnr model file
    (RRDB for esrgan/+fa/+spsa, RRSB for spsagan). data: training sets, with segmentation maps when
    the preset has SPSA (`needs_seg`), and held-out images (likewise). Other arguments as `train_psnr`.
    The VGG weights file is checked first (torchvision's sha256 prefix, `vgg.verify_weights`). The resume
    key also covers the init model's weights (`modelfile.weights_digest`: its arch and tensors, not its
    file's bytes) and the VGG weights file, so a retrained PSNR model restarts the GAN and a re-saved
    one does not. Raises `errors.Preempted` after saving on SIGTERM/SIGUSR1/SIGINT/SIGHUP.
    """
    world = world_from_env()
    cfg.check_world(world.size, world.torchrun)  # before anything is read or written
    device = rank_device(world, resolve_device(device))
    check_compile(device, cfg.compile, STAGE)
    out_model, init_model = Path(out_model), Path(init_model)
    with_seg = check_seg(preset, data)
    vgg_file = cfg.perceptual_weights if cfg.w_perceptual > 0 else ""
    # checked against the registry's sha256 prefix before anything is built: a wrong file stops here
    extra = {
        "data": data.fingerprint(with_seg),
        "init": weights_digest(init_model),  # the weights, not the file: a re-saved model resumes
        "vgg": verify_weights(vgg_file) if vgg_file else None,
    }
    channels_last = use_channels_last(device, cfg.channels_last)

    with process_group(world, device) as world, determinism(cfg.deterministic), tf32(cfg.tf32):
        seed_everything(cfg.seed)
        gen = to_device(init_generator(preset, init_model), device, channels_last).train()
        disc = to_device(VGGStyleDiscriminator(3, cfg.d_num_feat, cfg.crop_size), device, channels_last).train()
        percep = perceptual_loss(cfg)
        if percep is not None:
            percep = to_device(percep, device, channels_last)
        if with_seg:  # alpha's data-dependent init (the whole first batch, on every rank); a resume loads alpha
            first = data.make_batch(data.sampler(cfg.batch_size, cfg.seed).global_draw(0), cfg.crop_size, True)
            first = batch_to_device(first, device, channels_last)
            gen.init_attention(first["lq"], first["seg"])
        opt_g, opt_d = optimizers(cfg, gen, disc, fused=device.type == "cuda")
        run = Run(
            stage=STAGE,
            cfg=cfg,
            preset=preset,
            method=method_name(STAGE, gen.arch, preset),
            out_model=out_model,
            resume=ckpt.ResumeDir(
                ckpt_root,
                STAGE,
                instance or default_instance(out_model),
                resume_key(STAGE, cfg, {"preset": preset}, extra),
            ),
            live_dir=live_dir,
            device=device,
            channels_last=channels_last,
            with_seg=with_seg,
            record={"perceptual_extractor": percep.extractor.weights_label if percep is not None else None},
            progress=progress,
            on_step=on_step,
            world=world,
        )
        gen_c, disc_c, frozen_c, percep_c = callables(cfg, world, device, gen, disc, percep)
        step = gan_step(
            cfg,
            device,
            gen_c,
            disc_c,
            percep_c,
            opt_g,
            opt_d,
            gate=getattr(gen.attention, "gamma", None),
            frozen_disc=frozen_c,
        )
        return fit(run, data, gen, {"g": gen, "d": disc}, {"g": opt_g, "d": opt_d}, step)
