"""The run's schedule: the step learning-rate schedule and periodic events.

The learning rate is a pure function of the iteration (`lr_factor`), not a stateful scheduler
object, so a resumed run recomputes it exactly from the step it resumes at.
"""

from __future__ import annotations

import bisect

import torch


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
