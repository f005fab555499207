"""RRDBNet / RRSB: ESRGAN structure, BasicSR names, masks, arch, presets, checkpoints, FLOPs."""

import json

import pytest
import torch
import torch.nn.functional as F

from spsagan.errors import ConfigError
from spsagan.models.flops import count_flops
from spsagan.models.modelfile import load_generator
from spsagan.models.presets import PRESETS, attention_parameters, build_generator, needs_seg, preset_arch
from spsagan.models.rrdb import RRDBNet, full_mask
from spsagan.pruning import arch_parameter_count

torch.set_num_threads(1)

# The SPEC's example: prunes x1 -> conv4, x1 -> conv5 and x2 -> conv5 (3 of the 6 candidates).
SPEC_MASK = [
    [True],
    [True, True],
    [True, True, True],
    [True, False, True, True],
    [True, False, False, True, True],
]
TINY = dict(num_feat=16, num_block=2, num_grow_ch=8)


def _seg(b, h, w, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(b, 8, 4 * h, 4 * w, generator=gen), dim=1)


def _lq(b=2, h=6, w=5, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def basicsr_rrdbnet_shapes(num_in_ch=3, num_out_ch=3, nf=64, nb=23, gc=32):
    """BasicSR's RRDBNet state-dict names and shapes, written out from its published layout."""
    shapes = {"conv_first.weight": (nf, num_in_ch, 3, 3), "conv_first.bias": (nf,)}
    for b in range(nb):
        for r in (1, 2, 3):
            for k in range(1, 6):
                cout = nf if k == 5 else gc
                shapes[f"body.{b}.rdb{r}.conv{k}.weight"] = (cout, nf + (k - 1) * gc, 3, 3)
                shapes[f"body.{b}.rdb{r}.conv{k}.bias"] = (cout,)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (nf, nf, 3, 3), (nf,)
    shapes["conv_last.weight"], shapes["conv_last.bias"] = (num_out_ch, nf, 3, 3), (num_out_ch,)
    return shapes


def esrgan_reference(state, lq, nb, mask=None):
    """ESRGAN's forward written with F.conv2d from a state dict (independent of the module)."""
    mask = mask or full_mask()
    conv = lambda name, t: F.conv2d(t, state[f"{name}.weight"], state[f"{name}.bias"], padding=1)  # noqa
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    fea = conv("conv_first", lq)
    trunk = fea
    for b in range(nb):
        rrdb_in = trunk
        for r in (1, 2, 3):
            feats = [trunk]
            for k in range(1, 6):
                inp = torch.cat([f for f, keep in zip(feats, mask[k - 1]) if keep], 1)
                out = conv(f"body.{b}.rdb{r}.conv{k}", inp)
                feats.append(lrelu(out) if k < 5 else out)
            trunk = feats[5] * 0.2 + feats[0]
        trunk = trunk * 0.2 + rrdb_in
    fea = fea + conv("conv_body", trunk)
    fea = lrelu(conv("conv_up1", F.interpolate(fea, scale_factor=2, mode="nearest")))
    fea = lrelu(conv("conv_up2", F.interpolate(fea, scale_factor=2, mode="nearest")))
    return conv("conv_last", lrelu(conv("conv_hr", fea)))


def test_default_parameter_count():
    assert sum(p.numel() for p in RRDBNet().parameters()) == 16_697_987
    assert arch_parameter_count(RRDBNet().arch) == 16_697_987


def test_basicsr_state_dict_loads_strictly():
    shapes = basicsr_rrdbnet_shapes()
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    model = RRDBNet()
    model.load_state_dict(state, strict=True)
    assert set(model.state_dict()) == set(shapes)
    assert torch.equal(model.body[22].rdb3.conv5.weight, state["body.22.rdb3.conv5.weight"])


def test_forward_matches_esrgan_reference():
    model = RRDBNet(**TINY)
    with torch.no_grad():  # non-zero biases so that every term is exercised
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    lq = _lq()
    with torch.no_grad():
        sr = model(lq)
        ref = esrgan_reference(model.state_dict(), lq, nb=2)
    assert sr.shape == (2, 3, 24, 20)
    assert torch.allclose(sr, ref, rtol=1e-5, atol=1e-6)


def test_dense_block_init_is_scaled_kaiming():
    model = RRDBNet()
    w = torch.cat([rdb.conv2.weight.flatten() for rdb in model.dense_blocks()])
    expected_std = 0.1 * (2 / (96 * 9)) ** 0.5  # Kaiming normal (fan_in 96 x 3 x 3) x 0.1
    assert abs(w.std().item() / expected_std - 1) < 0.02
    assert all(rdb.conv1.bias.abs().max() == 0 for rdb in model.dense_blocks())


def test_arch_round_trip_and_json():
    for keep in (None, SPEC_MASK, [SPEC_MASK, full_mask()] * 3):
        model = RRDBNet(**TINY, keep=keep, attention="spsa")
        arch = json.loads(json.dumps(model.arch))
        rebuilt = build_generator(arch)
        assert arch == model.arch and rebuilt.arch == model.arch
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
            k: v.shape for k, v in model.state_dict().items()
        }
    with pytest.raises(ValueError, match="unknown \\['depth'\\]"):
        build_generator({**RRDBNet(**TINY).arch, "depth": 3})
    with pytest.raises(ValueError, match="missing \\['keep'\\]"):
        build_generator({k: v for k, v in RRDBNet(**TINY).arch.items() if k != "keep"})


