"""ESRGAN's RRDBNet generator, its pruned form RRSB (SPSAGAN eq. 8), and the attention hook.

ESRGAN (Wang et al. 2018): conv_first -> num_block x RRDB -> conv_body -> global skip ->
[attention] -> 2 x (nearest x2, conv, LReLU 0.2) -> conv_hr, LReLU -> conv_last.
An RRDB is three residual dense blocks (RDB); RDB conv k (k = 1..5) reads cat[x_0 .. x_{k-1}],
where x_0 is the block input (num_feat channels) and x_k (k < 5) has num_grow_ch channels.

State-dict names equal BasicSR's `RRDBNet` (`conv_first`, `body.{b}.rdb{r}.conv{k}`,
`conv_body`, `conv_up1`, `conv_up2`, `conv_hr`, `conv_last`), so a published ESRGAN/BasicSR
x4 checkpoint loads strictly into `RRDBNet()`; an attention layer adds `attention.*`.

RRSB: a connection mask (`keep`) removes dense connections physically: conv k only has input
channels for the kept sources. Mask format (JSON-ready): a list of 5 lists, entry k-1 holds conv k's
sources i = 0..k-1 as booleans (True = kept), shared by all dense blocks; or a list of such masks,
one per dense block (3 * num_block of them, in forward order). x_0 is never pruned.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spsagan.models.attention import FeatureAttention
from spsagan.models.spsa import SPSA

ATTENTIONS = (None, "fa", "spsa")


def full_mask() -> list[list[bool]]:
    """The all-keep mask of one dense block (plain RRDB): [[True], [True, True], ..., [True]*5]."""
    return [[True] * k for k in range(1, 6)]


def _check_block_mask(mask, where: str) -> list[list[bool]]:
    """Validate one dense block's mask and return it as plain lists of bools."""
    if not isinstance(mask, (list, tuple)) or len(mask) != 5:
        raise ValueError(f"{where}: a dense-block mask is a list of 5 lists (conv1..conv5), got {mask!r}")
    out = []
    for k, row in enumerate(mask, start=1):
        if not isinstance(row, (list, tuple)) or len(row) != k:
            raise ValueError(
                f"{where}: entry {k - 1} (conv{k}) must list {k} booleans for sources x0..x{k - 1}, got {row!r}"
            )
        if not all(isinstance(v, bool) for v in row):
            raise ValueError(f"{where}: entry {k - 1} (conv{k}) must hold true/false values, got {row!r}")
        if not row[0]:
            raise ValueError(f"{where}: conv{k} drops x0, the block input; x0 is never pruned")
        out.append(list(row))
    return out


def is_per_block(keep) -> bool:
    """True when `keep` is a list of per-dense-block masks rather than one shared mask."""
    return (
        isinstance(keep, (list, tuple))
        and len(keep) > 0
        and isinstance(keep[0], (list, tuple))
        and len(keep[0]) > 0
        and isinstance(keep[0][0], (list, tuple))
    )


def block_masks(keep, num_block: int) -> list[list[list[bool]]]:
    """Expand `keep` (None, shared mask or per-block list) to one validated mask per dense block.

    Returns a list of 3 * num_block masks, dense blocks in forward order
    (body.0.rdb1, body.0.rdb2, body.0.rdb3, body.1.rdb1, ...).
    """
    num_dense = 3 * num_block
    if keep is None:
        return [full_mask() for _ in range(num_dense)]
    if is_per_block(keep):
        if len(keep) != num_dense:
            raise ValueError(
                f"keep: a per-block mask needs one mask per dense block (3 x num_block = {num_dense}), got {len(keep)}"
            )
        return [_check_block_mask(m, f"keep[{d}]") for d, m in enumerate(keep)]
    shared = _check_block_mask(keep, "keep")
    return [[list(row) for row in shared] for _ in range(num_dense)]


def _plain_keep(keep):
    """`keep` as JSON-ready nested lists of bools (None stays None)."""
    if keep is None:
        return None
    if is_per_block(keep):
        return [[list(row) for row in m] for m in keep]
    return [list(row) for row in keep]


