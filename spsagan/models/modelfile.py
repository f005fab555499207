"""The model file: the one format training writes and evaluation, export and upscale read.

A model file is a dict saved with `torch.save` that loads with weights_only=True:

    {"arch": model.arch,            # RRDBNet arguments: build_generator(arch) rebuilds the network
     "params_g": state_dict,        # the generator's weights (CPU, contiguous)
     "preset": name,                # the Fig. 11 variant (spsagan.models.presets.PRESETS)
     "method": name,                # the name reports give it ("rrdb_psnr", "spsagan", ...)
     "step": int,                   # training iterations done
     "segmenter": str | None,       # which segmentation priors it was trained with (SPSA models)
     "params": dict,                # the training stage's config
     "info": dict,                  # extra facts of the run (e.g. the perceptual extractor)
     "git_rev": str | None}         # the commit that trained it

`save_model` writes it (atomically), `load_generator` reads it back into a network.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import torch

from spsagan.atomic import atomic_path
from spsagan.models.presets import build_generator
from spsagan.models.rrdb import RRDBNet


def git_revision(cwd: str | Path | None = None) -> str | None:
    """The commit hash of the git checkout at `cwd` (default: the current directory), or None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", rev) else None


def save_model(
    path: str | Path,
    model: torch.nn.Module,
    preset: str,
    step: int,
    params: dict,
    segmenter: str | None,
    method: str | None = None,
    info: dict | None = None,
) -> None:
    """Write the final generator in the checkpoint format of the contracts, atomically.

    {"arch", "params_g", "preset", "method", "step", "segmenter", "params", "info", "git_rev"}:
    params is the stage's config, method the name reports show (default: the preset), info extra
    facts of the run (e.g. the perceptual extractor). Loads with `load_generator`
    (weights_only=True).
    """
    params_g = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    ckpt = {
        "arch": model.arch,
        "params_g": params_g,
        "preset": preset,
        "method": method or preset,
        "step": int(step),
        "segmenter": segmenter,
        "params": _plain(params),
        "info": _plain(info or {}),
        "git_rev": git_revision(),
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _plain(obj: Any):
    """JSON-like copy (dicts, lists, str, numbers, bool, None) of a cfg, for weights_only loading."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def load_generator(path, map_location="cpu") -> tuple[RRDBNet, dict]:
    """Rebuild the generator of a checkpoint file: returns (model in eval mode, checkpoint dict)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: checkpoint not found") from None
    except Exception as err:
        raise ValueError(f"{path}: cannot read as a torch checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or "arch" not in ckpt or "params_g" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(
            f"{path}: not an spsagan checkpoint (needs 'arch' and 'params_g', has {keys}); "
            "a BasicSR/ESRGAN file loads with RRDBNet().load_state_dict(ckpt['params'])"
        )
    try:
        model = build_generator(ckpt["arch"])
        model.load_state_dict(ckpt["params_g"], strict=True)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ValueError(f"{path}: checkpoint does not rebuild its generator: {err}") from err
    return model.eval(), ckpt