@pytest.mark.parametrize(
    "keep, message",
    [
        ([[True]] * 5, "entry 1"),
        (SPEC_MASK[:4], "list of 5 lists"),
        ([[False]] + SPEC_MASK[1:], "x0 is never pruned"),
        ([[1]] + SPEC_MASK[1:], "true/false"),
        ([SPEC_MASK] * 5, "one mask per dense block"),
    ],
)
def test_bad_masks_are_rejected(keep, message):
    with pytest.raises(ValueError, match=message):
        RRDBNet(**TINY, keep=keep)


def test_rrsb_convs_are_physically_smaller():
    model = RRDBNet(keep=SPEC_MASK)
    rdb = model.body[0].rdb1
    assert rdb.conv4.in_channels == 64 + 2 * 32 and rdb.conv5.in_channels == 64 + 2 * 32
    # Per dense block: conv4 loses 32 x 32 x 9 weights, conv5 loses 64 x 64 x 9; 69 dense blocks.
    expected = 16_697_987 - 69 * (32 * 32 * 9 + 64 * 64 * 9)
    assert expected == 13_518_467
    assert sum(p.numel() for p in model.parameters()) == expected == arch_parameter_count(model.arch)


def test_all_keep_mask_equals_rrdb():
    rrdb = RRDBNet(**TINY)
    rrsb = RRDBNet(**TINY, keep=full_mask())
    rrsb.load_state_dict(rrdb.state_dict(), strict=True)
    lq = _lq()
    with torch.no_grad():
        assert torch.equal(rrsb(lq), rrdb(lq))


def test_rrsb_matches_reference_with_its_mask():
    model = RRDBNet(**TINY, keep=SPEC_MASK)
    lq = _lq()
    with torch.no_grad():
        ref = esrgan_reference(model.state_dict(), lq, nb=2, mask=SPEC_MASK)
        assert torch.allclose(model(lq), ref, rtol=1e-5, atol=1e-6)


def test_attention_variants_shapes_and_seg_requirement():
    lq, seg = _lq(), _seg(2, 6, 5)
    for attention in (None, "fa", "spsa"):
        model = RRDBNet(**TINY, attention=attention)
        assert model(lq, seg).shape == (2, 3, 24, 20)
    with pytest.raises(ValueError, match="needs the"):
        RRDBNet(**TINY, attention="spsa")(lq)
    with pytest.raises(ValueError, match="attention must be one of"):
        RRDBNet(**TINY, attention="sagan")


def test_attention_sits_after_global_skip():
    """With gamma = 0 the attention variants equal the plain network on the same weights."""
    plain = RRDBNet(**TINY)
    lq, seg = _lq(), _seg(2, 6, 5)
    for attention in ("fa", "spsa"):
        model = RRDBNet(**TINY, attention=attention)
        model.load_state_dict(plain.state_dict(), strict=False)
        with torch.no_grad():
            assert torch.equal(model(lq, seg), plain(lq))
            model.attention.gamma.fill_(0.5)
            trunk = model.trunk_features(lq)
            expected_feat = model.attention(trunk, seg) if attention == "spsa" else model.attention(trunk)
            assert not torch.equal(model(lq, seg), plain(lq))
        # The layer's input is the trunk output after the global skip (conv_first + conv_body(...)).
        captured = {}
        model.attention.register_forward_hook(lambda m, args, out, store=captured: store.update(x=args[0], y=out))
        with torch.no_grad():
            model(lq, seg)
            assert torch.equal(captured["x"], trunk) and torch.equal(captured["y"], expected_feat)


def test_init_attention_sets_alpha_from_trunk_features():
    model = RRDBNet(**TINY, attention="spsa")
    lq, seg = _lq(), _seg(2, 6, 5)
    alpha = model.init_attention(lq, seg)
    assert alpha is not None and bool(model.attention.alpha_initialised)
    assert RRDBNet(**TINY).init_attention(lq, seg) is None