class ResidualDenseBlock(nn.Module):
    """RDB with an optional connection mask (RRSB when some connections are dropped).

    forward(x): x (B, num_feat, h, w) -> (B, num_feat, h, w), out = 0.2 * x5 + x.
    `observer`: if set to a callable, it is called with [x1, x2, x3, x4] on every forward
    (used by `spsagan.pruning.measure_dissimilarity`); None in normal use.
    """

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32, mask=None):
        super().__init__()
        self.mask = _check_block_mask(mask if mask is not None else full_mask(), "mask")
        widths = [num_feat] + [num_grow_ch] * 4  # channels of x0..x4
        for k in range(1, 6):
            in_ch = sum(w for w, kept in zip(widths, self.mask[k - 1]) if kept)
            out_ch = num_feat if k == 5 else num_grow_ch
            setattr(self, f"conv{k}", nn.Conv2d(in_ch, out_ch, 3, 1, 1))
        self.observer = None
        # Kaiming normal x 0.1 (ESRGAN's "smaller initialisation"), zero bias.
        for k in range(1, 6):
            conv = getattr(self, f"conv{k}")
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            conv.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for k in range(1, 6):
            sources = [f for f, kept in zip(feats, self.mask[k - 1]) if kept]
            out = getattr(self, f"conv{k}")(sources[0] if len(sources) == 1 else torch.cat(sources, 1))
            if k < 5:
                feats.append(F.leaky_relu(out, 0.2, inplace=True))
        if self.observer is not None:
            self.observer(feats[1:5])
        return out * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three RDBs, out = 0.2 * rdb3(rdb2(rdb1(x))) + x."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32, masks=(None, None, None)):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch, masks[0])
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch, masks[1])
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch, masks[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """x4 generator: RRDBNet (ESRGAN), RRSB when `keep` prunes connections, optional attention.

    Args:
        num_in_ch, num_out_ch: image channels (3).
        num_feat: trunk channels C (64). num_block: RRDBs (23). num_grow_ch: dense growth (32).
        keep: connection mask (module docstring); None = plain RRDB.
        attention: None, "fa" (SAGAN feature attention) or "spsa" (segmentation-prior
            self-attention), on the trunk output after the global skip, before upsampling.

    forward(lq, seg=None) -> sr: lq (B, 3, h, w) in [0, 1]; seg (B, 8, 4h, 4w) class
    probabilities, required iff attention == "spsa" (ignored otherwise); sr (B, 3, 4h, 4w),
    not clamped (values slightly outside [0, 1] are possible).
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        keep=None,
        attention: str | None = None,
    ):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        for name, value in [
            ("num_in_ch", num_in_ch),
            ("num_out_ch", num_out_ch),
            ("num_feat", num_feat),
            ("num_block", num_block),
            ("num_grow_ch", num_grow_ch),
        ]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        masks = block_masks(keep, num_block)
        self._arch = dict(
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
            num_feat=num_feat,
            num_block=num_block,
            num_grow_ch=num_grow_ch,
            keep=_plain_keep(keep),
            attention=attention,
        )

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch, masks[3 * b : 3 * b + 3]) for b in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if attention == "spsa":
            self.attention = SPSA(num_feat)
        elif attention == "fa":
            self.attention = FeatureAttention(num_feat)
        else:
            self.attention = None
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    @property
    def arch(self) -> dict:
        """Constructor kwargs (JSON-ready, mask included); `build_generator(arch)` rebuilds."""
        return _plain_keep_arch(self._arch)

    def dense_blocks(self) -> list[ResidualDenseBlock]:
        """All dense blocks in forward order (3 per RRDB)."""
        return [rdb for rrdb in self.body for rdb in (rrdb.rdb1, rrdb.rdb2, rrdb.rdb3)]

    def trunk_features(self, lq: torch.Tensor) -> torch.Tensor:
        """Trunk output after the global skip: lq (B, 3, h, w) -> (B, num_feat, h, w).

        This is what the attention layer sees (e.g. for `SPSA.attention_rows`).
        """
        if lq.dim() != 4 or lq.shape[1] != self._arch["num_in_ch"]:
            raise ValueError(f"lq must be (B, {self._arch['num_in_ch']}, h, w), got {tuple(lq.shape)}")
        feat = self.conv_first(lq)
        return feat + self.conv_body(self.body(feat))

    def apply_attention(self, feat: torch.Tensor, seg: torch.Tensor | None = None) -> torch.Tensor:
        """The attention layer on trunk features (identity without one): (B, C, h, w) -> same shape.

        seg (B, 8, 4h, 4w) probabilities, required for SPSA. Attention reads every LR pixel, so it
        needs the whole feature map; its own query-row chunking bounds its memory.
        """
        if isinstance(self.attention, SPSA):
            if seg is None:
                raise ValueError(
                    "this generator has an SPSA layer: forward(lq, seg) needs the "
                    "(B, 8, 4h, 4w) segmentation probabilities"
                )
            return self.attention(feat, seg)
        if self.attention is not None:
            return self.attention(feat)
        return feat

    def tail(self, feat: torch.Tensor) -> torch.Tensor:
        """Upsampling tail: features (B, C, h, w) -> sr (B, 3, 4h, 4w), not clamped.

        Each output pixel reads the features within 2 LR pixels (`spsagan.models.tiling.TAIL_OVERLAP`).
        """
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2, inplace=True)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2, inplace=True))

    def forward(self, lq: torch.Tensor, seg: torch.Tensor | None = None) -> torch.Tensor:
        return self.tail(self.apply_attention(self.trunk_features(lq), seg))

    @torch.no_grad()
    def init_attention(self, lq: torch.Tensor, seg: torch.Tensor) -> float | None:
        """Data-dependent init of SPSA's alpha from one batch (once, on the first training batch).

        lq (B, 3, h, w) in [0, 1], seg (B, 8, 4h, 4w). Returns the new alpha, or None when the
        generator has no SPSA layer (then it does nothing).
        """
        if not isinstance(self.attention, SPSA):
            return None
        return self.attention.init_alpha(self.trunk_features(lq), seg)


def _plain_keep_arch(arch: dict) -> dict:
    return {**arch, "keep": _plain_keep(arch["keep"])}
