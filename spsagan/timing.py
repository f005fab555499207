"""Inference time, parameter count and FLOPs of a generator, measured the same way for every model.

Timing protocol (SPEC section 4): warm-up calls first (cuDNN autotuning, allocator, lazy init are
not timed), `torch.cuda.synchronize()` before starting and before stopping the clock on a GPU
(kernels run asynchronously), the median of the timed repeats reported with device and dtype.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from spsagan.models.flops import count_flops
from spsagan.runtime import device_label


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_inference(
    fn: Callable[[], object],
    warmup: int = 2,
    repeats: int = 5,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    size: str | tuple | None = None,
) -> dict:
    """Median wall-clock seconds of `fn()` over `repeats` timed calls, after `warmup` untimed calls.

    fn: a zero-argument callable running one inference (for example `lambda: model(lq)` under
        `torch.no_grad()`); its result is discarded.
    device: where `fn` runs; on CUDA each timed call is bracketed by `torch.cuda.synchronize()`.
    dtype, size: recorded as given (the compute dtype; the input size, e.g. `(1, 3, 128, 128)`).
    Returns {median_s, min_s, times_s, repeats, warmup, device, dtype, size}.
    """
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if int(warmup) != warmup or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    if isinstance(size, (tuple, list, torch.Size)):
        size = "x".join(str(int(s)) for s in size)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "repeats": int(repeats),
        "warmup": int(warmup),
        "device": device_label(device),
        "dtype": dtype,
        "size": size,
    }


def time_generator(
    model: torch.nn.Module, lq: torch.Tensor, seg: torch.Tensor | None = None, warmup: int = 2, repeats: int = 5
) -> dict:
    """time_inference of one generator forward pass on `lq` (B, 3, h, w) in [0, 1] (seg: (B, 8, 4h, 4w)).

    Runs in eval mode under `torch.no_grad()` on the model's device; inputs are moved there first.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    lq = lq.to(device, dtype)
    seg = None if seg is None else seg.to(device, dtype)
    model.eval()

    def run():
        with torch.no_grad():
            return model(lq, seg) if seg is not None else model(lq)

    return time_inference(run, warmup=warmup, repeats=repeats, device=device, dtype=dtype, size=tuple(lq.shape))


def model_cost(model: torch.nn.Module, lq_shape: tuple[int, int, int, int]) -> dict:
    """{params, flops}: trainable + frozen parameter count and multiply-accumulates for input `lq_shape`."""
    return {
        "params": int(sum(p.numel() for p in model.parameters())),
        "flops": int(count_flops(model, lq_shape)),
    }
