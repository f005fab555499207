"""Segmentation-prior self-attention (SPSA), SPSAGAN eq. 1-7.

Notation (paper): x (C x N) trunk features, N = h * w LR pixels; m_seg (8 x 16N) class
probabilities at HR size.
- eq. 1-2: s_fea[j, i] = f_fea(x_i)^T g_fea(x_j); beta_fea[j, i] = softmax over i.
- eq. 3: z = alpha * transform(m_seg), transform = conv 8 -> C, 4x4, stride 4 (HR grid -> LR grid);
  alpha trainable, initialised on the first training batch to mean|x| / mean|transform(m_seg)|.
- eq. 4: beta_seg from f_seg(z), g_seg(z) likewise.
- eq. 5: w = |beta_seg - beta_fea| / (beta_seg + beta_fea), elementwise; w = 0 where both are 0
  (in float32 both underflow to exactly 0 for large N; the combined beta is 0 there either way).
- eq. 6: beta = w * beta_seg + (1 - w) * beta_fea, renormalised to sum 1 over i.
- eq. 7: o_j = sum_i beta[j, i] h(x_i).
Decisions (SPEC section 3): f, g: 1x1 convs C -> C/8, h: 1x1 conv C -> C; output y = x + gamma * o,
gamma initialised to 0 (SAGAN), so a PSNR-pretrained trunk is unchanged at GAN start; the attention
maths runs in float32 even under autocast. f_fea and f_seg have no bias (the softmax over i cancels
a key-side bias; see `spsagan.models.attention`).

Memory: every row j of eq. 2-6 is normalised on its own, so chunks of query rows are exact; the
chunk size follows from `max_bytes` (see `spsagan.models.attention.concat_row_chunks`).
"""

from __future__ import annotations

import torch
from torch import nn

from spsagan.models.attention import (
    DEFAULT_MAX_BYTES,
    concat_row_chunks,
    conv,
    float32_region,
    qk_channels,
    rows_per_chunk,
    softmax_rows,
)


