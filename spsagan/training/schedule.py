"""The run's schedule: configuration checking, the step learning-rate schedule, periodic events.

The learning rate is a pure function of the iteration (`lr_factor`), not a stateful scheduler
object, so a resumed run recomputes it exactly from the step it resumes at.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Mapping

import torch

REQUIRED = object()  # marks a cfg key without a default


def resolve_cfg(cfg: Mapping[str, Any], spec: Mapping[str, Any], where: str) -> dict:
    """Check `cfg` against `spec` ({key: default or REQUIRED}) and return it with defaults filled in.

    Raises KeyError naming `where` and the key for an unknown or a missing key, and ValueError for
    values that make no sense (non-positive iteration counts, milestones out of order, ...).
    """
    unknown = sorted(set(cfg) - set(spec))
    if unknown:
        raise KeyError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(spec)}")
    missing = sorted(k for k, v in spec.items() if v is REQUIRED and k not in cfg)
    if missing:
        raise KeyError(f"{where}: missing key(s) {missing}")
    out = {k: cfg.get(k, v) for k, v in spec.items()}
    for key in ("iters", "batch_size", "crop_size", "val_every", "ckpt_every", "log_every"):
        if key in out and (not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < 1):
            raise ValueError(f"{where}: {key} must be a positive integer, got {out[key]!r}")
    if "crop_size" in out and out["crop_size"] % 4:
        raise ValueError(f"{where}: crop_size (HR) must be a multiple of 4 for x4 training, got {out['crop_size']}")
    if "seed" in out and (not isinstance(out["seed"], int) or isinstance(out["seed"], bool) or out["seed"] < 0):
        raise ValueError(f"{where}: seed must be a non-negative integer, got {out['seed']!r}")
    for key, value in out.items():
        if key.startswith("lr") and key not in ("lr_milestones", "lr_gamma") and not _positive_number(value):
            raise ValueError(f"{where}: {key} must be a positive number, got {value!r} "
                             "(in YAML write 1.0e-4, not 1e-4, which PyYAML reads as a string)")
    if "lr_milestones" in out:
        ms = out["lr_milestones"]
        if not isinstance(ms, (list, tuple)) or any(not isinstance(m, int) or m < 1 for m in ms) \
                or list(ms) != sorted(set(ms)):
            raise ValueError(f"{where}: lr_milestones must be increasing positive integers, got {ms!r}")
    if "lr_gamma" in out and not (_positive_number(out["lr_gamma"]) and out["lr_gamma"] <= 1):
        raise ValueError(f"{where}: lr_gamma must be in (0, 1], got {out['lr_gamma']!r}")
    if "adam_betas" in out:
        b = out["adam_betas"]
        if not isinstance(b, (list, tuple)) or len(b) != 2 or not all(0 <= float(x) < 1 for x in b):
            raise ValueError(f"{where}: adam_betas must be two numbers in [0, 1), got {b!r}")
    return out


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def step_milestones(iters: int, every: int) -> list[int]:
    """Milestones of a step schedule: every `every` iterations, before `iters` (e.g. halve every 200k)."""
    return list(range(every, iters, every))


def lr_factor(step: int, milestones, gamma: float) -> float:
    """Multiplier of the base learning rate for iteration `step` (0-based): gamma ** #milestones <= step.

    Matches torch's MultiStepLR stepped once per iteration: with milestones [200000], iterations
    0..199999 use the base rate and iteration 200000 onwards half of it (gamma 0.5).
    """
    return gamma ** bisect.bisect_right(list(milestones), step)


def set_lr(optimizer: torch.optim.Optimizer, step: int, milestones, gamma: float) -> float:
    """Set every group's rate to its `initial_lr` times `lr_factor(step)`; return group 0's rate."""
    factor = lr_factor(step, milestones, gamma)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return optimizer.param_groups[0]["lr"]


def due(step: int, every: int, last_step: int) -> bool:
    """True after iteration `step` (1-based count of finished iterations) when an event of period
    `every` falls due, and always at the last step."""
    return step % every == 0 or step == last_step
