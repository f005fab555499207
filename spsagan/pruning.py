"""RRSB: pruning RRDB's dense connections by their dissimilarity (SPSAGAN section 3.3, eq. 8).

In each dense block, for l = 2..4 and i = 1..l-1 (x_l has num_grow_ch channels; x_5 is not
compared):
    DS(i, l) = ||x_i - x_l||_2 / sum_{p=1}^{l-1} ||x_p - x_l||_2.
A small DS(i, l) means x_i is redundant next to x_l, so the connection x_i -> conv_{l+1} is the
pruning candidate (x_0, the block input, is never pruned). For each l with at least 2 candidates,
the DS values are split in two clusters by 1-D K-means and the low-mean cluster is pruned, unless
the two means differ by less than `min_gap` (relative to the high mean); then all are kept.
The 6 candidates: x1 -> conv3, x1 -> conv4, x2 -> conv4, x1 -> conv5, x2 -> conv5, x3 -> conv5.

Mask format: see `spsagan.models.rrdb` (5 lists; entry k-1 = conv k's sources x_0..x_{k-1}).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from spsagan.errors import ConfigError
from spsagan.models.attention import qk_channels
from spsagan.models.rrdb import RRDBNet, block_masks, full_mask, is_per_block

# (source i, conv k) of the candidate connections, in the order of the SPEC.
CANDIDATES = ((1, 3), (1, 4), (2, 4), (1, 5), (2, 5), (3, 5))


def keep_connections(ds_values, min_gap: float = 0.05) -> list[bool]:
    """Which of one layer's candidate connections to keep (True = keep), from their DS values.

    1-D K-means with k = 2, solved exactly: in 1-D the optimal clusters are contiguous in sorted
    order, so every split between distinct sorted values is tried and the one with the least
    within-cluster sum of squares wins (deterministic: no seed, no local optimum). The low-mean
    cluster is pruned unless (mean_high - mean_low) / mean_high < min_gap. A single candidate,
    or equal values, are always kept.
    """
    values = [float(v) for v in ds_values]
    if any(not math.isfinite(v) for v in values):
        raise ValueError(f"DS values must be finite, got {values}")
    if not 0 <= min_gap < 1:
        raise ValueError(f"min_gap must be in [0, 1), got {min_gap}")
    order = sorted(range(len(values)), key=values.__getitem__)
    sorted_vals = [values[i] for i in order]
    best = None
    for s in range(1, len(values)):
        if sorted_vals[s - 1] == sorted_vals[s]:
            continue  # equal values always share a cluster (each goes to its nearest mean)
        low, high = sorted_vals[:s], sorted_vals[s:]
        sse = _sse(low) + _sse(high)
        if best is None or sse < best[0]:
            best = (sse, s)
    if best is None:
        return [True] * len(values)
    s = best[1]
    mean_low = sum(sorted_vals[:s]) / s
    mean_high = sum(sorted_vals[s:]) / (len(values) - s)
    if mean_high <= 0 or (mean_high - mean_low) / mean_high < min_gap:
        return [True] * len(values)
    pruned = set(order[:s])
    return [i not in pruned for i in range(len(values))]


def _sse(xs: list[float]) -> float:
    mean = sum(xs) / len(xs)
    return sum((x - mean) ** 2 for x in xs)


@torch.no_grad()
def measure_dissimilarity(model: RRDBNet, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """Eq. 8 for every dense block, averaged over batches.

    model: an RRDBNet (or RRSB). batches: iterable of lq tensors (B, 3, h, w) in [0, 1] on the
    model's device; only the trunk runs (attention and upsampling are not needed). Each batch gives one
    DS per (block, l, i), the norms taken over the whole batch tensor (B, num_grow_ch, h, w); DS is then averaged over
    batches. Returns float64 (3 * num_block, 3, 3): [d, l - 2, i - 1] = DS(i, l) of dense block d,
    NaN where i >= l.
    """
    blocks = model.dense_blocks()
    sums = np.zeros((len(blocks), 3, 3))
    count = 0

    def observer_for(d):
        def observe(feats):  # feats = [x1, x2, x3, x4]
            for l in range(2, 5):
                dist = [torch.linalg.vector_norm((feats[p - 1] - feats[l - 1]).double()).item() for p in range(1, l)]
                total = sum(dist)
                for i in range(1, l):
                    sums[d, l - 2, i - 1] += dist[i - 1] / total if total > 0 else math.nan

        return observe

    was_training = model.training
    model.eval()
    try:
        for d, block in enumerate(blocks):
            block.observer = observer_for(d)
        for lq in batches:
            model.trunk_features(lq)
            count += 1
    finally:
        for block in blocks:
            block.observer = None
        model.train(was_training)
    if count == 0:
        raise ValueError("measure_dissimilarity needs at least one batch")
    ds = sums / count
    rows, cols = np.triu_indices(3, k=1)
    ds[:, rows, cols] = np.nan  # i >= l: undefined
    return ds


def decide_mask(ds: np.ndarray, scope: str = "shared", min_gap: float = 0.05):
    """Connection mask from DS values (output of `measure_dissimilarity`).

    scope "shared": DS averaged over dense blocks, one mask for all; "per_block": one mask per
    dense block (a list). Candidates x_i -> conv_{l+1} come from DS(i, l); `keep_connections`
    decides each l with at least 2 candidates (l = 3, 4); l = 2 has one candidate, always kept.
    """
    ds = np.asarray(ds, dtype=np.float64)
    if ds.ndim != 3 or ds.shape[1:] != (3, 3):
        raise ValueError(f"ds must be (num_dense_blocks, 3, 3), got shape {ds.shape}")
    if scope == "shared":
        return _mask_from_ds(ds.mean(axis=0), min_gap)
    if scope == "per_block":
        return [_mask_from_ds(block, min_gap) for block in ds]
    raise ValueError(f"scope must be 'shared' or 'per_block', got {scope!r}")


def _mask_from_ds(ds: np.ndarray, min_gap: float) -> list[list[bool]]:
    mask = full_mask()
    for l in range(2, 5):
        values = [ds[l - 2, i - 1] for i in range(1, l)]
        for i, kept in enumerate(keep_connections(values, min_gap), start=1):
            mask[l][i] = kept  # entry l is conv l+1
    return mask


def ds_rows(ds: np.ndarray) -> list[dict]:
    """DS as table rows {dense_block, l, i, ds} (prune's `ds.csv`), the undefined (NaN) entries left out.

    ds: (num_dense_blocks, 3, 3) from `measure_dissimilarity`, entry [d, l - 2, i - 1].
    """
    return [
        {"dense_block": d, "l": l + 2, "i": i + 1, "ds": float(ds[d, l, i])}
        for d in range(ds.shape[0])
        for l in range(3)
        for i in range(3)
        if not np.isnan(ds[d, l, i])
    ]


def ds_from_rows(rows: Iterable[dict], dense_blocks: int) -> np.ndarray:
    """The (dense_blocks, 3, 3) DS array back from `ds_rows` (missing entries NaN)."""
    ds = np.full((dense_blocks, 3, 3), np.nan)
    for row in rows:
        ds[int(row["dense_block"]), int(row["l"]) - 2, int(row["i"]) - 1] = float(row["ds"])
    return ds


def pruned_connections(keep) -> list[str]:
    """Human-readable list of dropped connections of a shared mask, e.g. ['x1 -> conv4']."""
    return [f"x{i} -> conv{k}" for k, row in enumerate(keep, start=1) for i, kept in enumerate(row) if not kept]


def arch_parameter_count(arch: dict) -> int:
    """Parameter count of the generator an `arch` dict describes, computed from the mask
    (conv weights and biases, plus the attention layer's), without building the network."""
    nf, gc, nb = arch["num_feat"], arch["num_grow_ch"], arch["num_block"]
    conv3 = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731 (3x3 conv with bias)
    total = conv3(arch["num_in_ch"], nf) + 4 * conv3(nf, nf) + conv3(nf, arch["num_out_ch"])
    widths = [nf] + [gc] * 4
    for mask in block_masks(arch["keep"], nb):
        for k, row in enumerate(mask, start=1):
            total += conv3(sum(w for w, kept in zip(widths, row) if kept), nf if k == 5 else gc)
    c = qk_channels(nf)
    if arch["attention"] == "fa":  # f (no bias), g, h, gamma
        total += nf * c + (nf * c + c) + (nf * nf + nf) + 1
    elif arch["attention"] == "spsa":  # f/g for both branches, h, transform 8 -> C 4x4, alpha, gamma
        total += 2 * (nf * c + nf * c + c) + (nf * nf + nf) + (8 * nf * 16 + nf) + 2
    return total


@torch.no_grad()
def rrsb_from_rrdb(model: RRDBNet, keep) -> RRDBNet:
    """A new generator with connection mask `keep`, holding `model`'s weights with the input-channel
    slices of the dropped connections removed; its output equals `model` with those weight slices
    zeroed. `keep` may only drop connections (everything kept must be kept in `model` already).
    """
    arch = model.arch
    num_block = arch["num_block"]
    old_masks = block_masks(arch["keep"], num_block)
    new_masks = block_masks(keep, num_block)
    widths = [arch["num_feat"]] + [arch["num_grow_ch"]] * 4
    new = RRDBNet(**{**arch, "keep": keep})
    state = model.state_dict()
    for d, (old, new_mask) in enumerate(zip(old_masks, new_masks)):
        prefix = f"body.{d // 3}.rdb{d % 3 + 1}."
        for k in range(1, 6):
            channels, start = [], 0
            for i in range(k):
                if old[k - 1][i]:
                    if new_mask[k - 1][i]:
                        channels.extend(range(start, start + widths[i]))
                    start += widths[i]
                elif new_mask[k - 1][i]:
                    raise ValueError(
                        f"keep restores x{i} -> conv{k} in dense block {d}, which the "
                        "model has already pruned; rrsb_from_rrdb can only drop connections"
                    )
            key = prefix + f"conv{k}.weight"
            state[key] = state[key][:, channels].clone()
    new.load_state_dict(state, strict=True)
    ref = next(model.parameters())
    return new.to(device=ref.device, dtype=ref.dtype).train(model.training)


def load_mask(path: str | os.PathLike):
    """The connection mask in a JSON file written by the prune stage (a mask list, or {"keep": list}).

    Checked against the mask format here (`spsagan.models.rrdb.block_masks`), so a wrong file stops
    with one line naming it instead of failing inside the network.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--mask: {path} not found; run the prune stage first")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigError(f"--mask: {path} is not valid JSON ({err}); rerun the prune stage") from err
    keep = obj.get("keep") if isinstance(obj, dict) else obj
    try:
        # A per-block mask's length is checked against the network when it is built.
        block_masks(keep, len(keep) // 3 if is_per_block(keep) and len(keep) % 3 == 0 else 1)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--mask: {path} is not a connection mask ({err}); rerun the prune stage") from err
    return keep