def test_presets():
    assert set(PRESETS) == {"esrgan", "+fa", "+spsa", "spsagan"}
    assert all(set(p) == {"attention", "pruned"} for p in PRESETS.values())
    assert [needs_seg(n) for n in ("esrgan", "+fa", "+spsa", "spsagan")] == [
        False,
        False,
        True,
        True,
    ]
    with pytest.raises(ConfigError, match="unknown generator preset 'srgan'"):
        needs_seg("srgan")
    with pytest.raises(ConfigError, match="connection mask"):
        preset_arch("spsagan", **TINY)
    arch = preset_arch("spsagan", **TINY, keep=SPEC_MASK)
    assert arch["attention"] == "spsa" and arch["keep"] == SPEC_MASK
    assert preset_arch("+fa", **TINY)["attention"] == "fa"
    with pytest.raises(ConfigError, match="takes no connection mask"):
        preset_arch("esrgan", **TINY, keep=SPEC_MASK)


def test_attention_parameters_group():
    model = RRDBNet(**TINY, attention="spsa")
    group = {id(p) for p in attention_parameters(model)}
    named = dict(model.named_parameters())
    for name in (
        "attention.alpha",
        "attention.gamma",
        "attention.transform.weight",
        "attention.h.bias",
        "attention.f_fea.weight",
        "attention.g_seg.bias",
    ):
        assert id(named[name]) in group
    assert id(named["conv_first.weight"]) not in group
    assert len(group) == sum(1 for n in named if n.startswith("attention."))
    assert attention_parameters(RRDBNet(**TINY)) == []


def test_checkpoint_round_trip(tmp_path):
    model = RRDBNet(**TINY, keep=SPEC_MASK, attention="spsa")
    model.init_attention(_lq(), _seg(2, 6, 5))
    with torch.no_grad():
        model.attention.gamma.fill_(0.3)
    path = tmp_path / "net_g.pth"
    torch.save(
        {
            "arch": model.arch,
            "params_g": model.state_dict(),
            "preset": "spsagan",
            "step": 7,
            "segmenter": "stand-in",
            "params": {"lr_g": 1e-4},
            "git_rev": None,
        },
        path,
    )
    loaded, ckpt = load_generator(path)
    assert ckpt["step"] == 7 and not loaded.training
    lq, seg = _lq(), _seg(2, 6, 5)
    with torch.no_grad():
        assert torch.equal(loaded(lq, seg), model.eval()(lq, seg))


def test_load_generator_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_generator(tmp_path / "missing.pth")
    basicsr = tmp_path / "esrgan.pth"
    torch.save({"params": RRDBNet(**TINY).state_dict()}, basicsr)
    with pytest.raises(ValueError, match="esrgan.pth: not an spsagan checkpoint"):
        load_generator(basicsr)
    bad = tmp_path / "bad.pth"
    model = RRDBNet(**TINY)
    torch.save({"arch": {**model.arch, "num_block": 1}, "params_g": model.state_dict()}, bad)
    with pytest.raises(ValueError, match="bad.pth: checkpoint does not rebuild"):
        load_generator(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: cannot read"):
        load_generator(junk)


def _analytic_macs(nf, nb, gc, h, w, mask=None, in_ch=3, out_ch=3):
    """MACs of the plain/pruned generator, layer by layer (3x3 convs: 9 x cin x cout per pixel)."""
    mask = mask or full_mask()
    widths = [nf] + [gc] * 4
    lr_px, hr2, hr4 = h * w, 4 * h * w, 16 * h * w
    dense = sum(
        9 * sum(wd for wd, keep in zip(widths, row) if keep) * (nf if k == 5 else gc)
        for k, row in enumerate(mask, start=1)
    )
    return (
        lr_px * (9 * in_ch * nf + 3 * nb * dense + 9 * nf * nf)
        + hr2 * 9 * nf * nf
        + hr4 * (2 * 9 * nf * nf + 9 * nf * out_ch)
    )  # conv_up2 and conv_hr run at 4x


def test_count_flops_matches_layer_arithmetic():
    assert count_flops(RRDBNet(**TINY), (1, 3, 8, 6)) == _analytic_macs(16, 2, 8, 8, 6)
    assert count_flops(RRDBNet(**TINY, keep=SPEC_MASK), (2, 3, 8, 6)) == 2 * _analytic_macs(16, 2, 8, 8, 6, SPEC_MASK)
    # SPSA adds its 1x1 convs (2 x (C x C/8) twice, C x C) and the 4x4 transform per LR pixel.
    extra = 8 * 6 * (4 * 16 * 2 + 16 * 16 + 8 * 16 * 16)
    assert count_flops(RRDBNet(**TINY, attention="spsa"), (1, 3, 8, 6)) == _analytic_macs(16, 2, 8, 8, 6) + extra
    full = count_flops(RRDBNet(), (1, 3, 32, 32))
    assert full == _analytic_macs(64, 23, 32, 32, 32)