def combine_attention(beta_fea: torch.Tensor, beta_seg: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Eq. 5-6: fuse two attention maps (..., n, N), rows summing to 1 over the last dim.

    Returns beta (..., n, N), rows summing to 1. w = 0 where beta_fea = beta_seg = 0.
    inplace=True (inference only) overwrites beta_seg to save two N-wide buffers.
    """
    # w s + (1 - w) f = f + w (s - f) = f + (s - f) |s - f| / (s + f): fewer N-wide passes.
    diff = beta_seg - beta_fea
    if inplace:
        # Where total is 0, diff is 0 too, so clamping (instead of a masked fill, which needs an
        # N-wide bool temporary) gives w * diff = 0 there, as eq. 5 requires.
        total = beta_seg.add_(beta_fea).clamp_(min=torch.finfo(beta_seg.dtype).tiny)
        beta = diff.mul_(diff.abs()).div_(total).add_(beta_fea)
    else:
        total = beta_seg + beta_fea
        beta = beta_fea + diff * diff.abs() / torch.where(total > 0, total, 1.0)
    # Every softmax row holds at least one entry >= 1/N, so each row sum is positive.
    row_sum = beta.sum(dim=-1, keepdim=True)
    return beta.div_(row_sum) if inplace else beta / row_sum


class SPSA(nn.Module):
    """Segmentation-prior self-attention layer.

    forward(x, seg) -> y: x (B, C, h, w) trunk features (any range), seg (B, num_classes, 4h, 4w)
    class probabilities in [0, 1]; y = x + gamma * o, (B, C, h, w) in x's dtype.
    `max_bytes` bounds the attention maps alive at once (query-row chunking above it).
    """

    MAPS_PER_ROW = 10  # two score maps, two softmaxes, w, beta and temporaries per query row

    def __init__(self, num_feat: int, num_classes: int = 8, max_bytes: int = DEFAULT_MAX_BYTES):
        super().__init__()
        c = qk_channels(num_feat)
        self.num_classes = num_classes
        self.f_fea = nn.Conv2d(num_feat, c, 1, bias=False)
        self.g_fea = nn.Conv2d(num_feat, c, 1)
        self.f_seg = nn.Conv2d(num_feat, c, 1, bias=False)
        self.g_seg = nn.Conv2d(num_feat, c, 1)
        self.h = nn.Conv2d(num_feat, num_feat, 1)
        self.transform = nn.Conv2d(num_classes, num_feat, 4, stride=4)
        self.alpha = nn.Parameter(torch.ones(()))
        self.gamma = nn.Parameter(torch.zeros(()))
        # Saved with the weights, so a resumed run knows alpha has had its data-dependent init.
        self.register_buffer("alpha_initialised", torch.zeros((), dtype=torch.bool))
        self.max_bytes = max_bytes

    def _check(self, x: torch.Tensor, seg: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"x must be (B, C, h, w), got {tuple(x.shape)}")
        b, _, height, width = x.shape
        want = (b, self.num_classes, 4 * height, 4 * width)
        if seg is None or tuple(seg.shape) != want:
            got = None if seg is None else tuple(seg.shape)
            raise ValueError(
                f"seg must be (B, {self.num_classes}, 4h, 4w) = {want} for x of shape {tuple(x.shape)}, got {got}"
            )

    def _projections(self, x: torch.Tensor, seg: torch.Tensor):
        """(q_fea, k_fea, q_seg, k_seg, values), each (B, channels, N), in float32 or wider."""
        q_fea = conv(self.g_fea, x).flatten(2)  # g_fea(x_j)
        k_fea = conv(self.f_fea, x).flatten(2)  # f_fea(x_i)
        z = self.alpha.to(x.dtype) * conv(self.transform, seg)  # eq. 3, (B, C, h, w)
        q_seg = conv(self.g_seg, z).flatten(2)
        k_seg = conv(self.f_seg, z).flatten(2)
        return q_fea, k_fea, q_seg, k_seg, conv(self.h, x).flatten(2)

    def attend(self, x: torch.Tensor, seg: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
        """Eq. 7 output o (B, C, h, w), float32 (float64 for float64 inputs)."""
        self._check(x, seg)
        b, c, height, width = x.shape
        n = height * width
        dtype = torch.promote_types(x.dtype, torch.float32)
        with float32_region(x.device):
            tensors = self._projections(x.to(dtype), seg.to(dtype))
            rows = chunk_rows or self.rows_per_chunk(b, n)
            o = concat_row_chunks(_spsa_rows, n, rows, *tensors)
        return o.view(b, c, height, width)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
        o = self.attend(x, seg, chunk_rows)
        return x + (self.gamma.to(o.dtype) * o).to(x.dtype)

    def rows_per_chunk(self, batch: int, n: int) -> int:
        """Query rows per chunk for N = n pixels under `max_bytes` (n means the direct form)."""
        return rows_per_chunk(batch, n, n, self.max_bytes, self.MAPS_PER_ROW)

    @torch.no_grad()
    def init_alpha(self, x: torch.Tensor, seg: torch.Tensor) -> float:
        """Data-dependent init (eq. 3): alpha = mean|x| / mean|transform(seg)| on one batch.

        x (B, C, h, w) trunk features, seg (B, 8, 4h, 4w). Sets `alpha_initialised`; returns alpha.
        """
        self._check(x, seg)
        t = conv(self.transform, seg.to(self.transform.weight.dtype))
        denom = t.abs().mean()
        alpha = x.abs().mean().to(denom.dtype) / denom
        if not torch.isfinite(alpha) or denom == 0:
            raise ValueError(
                f"cannot initialise alpha: mean|x| = {x.abs().mean().item():.3g}, "
                f"mean|transform(seg)| = {denom.item():.3g}"
            )
        self.alpha.fill_(alpha.item())
        self.alpha_initialised.fill_(True)
        return float(alpha)

    @torch.no_grad()
    def attention_rows(self, x: torch.Tensor, seg: torch.Tensor, queries) -> tuple[torch.Tensor, ...]:
        """The attention rows (beta_fea, beta_seg, beta) of chosen query pixels (paper Fig. 6).

        queries: a sequence of flat LR indices j (row-major, 0 <= j < h*w) or (row, col) pairs.
        Returns three tensors (B, Q, h, w), float32, each row summing to 1 over the LR grid.
        """
        self._check(x, seg)
        b, _, height, width = x.shape
        index = []
        for q in queries:
            j = q[0] * width + q[1] if isinstance(q, (tuple, list)) else int(q)
            if isinstance(q, (tuple, list)) and not (0 <= q[0] < height and 0 <= q[1] < width):
                raise ValueError(f"query {tuple(q)} is outside the {height} x {width} LR grid")
            if not 0 <= j < height * width:
                raise ValueError(f"query {q} is outside the {height * width} LR pixels")
            index.append(j)
        dtype = torch.promote_types(x.dtype, torch.float32)
        with float32_region(x.device):
            q_fea, k_fea, q_seg, k_seg, _ = self._projections(x.to(dtype), seg.to(dtype))
            sel = torch.tensor(index, dtype=torch.long, device=x.device)
            betas = _betas(q_fea[:, :, sel], k_fea, q_seg[:, :, sel], k_seg)
        return tuple(beta.view(b, len(index), height, width) for beta in betas)


def _betas(q_fea, k_fea, q_seg, k_seg, inplace: bool = False):
    """(beta_fea, beta_seg, beta), each (B, n, N), for the n queries given (eq. 1-6).

    inplace=True (inference only) reuses buffers; beta_seg is then overwritten.
    """
    beta_fea = softmax_rows(torch.bmm(q_fea.transpose(1, 2), k_fea), inplace)  # eq. 1-2
    beta_seg = softmax_rows(torch.bmm(q_seg.transpose(1, 2), k_seg), inplace)  # eq. 4
    return beta_fea, beta_seg, combine_attention(beta_fea, beta_seg, inplace)  # eq. 5-6


def _spsa_rows(j0: int, j1: int, q_fea, k_fea, q_seg, k_seg, values) -> torch.Tensor:
    """o[:, :, j0:j1] (B, C, j1 - j0), eq. 7 for query rows j0..j1-1."""
    inplace = not torch.is_grad_enabled()
    beta = _betas(q_fea[:, :, j0:j1], k_fea, q_seg[:, :, j0:j1], k_seg, inplace)[2]
    return torch.bmm(values, beta.transpose(1, 2))
