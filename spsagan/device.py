"""Which device a stage or the upscale command runs on, and its name in reports.

Every stage and `spsagan-upscale` take `--device auto|cpu|cuda|cuda:N` and go through
`resolve_device`, so "auto" means the same everywhere: the first CUDA device when torch sees one,
else the CPU.
"""

from __future__ import annotations

import torch

from spsagan.config import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """`device` as a `torch.device`; "auto" (or None) picks "cuda" when available, else "cpu"."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"--device: {device!r} is not a device; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device: {device} was asked for, but torch sees no CUDA device; use cpu or auto")
    return device


def device_label(device: str | torch.device) -> str:
    """A readable device name: "cpu", or e.g. "cuda:0 (NVIDIA H100 80GB HBM3)"."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)
