"""How a computation runs: the device, its precision, memory format, seeding, determinism and compilation.

One module for every stage, `spsagan-upscale` and the benchmarks:

- `resolve_device`: `--device auto|cpu|cuda|cuda:N`; "auto" means the same everywhere: the first CUDA
  device when torch sees one, else the CPU. `device_label` names it in reports.
- `autocast`: bfloat16 autocast on CUDA devices that support it; a no-op elsewhere. bf16 keeps
  float32's exponent range, so no loss scaling is needed. The SPSA layer computes its attention maps
  in float32 itself (the two softmax maps underflow in half precision).
- `channels_last`: NHWC memory format on CUDA, where cuDNN's tensor-core convolutions prefer it.
- `determinism`: deterministic algorithms for bitwise-reproducible runs (the resume tests rely on it).
- `compiled`: the opt-in torch.compile fast path (`compile: true`), in the mode `compile_mode` picks.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
from collections.abc import Iterator

import numpy as np
import torch

from spsagan.errors import ConfigError


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


def autocast_dtype(device: torch.device, mixed_precision: bool) -> torch.dtype | None:
    """The autocast dtype used for `device`: bfloat16 on bf16-capable CUDA, else None (float32)."""
    if mixed_precision and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device, mixed_precision: bool):
    """Context manager: bf16 autocast where `autocast_dtype` says so, otherwise a no-op."""
    dtype = autocast_dtype(device, mixed_precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_channels_last(device: torch.device, setting: bool | str = "auto") -> bool:
    """Whether to train in channels_last: "auto" means on CUDA only (CPU convs gain nothing)."""
    if setting == "auto":
        return device.type == "cuda"
    return bool(setting)


def to_device(module: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """Move `module` to `device`, converting 4-D weights to channels_last if asked."""
    module = module.to(device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def determinism(enabled: bool) -> Iterator[None]:
    """Within the block, use deterministic algorithms if `enabled`; restore the previous settings after.

    Enabled: `torch.use_deterministic_algorithms(True)`, cuDNN deterministic and not benchmarking, and
    `CUBLAS_WORKSPACE_CONFIG=:4096:8` (needed by deterministic cuBLAS; it only takes effect if set
    before CUDA is first used in the process). Disabled: cuDNN benchmarking on (fastest kernels).
    """
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic = saved[1]
        torch.backends.cudnn.benchmark = saved[2]


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """Within the block, let float32 convolutions and matmuls run in TF32 on Ampere and newer GPUs, or not.

    PyTorch's defaults differ: cuDNN convolutions use TF32 unless told otherwise, matmuls do not. So
    "float32" means float32 only with `enabled=False` (both off); the previous settings come back after.
    No effect on the CPU.
    """
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

def precision_label(device: torch.device, mixed_precision: bool) -> str:
    """ "bf16 autocast" or "float32": what training actually computed in on `device`."""
    return "bf16 autocast" if autocast_dtype(device, mixed_precision) is not None else "float32"


def describe(device: torch.device, mixed_precision: bool) -> str:
    """A short human label, e.g. "cuda:0 (NVIDIA H100, bf16 autocast)" or "cpu (2 threads, float32)"."""
    precision = precision_label(device, mixed_precision)
    if device.type == "cuda":
        return f"{device_label(device)[:-1]}, {precision})"
    return f"{device} ({torch.get_num_threads()} threads, {precision})"


# --------------------------------------------------------------------------------------------------
# torch.compile


def compile_mode(device: torch.device) -> str:
    """The torch.compile mode for `device`.

    CUDA: "max-autotune-no-cudagraphs" (fused pointwise kernels, convolution and matmul kernels
    chosen by timing, no CUDA graphs: the GAN step keeps the generator's output across four
    discriminator calls in two gradient modes, and DDP's gradient all-reduce runs between the
    compiled pieces; docs/training.md). CPU: "default" (autotuning there costs more than it saves).
    """
    return "max-autotune-no-cudagraphs" if device.type == "cuda" else "default"


def compiler_missing(device: torch.device) -> str | None:
    """Why torch.compile cannot generate code for `device` here, or None when it can."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton is not installed (it comes with CUDA builds of torch)"
    compilers = [os.environ.get("CXX", ""), "c++", "g++", "clang++", "cc"]
    return None if any(c and shutil.which(c) for c in compilers) else "no C++ compiler on PATH (c++, g++, clang++)"


def check_compile(device: torch.device, enabled: bool, stage: str) -> None:
    """ConfigError (one line naming `<stage>.compile`) when `enabled` but torch.compile cannot run on `device`."""
    missing = compiler_missing(device) if enabled else None
    if missing:
        raise ConfigError(f"{stage}.compile is true, but {missing}; set {stage}.compile to false")


def compiled(module: torch.nn.Module, device: torch.device, enabled: bool) -> torch.nn.Module:
    """`torch.compile(module)` in `compile_mode(device)` when `enabled`, else `module` itself.

    The compiled module shares its parameters with `module`; it compiles on its first call.
    Call `check_compile` first: torch.compile itself only fails at that first call.
    """
    return torch.compile(module, mode=compile_mode(device)) if enabled else module
