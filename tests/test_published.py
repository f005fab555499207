"""Published weights (ESRGAN, BasicSR, SFTGAN layouts) and export: recognition, reference forwards, errors.

Every state dict here is built in the test from the projects' documented key maps, with random weights;
the SFTGAN and MSRResNet outputs are checked against literal torch.nn.functional forwards on the
state-dict tensors, the RRDB layouts against our RRDBNet with the same weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spsagan import errors, export
from spsagan.errors import ConfigError
from spsagan.models.modelfile import load_generator, save_model
from spsagan.models.presets import build_generator, preset_arch
from spsagan.models.published import LAYOUTS, SFTLayer, load_published
from spsagan.models.rrdb import RRDBNet, full_mask

torch.set_num_threads(1)

NF, NB, GC = 8, 2, 4
SPEC_MASK = [[True], [True, True], [True, True, True], [True, False, True, True], [True, False, False, True, True]]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _lq(h=5, w=4, seed=0) -> torch.Tensor:
    return torch.rand(2, 3, h, w, generator=_gen(seed))


def _seg(h=5, w=4, seed=1) -> torch.Tensor:
    return torch.softmax(3 * torch.randn(2, 8, 4 * h, 4 * w, generator=_gen(seed)), dim=1)


def _rrdb(seed=0, **sizes) -> RRDBNet:
    torch.manual_seed(seed)
    model = RRDBNet(**{"num_feat": NF, "num_block": NB, "num_grow_ch": GC, **sizes})
    with torch.no_grad():  # non-zero biases, so every term counts
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Key maps written out from the projects' documentation


def esrgan_names(state: dict) -> dict:
    """Our names -> ESRGAN RRDBNet_arch.py (RRDB_trunk.b.RDBr.convk, trunk_conv, upconv1/2, HRconv)."""
    rename = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "body":  # body.b.rdbR.convK.param
            out[f"RRDB_trunk.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.{parts[4]}"] = value
        else:
            out[f"{rename.get(parts[0], parts[0])}.{parts[1]}"] = value
    return out


def esrgan_2018_names(state: dict, nb: int) -> dict:
    """Our names -> ESRGAN's 2018 flat Sequential, as in ESRGAN's transer_RRDB_models.py."""
    index = {
        "conv_first": "model.0",
        "conv_body": f"model.1.sub.{nb}",
        "conv_up1": "model.3",
        "conv_up2": "model.6",
        "conv_hr": "model.8",
        "conv_last": "model.10",
    }
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "body":
            out[f"model.1.sub.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.0.{parts[4]}"] = value
        else:
            out[f"{index[parts[0]]}.{parts[1]}"] = value
    return out


def msrresnet_state(nf=NF, nb=3, seed=2) -> dict:
    gen = _gen(seed)
    state = {}

    def conv(name, cout, cin, k=3):
        state[f"{name}.weight"] = 0.1 * torch.randn(cout, cin, k, k, generator=gen)
        state[f"{name}.bias"] = 0.1 * torch.randn(cout, generator=gen)

    conv("conv_first", nf, 3)
    for b in range(nb):
        conv(f"body.{b}.conv1", nf, nf)
        conv(f"body.{b}.conv2", nf, nf)
    conv("upconv1", 4 * nf, nf)
    conv("upconv2", 4 * nf, nf)
    conv("conv_hr", nf, nf)
    conv("conv_last", 3, nf)
    return state


def msrresnet_reference(state: dict, lq: torch.Tensor, nb: int) -> torch.Tensor:
    def conv(name, t):
        return F.conv2d(t, state[f"{name}.weight"], state[f"{name}.bias"], padding=1)

    feat = F.leaky_relu(conv("conv_first", lq), 0.1)
    for b in range(nb):
        feat = feat + conv(f"body.{b}.conv2", F.relu(conv(f"body.{b}.conv1", feat)))
    for name in ("upconv1", "upconv2"):
        feat = F.leaky_relu(F.pixel_shuffle(conv(name, feat), 2), 0.1)
    out = conv("conv_last", F.leaky_relu(conv("conv_hr", feat), 0.1))
    return out + F.interpolate(lq, scale_factor=4, mode="bilinear", align_corners=False)


def sft_state(torch_variant: bool, nf=NF, nb=NB, cond=4, cond_hidden=6, sft_hidden=5, gain=1.5, seed=3) -> dict:
    """SFTGAN's SFT_Net / SFT_Net_torch key names (pytorch_test/architectures.py), any widths.

    Weights have std gain / sqrt(fan_in), so that every branch visibly moves the output (gain 1.5 on
    the tiny net) without overflowing through 16 multiplicative blocks (gain 0.5 at the real sizes)."""
    gen = _gen(seed)
    state = {}

    def conv(name, cout, cin, k):
        state[f"{name}.weight"] = gain / (cin * k * k) ** 0.5 * torch.randn(cout, cin, k, k, generator=gen)
        state[f"{name}.bias"] = 0.3 * gain * torch.randn(cout, generator=gen)

    def sft(prefix):
        for kind in ("scale", "shift"):
            conv(f"{prefix}.SFT_{kind}_conv0", sft_hidden, cond, 1)
            conv(f"{prefix}.SFT_{kind}_conv1", nf, sft_hidden, 1)

    conv("conv0", nf, 3, 3)
    for b in range(nb):
        sft(f"sft_branch.{b}.sft0")
        conv(f"sft_branch.{b}.conv0", nf, nf, 3)
        sft(f"sft_branch.{b}.sft1")
        conv(f"sft_branch.{b}.conv1", nf, nf, 3)
    sft(f"sft_branch.{nb}")
    conv(f"sft_branch.{nb + 1}", nf, nf, 3)
    if torch_variant:  # Upsample, conv, ReLU, Upsample, conv, ReLU, conv, ReLU, conv
        conv("HR_branch.1", nf, nf, 3)
        conv("HR_branch.4", nf, nf, 3)
    else:  # conv, PixelShuffle, ReLU, conv, PixelShuffle, ReLU, conv, ReLU, conv
        conv("HR_branch.0", 4 * nf, nf, 3)
        conv("HR_branch.3", 4 * nf, nf, 3)
    conv("HR_branch.6", nf, nf, 3)
    conv("HR_branch.8", 3, nf, 3)
    conv("CondNet.0", cond_hidden, 8, 4)
    for i in (2, 4, 6):
        conv(f"CondNet.{i}", cond_hidden, cond_hidden, 1)
    conv("CondNet.8", cond, cond_hidden, 1)
    return state


def sft_reference(state: dict, lq: torch.Tensor, seg: torch.Tensor, nb: int, torch_variant: bool) -> torch.Tensor:
    def c1(name, t):
        return F.conv2d(t, state[f"{name}.weight"], state[f"{name}.bias"])

    def c3(name, t):
        return F.conv2d(t, state[f"{name}.weight"], state[f"{name}.bias"], padding=1)

    slope = 0.01 if torch_variant else 0.1

    def sft(prefix, x, cond):
        scale = c1(f"{prefix}.SFT_scale_conv1", F.leaky_relu(c1(f"{prefix}.SFT_scale_conv0", cond), slope))
        shift = c1(f"{prefix}.SFT_shift_conv1", F.leaky_relu(c1(f"{prefix}.SFT_shift_conv0", cond), slope))
        return x * scale + shift if torch_variant else x * (scale + 1) + shift

    cond = F.leaky_relu(F.conv2d(seg, state["CondNet.0.weight"], state["CondNet.0.bias"], stride=4), 0.1)
    for i in (2, 4, 6):
        cond = F.leaky_relu(c1(f"CondNet.{i}", cond), 0.1)
    cond = c1("CondNet.8", cond)
    fea = c3("conv0", lq)
    res = fea
    for b in range(nb):
        p = f"sft_branch.{b}"
        if torch_variant:
            t = c3(f"{p}.conv0", F.relu(sft(f"{p}.sft0", res, cond)))
            t = c3(f"{p}.conv1", F.relu(sft(f"{p}.sft1", t, cond)))
        else:
            t = F.relu(c3(f"{p}.conv0", sft(f"{p}.sft0", res, cond)))
            t = c3(f"{p}.conv1", sft(f"{p}.sft1", t, cond))
        res = res + t
    fea = fea + c3(f"sft_branch.{nb + 1}", sft(f"sft_branch.{nb}", res, cond))
    if torch_variant:
        for i in (1, 4):
            fea = F.relu(c3(f"HR_branch.{i}", F.interpolate(fea, scale_factor=2, mode="nearest")))
    else:
        for i in (0, 3):
            fea = F.relu(F.pixel_shuffle(c3(f"HR_branch.{i}", fea), 2))
    return c3("HR_branch.8", F.relu(c3("HR_branch.6", fea)))


def _save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


# --------------------------------------------------------------------------------------------------
# Recognition and outputs


@pytest.mark.parametrize("layout", ["esrgan_rrdbnet", "esrgan_rrdbnet_2018", "basicsr_rrdbnet"])
def test_rrdb_layouts_load_into_our_rrdbnet(tmp_path, layout):
    ref = _rrdb(num_block=3, num_feat=8, num_grow_ch=6)
    state = ref.state_dict()
    file_state = {
        "esrgan_rrdbnet": esrgan_names(state),
        "esrgan_rrdbnet_2018": esrgan_2018_names(state, 3),
        "basicsr_rrdbnet": state,
    }[layout]
    model, info = load_published(_save(tmp_path / "w.pth", file_state))
    assert isinstance(model, RRDBNet) and not model.training
    assert info["arch"] == layout and info["needs_seg"] is False and info["weights_key"] is None
    assert (info["num_feat"], info["num_block"], info["num_grow_ch"]) == (8, 3, 6)
    assert model.arch == ref.arch
    lq = _lq()
    with torch.no_grad():
        assert torch.allclose(model(lq), ref(lq), rtol=0, atol=1e-5)


def test_esrgan_2018_at_the_published_size_puts_the_trunk_conv_at_sub_23(tmp_path):
    state = {k: torch.zeros(v.shape) for k, v in RRDBNet().state_dict().items()}
    names = esrgan_2018_names(state, 23)
    assert "model.1.sub.23.weight" in names  # transer_RRDB_models.py: trunk_conv <- model.1.sub.23
    _, info = load_published(_save(tmp_path / "RRDB_ESRGAN_x4_old.pth", names))
    assert (info["arch"], info["num_feat"], info["num_block"], info["num_grow_ch"]) == (
        "esrgan_rrdbnet_2018",
        64,
        23,
        32,
    )


def test_msrresnet_matches_a_literal_forward(tmp_path):
    state = msrresnet_state(nb=3)
    model, info = load_published(_save(tmp_path / "MSRResNet_x4.pth", {"params": state}))
    assert info["arch"] == "basicsr_msrresnet" and info["needs_seg"] is False and info["weights_key"] == "params"
    assert (info["num_feat"], info["num_block"]) == (NF, 3)
    lq = _lq()
    with torch.no_grad():
        sr = model(lq)
    assert sr.shape == (2, 3, 20, 16)
    assert torch.allclose(sr, msrresnet_reference(state, lq, 3), rtol=0, atol=1e-5)


@pytest.mark.parametrize("torch_variant", [False, True])
def test_sft_nets_match_a_literal_forward(tmp_path, torch_variant):
    state = sft_state(torch_variant)
    model, info = load_published(_save(tmp_path / "sft.pth", state))
    assert info["arch"] == ("sftgan_torch" if torch_variant else "sftgan") and info["needs_seg"] is True
    assert (info["num_feat"], info["num_block"], info["cond_feat"], info["cond_hidden"], info["sft_hidden"]) == (
        NF,
        NB,
        4,
        6,
        5,
    )
    lq, seg = _lq(), _seg()
    with torch.no_grad():
        sr = model(lq, seg)
        ref = sft_reference(state, lq, seg, NB, torch_variant)
    assert sr.shape == (2, 3, 20, 16)
    assert torch.allclose(sr, ref, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"seg must be \(B, 8, 4h, 4w\)"):
        model(lq, seg[:, :, :-4])
    with pytest.raises(ValueError, match="segmentation prior"):
        model(lq, None)


@pytest.mark.parametrize("torch_variant", [False, True])
def test_sft_nets_at_the_published_sizes(tmp_path, torch_variant):
    state = sft_state(torch_variant, nf=64, nb=16, cond=32, cond_hidden=128, sft_hidden=32, gain=0.5)
    name = "SFTGAN_torch.pth" if torch_variant else "SFTGAN_noBN_OST_bg.pth"
    model, info = load_published(_save(tmp_path / name, state))
    assert (info["num_feat"], info["num_block"], info["cond_feat"], info["cond_hidden"]) == (64, 16, 32, 128)
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for v in state.values())
    lq, seg = _lq(2, 3), _seg(2, 3)
    with torch.no_grad():
        assert torch.allclose(model(lq, seg), sft_reference(state, lq, seg, 16, torch_variant), rtol=0, atol=1e-5)


@pytest.mark.parametrize("torch_variant", [False, True])
def test_sft_layer_per_element(torch_variant):
    """x * (scale + 1) + shift (SFT_Net) or x * scale + shift (SFT_Net_torch), with every 1x1 conv
    and LReLU computed element by element."""
    slope, offset = (0.01, 0.0) if torch_variant else (0.1, 1.0)
    torch.manual_seed(5)
    layer = SFTLayer(num_feat=2, cond_feat=3, hidden=2, slope=slope, offset=offset).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(1, 2, 2, 3, dtype=torch.float64)
    cond = torch.randn(1, 3, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        out = layer(x, cond)
    w = {k: v.detach() for k, v in layer.state_dict().items()}

    def conv1x1(name, vec):
        weight, bias = w[f"{name}.weight"], w[f"{name}.bias"]
        return [
            float(bias[o]) + sum(float(weight[o, i, 0, 0]) * vec[i] for i in range(len(vec)))
            for o in range(weight.shape[0])
        ]

    def lrelu(vec):
        return [v if v >= 0 else slope * v for v in vec]

    for yy in range(2):
        for xx in range(3):
            c_vec = [float(cond[0, k, yy, xx]) for k in range(3)]
            scale = conv1x1("SFT_scale_conv1", lrelu(conv1x1("SFT_scale_conv0", c_vec)))
            shift = conv1x1("SFT_shift_conv1", lrelu(conv1x1("SFT_shift_conv0", c_vec)))
            for c in range(2):
                feat = float(x[0, c, yy, xx])
                expected = feat * scale[c] + shift[c] if torch_variant else feat * (scale[c] + 1) + shift[c]
                assert abs(float(out[0, c, yy, xx]) - expected) < 1e-12


# --------------------------------------------------------------------------------------------------
# Wrappers and prefixes


def test_module_prefix_and_params_wrapper(tmp_path):
    ref = _rrdb()
    prefixed = {f"module.{k}": v for k, v in esrgan_names(ref.state_dict()).items()}
    model, info = load_published(_save(tmp_path / "dp.pth", prefixed))
    assert info["arch"] == "esrgan_rrdbnet"
    model2, info2 = load_published(
        _save(tmp_path / "p.pth", {"params": {f"module.{k}": v for k, v in ref.state_dict().items()}})
    )
    assert info2["arch"] == "basicsr_rrdbnet" and info2["weights_key"] == "params"
    lq = _lq()
    with torch.no_grad():
        assert torch.allclose(model(lq), ref(lq), rtol=0, atol=1e-5)
        assert torch.allclose(model2(lq), ref(lq), rtol=0, atol=1e-5)


def test_params_ema_is_preferred(tmp_path):
    ema, plain = _rrdb(seed=0), _rrdb(seed=1)
    obj = {"params": plain.state_dict(), "params_ema": ema.state_dict()}
    model, info = load_published(_save(tmp_path / "both.pth", obj))
    assert info["weights_key"] == "params_ema"
    lq = _lq()
    with torch.no_grad():
        assert torch.allclose(model(lq), ema(lq), rtol=0, atol=1e-5)
        assert not torch.allclose(model(lq), plain(lq), rtol=0, atol=1e-3)


# --------------------------------------------------------------------------------------------------
# Errors


def _one_line_error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_published(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert all(name in message for name in LAYOUTS)
    return message


def test_unknown_file_is_one_error_naming_layouts_and_keys(tmp_path):
    path = _save(tmp_path / "mystery.pth", {"encoder.weight": torch.zeros(2), "decoder.bias": torch.zeros(1)})
    message = _one_line_error(path)
    assert "encoder.weight" in message and "decoder.bias" in message
    assert issubclass(ConfigError, ValueError)


def test_near_miss_names_the_keys_that_do_not_fit(tmp_path):
    state = esrgan_names(_rrdb().state_dict())
    del state["HRconv.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["upconv2.weight"] = torch.zeros(NF, NF, 1, 1)
    message = _one_line_error(_save(tmp_path / "broken.pth", state))
    assert "esrgan_rrdbnet" in message and "extra.weight" in message and "missing HRconv.bias" in message
    assert "upconv2.weight (8, 8, 1, 1) (expected (8, 8, 3, 3))" in message


def test_other_files_are_refused_clearly(tmp_path):
    ours = tmp_path / "model.pt"
    save_model(ours, _rrdb(), preset="esrgan", step=1, params={}, segmenter=None)
    assert "load_generator" in _one_line_error(ours)
    text = tmp_path / "notes.pth"
    text.write_text("not a torch file\nsecond line\n")
    assert "weights_only" in _one_line_error(text)
    x2 = _rrdb().state_dict()
    x2["conv_first.weight"] = torch.zeros(NF, 12, 3, 3)  # BasicSR's x2 RRDBNet (pixel-unshuffled input)
    assert "12 -> 3 channels" in _one_line_error(_save(tmp_path / "x2.pth", {"params_ema": x2}))
    assert "holds a list" in _one_line_error(_save(tmp_path / "list.pth", [torch.zeros(1)]))
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_published(tmp_path / "absent.pth")


# --------------------------------------------------------------------------------------------------
# Export


def _checkpoint(path: Path, model: RRDBNet, preset: str = "esrgan") -> Path:
    save_model(path, model, preset=preset, step=1, params={"note": "test"}, segmenter=None)
    return path


def test_export_round_trip(tmp_path):
    ref = _rrdb(seed=4)
    ckpt = _checkpoint(tmp_path / "model.pt", ref)
    lq = _lq()
    with torch.no_grad():
        expected = ref(lq)

    esrgan_file = export.export_model(ckpt, "esrgan", tmp_path / "out" / "esrgan.pth")
    raw = torch.load(esrgan_file, weights_only=True)
    assert set(raw) == set(esrgan_names(ref.state_dict()))  # bare dict, ESRGAN names
    model, info = load_published(esrgan_file)
    assert info["arch"] == "esrgan_rrdbnet"
    with torch.no_grad():
        assert torch.allclose(model(lq), expected, rtol=0, atol=1e-6)

    basicsr_file = export.export_model(ckpt, "basicsr", tmp_path / "basicsr.pth")
    raw = torch.load(basicsr_file, weights_only=True)
    assert list(raw) == ["params"]
    RRDBNet(num_feat=NF, num_block=NB, num_grow_ch=GC).load_state_dict(raw["params"], strict=True)
    model, info = load_published(basicsr_file)
    assert (info["arch"], info["weights_key"]) == ("basicsr_rrdbnet", "params")
    with torch.no_grad():
        assert torch.allclose(model(lq), expected, rtol=0, atol=1e-6)


def test_export_accepts_an_all_keep_mask(tmp_path):
    torch.manual_seed(0)
    model = RRDBNet(num_feat=NF, num_block=1, num_grow_ch=GC, keep=full_mask())
    out = export.export_model(_checkpoint(tmp_path / "m.pt", model), "basicsr", tmp_path / "o.pth")
    assert load_published(out)[1]["num_block"] == 1


@pytest.mark.parametrize(
    "kind, message",
    [
        ("rrsb", "pruned RRSB \\(9 connections removed across 3 dense blocks"),
        ("+spsa", "SPSA"),
        ("+fa", "feature-attention"),
        ("spsagan", "SPSA"),
    ],
)
def test_export_refuses_what_the_layouts_cannot_express(tmp_path, kind, message):
    torch.manual_seed(0)
    if kind == "rrsb":
        model = RRDBNet(num_feat=NF, num_block=1, num_grow_ch=GC, keep=SPEC_MASK)
    else:
        keep = SPEC_MASK if kind == "spsagan" else None
        model = build_generator(preset_arch(kind, num_feat=NF, num_block=1, num_grow_ch=GC, keep=keep))
    ckpt = _checkpoint(tmp_path / "m.pt", model, preset="esrgan" if kind == "rrsb" else kind)
    for fmt in ("esrgan", "basicsr"):
        with pytest.raises(errors.ConfigError, match=message) as err:
            export.export_model(ckpt, fmt, tmp_path / f"{fmt}.pth")
        assert "\n" not in str(err.value) and fmt in str(err.value)
        assert not (tmp_path / f"{fmt}.pth").exists()


def test_cli_exit_codes(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "model.pt", _rrdb())
    out = tmp_path / "e.pth"
    assert export.main([str(ckpt), "--format", "esrgan", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    model, _ = load_generator(ckpt)
    assert load_published(out)[0].arch == model.arch

    spsa = _checkpoint(
        tmp_path / "spsa.pt",
        build_generator(preset_arch("+spsa", num_feat=NF, num_block=1, num_grow_ch=GC)),
        preset="+spsa",
    )
    cases = [
        [str(spsa), "--format", "basicsr", "-o", str(tmp_path / "x.pth")],
        [str(tmp_path / "absent.pt"), "--format", "basicsr", "-o", str(tmp_path / "y.pth")],
        [str(ckpt), "--format", "basicsr", "-o", str(ckpt)],
    ]
    for argv in cases:
        assert export.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("spsagan-export: error: ") and err.count("\n") == 1
    assert load_generator(ckpt)[0].arch == model.arch  # not overwritten
    with pytest.raises(SystemExit) as exc:
        export.main([str(ckpt), "--format", "onnx", "-o", str(out)])
    assert exc.value.code == 2
