"""RRSB pruning: connection decisions (K-means rule), eq. 8 measurement, masks, weight surgery."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spsagan.models.rrdb import RRDBNet, full_mask
from spsagan.pruning import (
    arch_parameter_count,
    decide_mask,
    keep_connections,
    measure_dissimilarity,
    pruned_connections,
    rrsb_from_rrdb,
)

torch.set_num_threads(1)

SPEC_MASK = [
    [True],
    [True, True],
    [True, True, True],
    [True, False, True, True],
    [True, False, False, True, True],
]
TINY = dict(num_feat=16, num_block=2, num_grow_ch=8)


def test_keep_connections_examples():
    assert keep_connections([0.10, 0.45, 0.45]) == [False, True, True]
    assert keep_connections([0.45, 0.10, 0.45]) == [True, False, True]
    assert keep_connections([0.40, 0.41, 0.415]) == [True, True, True]  # means within 5%
    assert keep_connections([0.7]) == [True]  # a single candidate is always kept
    assert keep_connections([0.3, 0.3, 0.3]) == [True, True, True]
    assert keep_connections([0.2, 0.8]) == [False, True]


def test_keep_connections_gap_threshold():
    assert keep_connections([0.95, 1.0]) == [False, True]  # gap 0.05: not below min_gap
    assert keep_connections([0.96, 1.0]) == [True, True]  # gap 0.04 < 0.05: keep all
    assert keep_connections([0.96, 1.0], min_gap=0.01) == [False, True]
    with pytest.raises(ValueError, match="finite"):
        keep_connections([0.1, float("nan")])


def _brute_force_two_means(values):
    """Least within-cluster sum of squares over every split of the values into two sets."""
    best = None
    n = len(values)
    for r in range(1, n):
        for low in itertools.combinations(range(n), r):
            high = [i for i in range(n) if i not in low]
            parts = [np.array([values[i] for i in low]), np.array([values[i] for i in high])]
            sse = sum(((p - p.mean()) ** 2).sum() for p in parts)
            if parts[0].mean() < parts[1].mean() and (best is None or sse < best[0] - 1e-15):
                best = (sse, set(low), parts[0].mean(), parts[1].mean())
    return best


def test_keep_connections_is_the_optimal_two_means_split():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    for _ in range(40):
        values = list(rng.uniform(0.05, 1.0, size=rng.integers(2, 6)))
        _, low, mean_low, mean_high = _brute_force_two_means(values)
        expected = (
            [True] * len(values)
            if (mean_high - mean_low) / mean_high < 0.05
            else [i not in low for i in range(len(values))]
        )
        assert keep_connections(values) == expected
        # scikit-learn's K-means (several restarts) finds the same clusters.
        labels = KMeans(n_clusters=2, n_init=10, random_state=0).fit_predict(np.array(values)[:, None])
        low_label = labels[int(np.argmin(values))]
        assert {i for i, lab in enumerate(labels) if lab == low_label} == low


def _literal_ds(model, batches):
    """Eq. 8 from features recomputed with F.conv2d (float64), per batch, averaged over batches."""
    state = {k: v.double() for k, v in model.state_dict().items()}
    conv = lambda name, t: F.conv2d(t, state[f"{name}.weight"], state[f"{name}.bias"], padding=1)  # noqa
    num_dense = 3 * model.arch["num_block"]
    out = np.zeros((len(batches), num_dense, 3, 3))
    for n, lq in enumerate(batches):
        trunk = conv("conv_first", lq.double())
        for b in range(model.arch["num_block"]):
            rrdb_in = trunk
            for r in (1, 2, 3):
                d = 3 * b + r - 1
                x = [trunk]
                for k in range(1, 6):
                    y = conv(f"body.{b}.rdb{r}.conv{k}", torch.cat(x, 1))
                    x.append(F.leaky_relu(y, 0.2) if k < 5 else y)
                for l in range(2, 5):
                    denom = sum(torch.sqrt(((x[p] - x[l]) ** 2).sum()).item() for p in range(1, l))
                    for i in range(1, 4):
                        out[n, d, l - 2, i - 1] = (
                            torch.sqrt(((x[i] - x[l]) ** 2).sum()).item() / denom if i < l else np.nan
                        )
                trunk = x[5] * 0.2 + x[0]
            trunk = trunk * 0.2 + rrdb_in
    return out.mean(axis=0)


def test_measure_dissimilarity_matches_literal_eq8():
    model = RRDBNet(**TINY)
    with torch.no_grad():  # larger weights than the x0.1 init so the features differ clearly
        for p in model.parameters():
            p.mul_(5)
    model.train()
    gen = torch.Generator().manual_seed(0)
    batches = [torch.rand(2, 3, 8, 7, generator=gen) for _ in range(3)]
    ds = measure_dissimilarity(model, batches)
    ref = _literal_ds(model, batches)
    assert ds.shape == (6, 3, 3)
    assert np.array_equal(np.isnan(ds), np.isnan(ref))
    assert np.isnan(ds[:, 0, 1:]).all() and np.isnan(ds[:, 1, 2]).all()
    np.testing.assert_allclose(ds[~np.isnan(ds)], ref[~np.isnan(ref)], rtol=1e-5)
    np.testing.assert_allclose(np.nansum(ds, axis=2), 1.0, rtol=1e-9)  # each l's DS sum to 1
    assert model.training and all(rdb.observer is None for rdb in model.dense_blocks())
    with pytest.raises(ValueError, match="at least one batch"):
        measure_dissimilarity(model, [])


def _ds_with(values_l3, values_l4, blocks=2):
    ds = np.full((blocks, 3, 3), np.nan)
    ds[:, 0, 0] = 1.0
    ds[:, 1, :2] = values_l3
    ds[:, 2, :3] = values_l4
    return ds


def test_decide_mask_maps_ds_to_connections():
    # l = 3: DS(1,3) small -> prune x1 -> conv4;
    # l = 4: DS(1,4), DS(2,4) small -> prune x1, x2 -> conv5.
    ds = _ds_with([0.2, 0.8], [0.10, 0.12, 0.78])
    mask = decide_mask(ds)
    assert mask == SPEC_MASK
    assert pruned_connections(mask) == ["x1 -> conv4", "x1 -> conv5", "x2 -> conv5"]
    assert decide_mask(_ds_with([0.5, 0.5], [0.33, 0.33, 0.34])) == full_mask()


def test_decide_mask_shared_averages_and_per_block():
    ds = np.concatenate(
        [
            _ds_with([0.2, 0.8], [0.3, 0.3, 0.4], blocks=1),
            _ds_with([0.6, 0.4], [0.3, 0.3, 0.4], blocks=1),
        ]
    )
    # Averaged: l = 3 gives [0.4, 0.6] -> prune x1 -> conv4;
    # l = 4 gives [0.3, 0.3, 0.4] -> prune x1, x2.
    assert decide_mask(ds, "shared") == SPEC_MASK
    per_block = decide_mask(ds, "per_block")
    assert per_block[0][3] == [True, False, True, True]
    assert per_block[1][3] == [True, True, False, True]
    assert (
        RRDBNet(num_feat=16, num_block=1, num_grow_ch=8, keep=[per_block[0], per_block[1], full_mask()]).arch["keep"][1]
        == per_block[1]
    )
    with pytest.raises(ValueError, match="scope"):
        decide_mask(ds, "global")
    with pytest.raises(ValueError, match="shape"):
        decide_mask(ds[:, :2])


def test_arch_parameter_count_matches_built_networks():
    per_block = [SPEC_MASK, full_mask(), SPEC_MASK, SPEC_MASK, full_mask(), SPEC_MASK]
    for keep in (None, SPEC_MASK, per_block):
        for attention in (None, "fa", "spsa"):
            model = RRDBNet(**TINY, keep=keep, attention=attention)
            assert arch_parameter_count(model.arch) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("keep", ["shared", "per_block"])
def test_rrsb_from_rrdb_equals_zeroed_connections(keep):
    torch.manual_seed(0)
    rrdb = RRDBNet(**TINY, attention="spsa")
    with torch.no_grad():
        rrdb.attention.gamma.fill_(0.5)
        for rdb in rrdb.dense_blocks():  # undo the x0.1 init so the dense connections matter
            for p in rdb.parameters():
                p.mul_(10)
    mask = SPEC_MASK if keep == "shared" else [SPEC_MASK, full_mask()] * 3
    rrsb = rrsb_from_rrdb(rrdb, mask)
    assert rrsb.arch["keep"] == mask
    assert sum(p.numel() for p in rrsb.parameters()) == arch_parameter_count(rrsb.arch)
    # Zero the input-channel slices of the dropped connections in a copy of the RRDB.
    zeroed = RRDBNet(**TINY, attention="spsa")
    zeroed.load_state_dict(rrdb.state_dict())
    nf, gc = 16, 8
    masks = [mask] * 6 if keep == "shared" else mask
    with torch.no_grad():
        for d, rdb in enumerate(zeroed.dense_blocks()):
            for k, row in enumerate(masks[d], start=1):
                for i, kept in enumerate(row):
                    if not kept:
                        start = nf + (i - 1) * gc  # x_i's channels in cat[x0 (nf), x1 (gc), ...]
                        getattr(rdb, f"conv{k}").weight[:, start : start + gc] = 0
    lq = torch.rand(2, 3, 6, 5)
    seg = torch.softmax(torch.randn(2, 8, 24, 20), dim=1)
    with torch.no_grad():
        out_rrsb, out_zeroed, out_rrdb = rrsb(lq, seg), zeroed(lq, seg), rrdb(lq, seg)
    assert torch.allclose(out_rrsb, out_zeroed, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out_rrsb, out_rrdb, rtol=1e-3, atol=1e-4)  # pruning changed something
    # Kept slices are copied unchanged.
    assert torch.equal(rrsb.body[0].rdb1.conv5.weight[:, :nf], rrdb.body[0].rdb1.conv5.weight[:, :nf])


def test_rrsb_from_rrdb_cannot_restore_connections():
    rrsb = RRDBNet(**TINY, keep=SPEC_MASK)
    with pytest.raises(ValueError, match="can only drop"):
        rrsb_from_rrdb(rrsb, full_mask())
    # Pruning further from an RRSB is fine.
    more = [row[:] for row in SPEC_MASK]
    more[4][3] = False
    assert rrsb_from_rrdb(rrsb, more).body[0].rdb1.conv5.in_channels == 16 + 8
