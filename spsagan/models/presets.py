"""The paper's generator variants (Fig. 11 ablation) and building a generator from its `arch` dict.

The model file that training writes and every later stage reads is `spsagan.models.modelfile`.
"""

from __future__ import annotations

import inspect

from torch import nn

from spsagan.errors import ConfigError
from spsagan.models.rrdb import RRDBNet

# Fig. 11 variants: `pruned` means the generator is an RRSB (needs a connection mask).
PRESETS = {
    "esrgan": {"attention": None, "pruned": False},
    "+fa": {"attention": "fa", "pruned": False},
    "+spsa": {"attention": "spsa", "pruned": False},
    "spsagan": {"attention": "spsa", "pruned": True},
}

ARCH_KEYS = tuple(inspect.signature(RRDBNet.__init__).parameters)[1:]


def _preset(name: str) -> dict:
    if name not in PRESETS:
        raise ConfigError(
            f"preset: unknown generator preset {name!r} (workflow/stages.yaml names each "
            f"instance's preset); allowed: {', '.join(PRESETS)}"
        )
    return PRESETS[name]


def needs_seg(preset_name: str) -> bool:
    """Whether the preset's generator takes segmentation maps (it has an SPSA layer)."""
    return _preset(preset_name)["attention"] == "spsa"


def takes_seg(arch: dict) -> bool:
    """Whether a generator built from `arch` reads segmentation maps (it has an SPSA layer)."""
    return arch.get("attention") == "spsa"


def method_name(stage: str, arch: dict, preset: str) -> str:
    """The name reports give a trained model: "rrdb_psnr"/"rrsb_psnr" after pretraining (no attention),
    the preset's name after GAN training. Written into the model file (`method`) by training."""
    if stage == "pretrain_psnr":
        return "rrsb_psnr" if arch.get("keep") is not None else "rrdb_psnr"
    return preset


def preset_arch(preset_name: str, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32, keep=None) -> dict:
    """The `arch` dict of a preset at a given size; `keep` is required iff the preset is pruned."""
    preset = _preset(preset_name)
    if preset["pruned"] and keep is None:
        raise ConfigError(
            f"preset {preset_name!r} is an RRSB: give its connection mask (prune's mask.json, `--mask` of the step)"
        )
    if not preset["pruned"] and keep is not None:
        raise ConfigError(f"preset {preset_name!r} is an unpruned RRDB: it takes no connection mask")
    arch = dict(
        num_in_ch=3,
        num_out_ch=3,
        num_feat=num_feat,
        num_block=num_block,
        num_grow_ch=num_grow_ch,
        keep=keep,
        attention=preset["attention"],
    )
    return build_generator(arch).arch  # validates and normalises


def build_generator(arch: dict) -> RRDBNet:
    """Build the generator an `arch` dict (from `model.arch` or a checkpoint) describes."""
    if not isinstance(arch, dict):
        raise TypeError(f"arch must be a dict of RRDBNet arguments, got {type(arch).__name__}")
    unknown = sorted(set(arch) - set(ARCH_KEYS))
    missing = sorted(set(ARCH_KEYS) - set(arch))
    if unknown or missing:
        raise ValueError(
            f"arch keys do not match RRDBNet: unknown {unknown}, missing {missing}; expected exactly {list(ARCH_KEYS)}"
        )
    return RRDBNet(**arch)


def attention_parameters(model: RRDBNet) -> list[nn.Parameter]:
    """Parameters of the attention layer (SPSA: f/g/h, transform, alpha, gamma; or FA), the group
    trained with the larger learning rate (5e-4). Empty for a generator without attention."""
    return [] if model.attention is None else list(model.attention.parameters())
