"""SAGAN-style feature attention (the `+fa` ablation) and the memory-bounded row chunking it
shares with SPSA.

SAGAN (Zhang et al. 2018, v1 form, as SPSAGAN eq. 2 and 7): f, g: 1x1 convs C -> C/8, h: 1x1 conv
C -> C; s[j, i] = f(x_i)^T g(x_j); beta[j, i] = softmax over i of s[j, i];
o_j = sum_i beta[j, i] h(x_i); y = x + gamma * o with gamma a learnable scalar initialised to 0.

f has no bias: a key-side bias b adds b^T g(x_j) to every s[j, i] of row j, which the softmax over i
cancels, so it would be a parameter with an identically zero gradient.

Memory: beta is N x N (N = h * w). Every row j is normalised on its own, so computing the output
in chunks of query rows is exact; the chunk size follows from a byte budget (`max_bytes`). With
gradients enabled, chunks are recomputed in the backward pass (activation checkpointing), so
training on large images is bounded as well. When the whole map fits the budget (e.g. training on
24 x 24 LR crops) the direct form runs in one piece.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

DEFAULT_MAX_BYTES = 512 * 2**20  # budget for the attention maps of one chunk


def qk_channels(num_feat: int) -> int:
    """Channels of the f/g projections: C / 8 (SAGAN), at least 1."""
    return max(1, num_feat // 8)


def rows_per_chunk(batch: int, num_keys: int, num_queries: int, max_bytes: int, maps_per_row: int) -> int:
    """Query rows per chunk so that `maps_per_row` float32 maps of shape (batch, rows, num_keys)
    fit in `max_bytes`; at least 1, at most num_queries (then the direct form runs)."""
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    per_row = batch * num_keys * 4 * maps_per_row
    return int(min(num_queries, max(1, max_bytes // per_row)))


def concat_row_chunks(
    fn: Callable[..., torch.Tensor], num_queries: int, rows: int, *tensors: torch.Tensor
) -> torch.Tensor:
    """Concatenate fn(j0, j1, *tensors) -> (B, C, j1 - j0) over query chunks along the last dim.

    With autograd recording and more than one chunk, each chunk is checkpointed (recomputed in
    the backward pass) so that no chunk's N-wide maps stay alive.
    """
    if rows >= num_queries:
        return fn(0, num_queries, *tensors)
    recording = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if recording:
        chunks = [
            checkpoint(fn, j0, min(j0 + rows, num_queries), *tensors, use_reentrant=False)
            for j0 in range(0, num_queries, rows)
        ]
        return torch.cat(chunks, dim=-1)
    # Inference: write each chunk into one preallocated output, so no small long-lived tensors sit
    # between the large per-chunk temporaries (which made the C heap fragment and grow without bound).
    out = None
    for j0 in range(0, num_queries, rows):
        j1 = min(j0 + rows, num_queries)
        chunk = fn(j0, j1, *tensors)
        if out is None:
            out = chunk.new_empty((*chunk.shape[:-1], num_queries))
        out[..., j0:j1] = chunk
        del chunk
    return out


@contextlib.contextmanager
def float32_region(device: torch.device):
    """Autocast off, and on CUDA TensorFloat-32 off, so the attention maths runs in full float32.

    TF32 (cuDNN's default for convolutions) keeps 10 mantissa bits, which moves the attention
    output by about 3e-4 relative. The switch is global while the forward runs and is restored
    afterwards; the backward pass follows the caller's setting.
    """
    if device.type != "cuda":
        off = torch.autocast("cpu", enabled=False) if device.type == "cpu" else contextlib.nullcontext()
        with off:
            yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        with torch.autocast("cuda", enabled=False):
            yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def conv(module: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Apply `module` in x's dtype (so float32 maths also works for a half-precision model)."""
    if module.weight.dtype == x.dtype:
        return module(x)  # a module call, so forward hooks (e.g. FLOP counting) see it
    bias = None if module.bias is None else module.bias.to(x.dtype)
    return F.conv2d(x, module.weight.to(x.dtype), bias, module.stride, module.padding)


def softmax_rows(scores: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Softmax over the last dim; inplace=True (inference only) overwrites `scores`."""
    if not inplace:
        return torch.softmax(scores, dim=-1)
    scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
    return scores.div_(scores.sum(dim=-1, keepdim=True))


class FeatureAttention(nn.Module):
    """SAGAN self-attention on the trunk features (the paper's Fig. 11 `+fa` variant).

    forward(x) -> y: x (B, C, h, w) features, any range; y = x + gamma * o, same shape and dtype.
    """

    MAPS_PER_ROW = 4  # scores, softmax, and temporaries per query row

    def __init__(self, num_feat: int, max_bytes: int = DEFAULT_MAX_BYTES):
        super().__init__()
        c = qk_channels(num_feat)
        self.f_fea = nn.Conv2d(num_feat, c, 1, bias=False)
        self.g_fea = nn.Conv2d(num_feat, c, 1)
        self.h = nn.Conv2d(num_feat, num_feat, 1)
        self.gamma = nn.Parameter(torch.zeros(()))
        self.max_bytes = max_bytes

    def attend(self, x: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
        """Eq. 7 output o (B, C, h, w), float32 (float64 for a float64 input)."""
        b, c, height, width = x.shape
        n = height * width
        dtype = torch.promote_types(x.dtype, torch.float32)
        with float32_region(x.device):
            x = x.to(dtype)
            keys = conv(self.f_fea, x).flatten(2)  # (B, c', N): f(x_i)
            queries = conv(self.g_fea, x).flatten(2)  # (B, c', N): g(x_j)
            values = conv(self.h, x).flatten(2)  # (B, C, N): h(x_i)
            rows = chunk_rows or rows_per_chunk(b, n, n, self.max_bytes, self.MAPS_PER_ROW)
            o = concat_row_chunks(_fa_rows, n, rows, queries, keys, values)
        return o.view(b, c, height, width)

    def forward(self, x: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must be (B, C, h, w), got {tuple(x.shape)}")
        o = self.attend(x, chunk_rows)
        return x + (self.gamma.to(o.dtype) * o).to(x.dtype)


def _fa_rows(j0: int, j1: int, queries, keys, values) -> torch.Tensor:
    """o[:, :, j0:j1] (B, C, j1 - j0) for query rows j0..j1-1."""
    scores = torch.bmm(queries[:, :, j0:j1].transpose(1, 2), keys)  # (B, n, N): s[j, i]
    beta = softmax_rows(scores, inplace=not torch.is_grad_enabled())
    return torch.bmm(values, beta.transpose(1, 2))  # (B, C, n)


def set_attention_budget(model: nn.Module, max_bytes: int) -> None:
    """Bound the attention maps alive at once (bytes) in every attention layer of `model` (results are
    the same up to float rounding; only memory and time change)."""
    for module in model.modules():
        if hasattr(module, "max_bytes"):
            module.max_bytes = int(max_bytes)
