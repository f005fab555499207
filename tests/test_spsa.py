"""SPSA (eq. 1-7) and SAGAN feature attention against literal float64 loop implementations."""

import math

import numpy as np
import pytest
import torch

from spsagan.models.attention import FeatureAttention, rows_per_chunk
from spsagan.models.spsa import SPSA, combine_attention

torch.set_num_threads(1)


def _randomise(module, seed=0, scale=0.25):
    """Weights large enough that the attention rows are far from uniform."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        if hasattr(module, "alpha"):
            module.alpha.fill_(0.8)
        module.gamma.fill_(0.7)
    return module


def _inputs(b=2, c=16, h=3, w=4, seed=1, one_hot=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=gen)
    logits = torch.randn(b, 8, 4 * h, 4 * w, generator=gen) * 2
    if one_hot:
        seg = torch.nn.functional.one_hot(logits.argmax(1), 8).permute(0, 3, 1, 2).float()
    else:
        seg = torch.softmax(logits, dim=1)
    return x, seg


def _np(t):
    return None if t is None else t.detach().double().numpy()


def _conv1x1(conv, v):
    """Literal 1x1 conv of one pixel vector v (C,)."""
    weight = _np(conv.weight)[:, :, 0, 0]
    bias = _np(conv.bias)
    return weight @ v + (0 if bias is None else bias)


def _softmax_row(s):
    e = np.exp(s - s.max())
    return e / e.sum()


def literal_spsa(module, x, seg):
    """Eq. 1-7 with explicit loops over j (queries) and i (keys), float64. Returns o, rows."""
    x, seg = _np(x), _np(seg)
    b_count, c, h, w = x.shape
    n = h * w
    wt, bt = _np(module.transform.weight), _np(module.transform.bias)
    alpha = float(module.alpha.detach())
    o = np.zeros((b_count, c, n))
    rows = np.zeros((3, b_count, n, n))
    for b in range(b_count):
        xs = x[b].reshape(c, n)
        z = np.zeros((c, n))  # eq. 3: 4x4 stride-4 conv over the HR map, times alpha
        for r in range(h):
            for q in range(w):
                patch = seg[b, :, 4 * r : 4 * r + 4, 4 * q : 4 * q + 4]
                for out in range(c):
                    z[out, r * w + q] = alpha * ((wt[out] * patch).sum() + bt[out])
        for j in range(n):
            s_fea = np.array([_conv1x1(module.f_fea, xs[:, i]) @ _conv1x1(module.g_fea, xs[:, j]) for i in range(n)])
            s_seg = np.array([_conv1x1(module.f_seg, z[:, i]) @ _conv1x1(module.g_seg, z[:, j]) for i in range(n)])
            b_fea, b_seg = _softmax_row(s_fea), _softmax_row(s_seg)
            beta = np.zeros(n)
            for i in range(n):
                total = b_seg[i] + b_fea[i]
                wgt = abs(b_seg[i] - b_fea[i]) / total if total > 0 else 0.0
                beta[i] = wgt * b_seg[i] + (1 - wgt) * b_fea[i]
            beta /= beta.sum()
            rows[:, b, j] = b_fea, b_seg, beta
            for i in range(n):
                o[b, :, j] += beta[i] * _conv1x1(module.h, xs[:, i])
    return o.reshape(b_count, c, h, w), rows


def literal_fa(module, x):
    x = _np(x)
    b_count, c, h, w = x.shape
    n = h * w
    o = np.zeros((b_count, c, n))
    for b in range(b_count):
        xs = x[b].reshape(c, n)
        for j in range(n):
            s = np.array([_conv1x1(module.f_fea, xs[:, i]) @ _conv1x1(module.g_fea, xs[:, j]) for i in range(n)])
            beta = _softmax_row(s)
            for i in range(n):
                o[b, :, j] += beta[i] * _conv1x1(module.h, xs[:, i])
    return o.reshape(b_count, c, h, w)


def _rel_err(a, ref):
    return float(np.abs(np.asarray(a, dtype=np.float64) - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("one_hot", [False, True])
def test_spsa_matches_literal_equations(one_hot):
    module = _randomise(SPSA(16))
    x, seg = _inputs(one_hot=one_hot)
    ref_o, _ = literal_spsa(module, x, seg)
    with torch.no_grad():
        o = module.attend(x, seg)
        y = module(x, seg)
    assert o.dtype == torch.float32
    assert _rel_err(o, ref_o) < 1e-6
    assert _rel_err(y, _np(x) + 0.7 * ref_o) < 1e-6
    o_grad = module.attend(x, seg)  # with autograd recording: the out-of-place path
    assert _rel_err(o_grad.detach(), ref_o) < 1e-6
    with torch.no_grad():  # the same module in float64 agrees to rounding
        o64 = module.double().attend(x.double(), seg.double())
    assert _rel_err(o64, ref_o) < 1e-10


def test_spsa_attention_is_not_trivial():
    """Guard for the test above: the rows are far from uniform and the two maps differ."""
    module = _randomise(SPSA(16))
    x, seg = _inputs()
    _, rows = literal_spsa(module, x, seg)
    n = rows.shape[-1]
    assert rows[0].max() > 2 / n and rows[1].max() > 2 / n
    assert np.abs(rows[0] - rows[1]).max() > 0.3


def test_attention_rows_match_literal():
    module = _randomise(SPSA(16))
    x, seg = _inputs()
    _, rows = literal_spsa(module, x, seg)
    queries = [0, 5, (2, 3)]  # (2, 3) is flat index 2 * 4 + 3 = 11
    betas = module.attention_rows(x, seg, queries)
    for got, ref in zip(betas, rows):
        assert got.shape == (2, 3, 3, 4)
        ref_sel = ref[:, [0, 5, 11]].reshape(2, 3, 3, 4)
        assert _rel_err(got, ref_sel) < 1e-6
        assert torch.allclose(got.sum(dim=(2, 3)), torch.ones(2, 3))
    with pytest.raises(ValueError, match="outside"):
        module.attention_rows(x, seg, [12])
    with pytest.raises(ValueError, match="outside"):
        module.attention_rows(x, seg, [(3, 0)])


@pytest.mark.parametrize("rows", [1, 5, 7, 11])
def test_chunked_equals_direct(rows):
    module = _randomise(SPSA(16))
    x, seg = _inputs()
    with torch.no_grad():
        direct = module(x, seg, chunk_rows=12)
        chunked = module(x, seg, chunk_rows=rows)
    assert _rel_err(chunked, _np(direct)) < 1e-6


def test_chunk_size_follows_memory_budget():
    module = _randomise(SPSA(16))
    x, seg = _inputs(h=8, w=8)
    n = 64
    assert module.rows_per_chunk(2, n) == n  # default budget: the direct form
    module.max_bytes = 2 * n * 4 * SPSA.MAPS_PER_ROW * 5  # room for five rows per chunk
    assert module.rows_per_chunk(2, n) == 5
    with torch.no_grad():
        auto = module(x, seg)
        direct = module(x, seg, chunk_rows=n)
    assert _rel_err(auto, _np(direct)) < 1e-6
    # At N = 128 x 128 the default budget (512 MiB) chunks; each chunk's maps stay under it.
    rows = rows_per_chunk(1, 16384, 16384, 512 * 2**20, SPSA.MAPS_PER_ROW)
    assert rows < 16384 and rows * 16384 * 4 * SPSA.MAPS_PER_ROW <= 512 * 2**20


def test_gradients_reach_every_parameter_and_chunks_agree():
    x, seg = _inputs()
    grads = {}
    for rows in (12, 5):  # direct, then chunked with recomputation (checkpointing)
        module = _randomise(SPSA(16))
        xr = x.clone().requires_grad_(True)
        (module(xr, seg, chunk_rows=rows) ** 2).sum().backward()
        grads[rows] = {name: p.grad.clone() for name, p in module.named_parameters()}
        grads[rows]["x"] = xr.grad.clone()
    names = {name for name, _ in SPSA(16).named_parameters()}
    assert {
        "alpha",
        "gamma",
        "transform.weight",
        "transform.bias",
        "h.weight",
        "f_seg.weight",
    } <= names
    for name, g in grads[12].items():
        assert torch.isfinite(g).all() and g.abs().max() > 0, name
        assert _rel_err(grads[5][name], _np(g)) < 1e-5, name


def test_gamma_starts_at_zero_and_gets_a_gradient():
    module = SPSA(16)
    x, seg = _inputs()
    assert float(module.gamma.detach()) == 0.0 and not bool(module.alpha_initialised)
    y = module(x, seg)
    assert torch.equal(y, x)  # identity at initialisation
    y.pow(2).sum().backward()
    assert module.gamma.grad.abs() > 0


def test_init_alpha_is_the_ratio_of_mean_magnitudes():
    module = SPSA(16)
    x, seg = _inputs()
    alpha = module.init_alpha(x, seg)
    t = torch.nn.functional.conv2d(
        seg.double(),
        module.transform.weight.detach().double(),
        module.transform.bias.detach().double(),
        stride=4,
    )
    expected = x.double().abs().mean() / t.abs().mean()
    assert math.isclose(alpha, float(expected), rel_tol=1e-6)
    assert math.isclose(float(module.alpha.detach()), alpha, rel_tol=1e-7)
    assert bool(module.alpha_initialised)
    assert "alpha_initialised" in module.state_dict()


def test_combine_defines_w_zero_where_both_maps_underflow():
    beta_fea = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    beta_seg = torch.tensor([[0.0, 1.0, 0.0], [0.25, 0.25, 0.5]])
    got = combine_attention(beta_fea, beta_seg)
    # Literal eq. 5-6: w = |s - f| / (s + f), 0 where s = f = 0;
    # beta = w s + (1 - w) f, renormalised.
    expected = []
    for fr, sr in zip(beta_fea.tolist(), beta_seg.tolist()):
        row = []
        for f, s in zip(fr, sr):
            w = abs(s - f) / (s + f) if s + f > 0 else 0.0
            row.append(w * s + (1 - w) * f)
        expected.append([v / sum(row) for v in row])
    assert torch.allclose(got, torch.tensor(expected), atol=1e-7)
    assert torch.isfinite(got).all()


def test_large_scores_underflow_without_nan():
    module = _randomise(SPSA(16), scale=30.0)  # scores of order 1e4: most exp() are exactly 0
    x, seg = _inputs(h=6, w=6)
    betas = module.attention_rows(x, seg, range(36))
    assert ((betas[0] == 0) & (betas[1] == 0)).any()  # the 0/0 case of eq. 5 occurs
    with torch.no_grad():
        y = module(x, seg)
    assert torch.isfinite(y).all()
    assert torch.allclose(betas[2].sum(dim=(2, 3)), torch.ones(2, 36))


def test_autocast_keeps_attention_in_float32():
    module = _randomise(SPSA(16))
    x, seg = _inputs()
    x16 = x.bfloat16()
    with torch.no_grad():
        ref = module.attend(x16.float(), seg)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            o = module.attend(x16, seg)
            y = module(x16, seg)
    assert o.dtype == torch.float32 and y.dtype == torch.bfloat16
    assert _rel_err(o, _np(ref)) < 1e-6


def test_seg_shape_is_checked():
    module = SPSA(16)
    x, seg = _inputs()
    with pytest.raises(ValueError, match="seg must be"):
        module(x, seg[:, :, :-4])
    with pytest.raises(ValueError, match="seg must be"):
        module(x, None)


def test_feature_attention_matches_literal_and_chunks():
    module = _randomise(FeatureAttention(16))
    x, _ = _inputs()
    ref = literal_fa(module, x)
    with torch.no_grad():
        assert _rel_err(module.attend(x), ref) < 1e-6
        assert _rel_err(module.attend(x, chunk_rows=5), ref) < 1e-6
        assert _rel_err(module(x), _np(x) + 0.7 * ref) < 1e-6
    assert float(FeatureAttention(16).gamma.detach()) == 0.0
    assert torch.equal(FeatureAttention(16)(x), x)
