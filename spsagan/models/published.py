"""Load published x4 SR generators (ESRGAN, BasicSR, SFTGAN releases) by recognising their key layout.

`load_published(path) -> (model, info)` reads a weights file with `torch.load(weights_only=True)`,
strips DataParallel's `module.` prefixes, unwraps BasicSR's `params_ema` / `params` (params_ema
preferred), recognises the layout from the keys, infers the sizes from the shapes, and returns the
network in eval mode. Call convention of every returned model:

    sr = model(lq)          # info["needs_seg"] is False
    sr = model(lq, seg)     # info["needs_seg"] is True (the SFTGAN nets)

lq (B, 3, h, w) RGB in [0, 1]; seg (B, 8, 4h, 4w) class probabilities in this project's channel
order (`spsagan.segmentation.classes`); sr (B, 3, 4h, 4w), RGB, not clamped.

Layouts (`info["arch"]`), and where their key names come from:

- `esrgan_rrdbnet`: ESRGAN's `RRDBNet_arch.py` (xinntao/ESRGAN; RRDB_ESRGAN_x4.pth, RRDB_PSNR_x4.pth):
  conv_first, RRDB_trunk.{b}.RDB{r}.conv{k}, trunk_conv, upconv1, upconv2, HRconv, conv_last.
- `esrgan_rrdbnet_2018`: ESRGAN's first release (`architecture.py` / `block.py`, one flat
  `model` Sequential), as mapped by ESRGAN's `transer_RRDB_models.py`: model.0 (conv_first),
  model.1.sub.{b}.RDB{r}.conv{k}.0, model.1.sub.{nb} (trunk conv), model.3 / model.6 (upconvs after
  the Upsample layers model.2 / model.5), model.8 (HR conv), model.10 (last conv).
- `basicsr_rrdbnet`: BasicSR's `RRDBNet` (ESRGAN_SRx4_DF2KOST_official-ff704c30.pth, Real-ESRGAN
  x4 files), the names our `RRDBNet` uses.
  These three are the same network (LReLU 0.2, residual scaling 0.2, nearest x2 twice) and load
  strictly into `spsagan.models.rrdb.RRDBNet`, so the model returned IS ours (`model.arch` works).
- `basicsr_msrresnet`: BasicSR's `MSRResNet` (`srresnet_arch.py`; MSRResNet_x4, MSRGAN_x4 files):
  `MSRResNet` below.
- `sftgan`: SFTGAN's PyTorch-trained `SFT_Net` (xinntao/SFTGAN `pytorch_test/architectures.py`,
  also BasicSR's old `sft_arch.py`; SFTGAN_noBN_OST_bg.pth, called SFTGAN_bicx4_noBN_OST_bg.pth in
  BasicSR's model zoo): `SFTNet(variant="pytorch")`.
- `sftgan_torch`: SFTGAN's `SFT_Net_torch`, the Torch7 model of the paper converted to PyTorch
  (SFTGAN_torch.pth, sft_net_torch.pth in BasicSR). Same key names as `sftgan`
  (conv0, sft_branch, HR_branch, CondNet); it differs in its HR branch indices (an Upsample layer
  first, so the convs are HR_branch.1/4/6/8 instead of 0/3/6/8), which is how it is told apart.

Colour order and class order, checked in the projects' test scripts: ESRGAN's `test.py` (both
versions) and SFTGAN's `test_sftgan.py` read BGR with OpenCV and convert to RGB (`img[:, :, [2, 1, 0]]`)
before the network, and convert the RGB output back to BGR to save; SFTGAN's Torch test reads RGB
with `image.load`. So all these networks take and return RGB and no conversion is needed. SFTGAN's
segmentation channel order (the look-up table of its `test_segmentation.py`) is the one this project
uses; `SFTNet` still maps `CLASSES` onto `SFTGAN_CLASSES` by name, so the two cannot drift apart.

An unrecognised file raises `ConfigError` (a ValueError) with a one-line message naming
the file, the recognised layouts and the first keys that did not fit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from spsagan.data.assets import PUBLISHED_WEIGHTS
from spsagan.errors import ConfigError
from spsagan.models.rrdb import RRDBNet
from spsagan.segmentation.classes import CLASSES

LAYOUTS: dict[str, str] = {
    "esrgan_rrdbnet": "ESRGAN RRDBNet_arch.py (RRDB_trunk, trunk_conv, upconv1, HRconv)",
    "esrgan_rrdbnet_2018": "ESRGAN 2018 architecture.py (model.0, model.1.sub.N.RDBk)",
    "basicsr_rrdbnet": "BasicSR RRDBNet (body.N.rdbk, conv_body, conv_up1)",
    "basicsr_msrresnet": "BasicSR MSRResNet (body.N.conv1, upconv1, conv_hr)",
    "sftgan": "SFTGAN SFT_Net (sft_branch, CondNet, pixel-shuffle HR_branch)",
    "sftgan_torch": "SFTGAN SFT_Net_torch (sft_branch, CondNet, nearest-upsample HR_branch)",
}

# SFTGAN's OutdoorSceneSeg channel order (SFTGAN test_segmentation.py look-up table).
SFTGAN_CLASSES = ("background", "sky", "water", "grass", "mountain", "building", "plant", "animal")

SHOWN_KEYS = 5  # how many offending keys an error message lists


# --------------------------------------------------------------------------------------------------
# BasicSR MSRResNet (SRResNet / SRGAN generator)


class ResidualBlockNoBN(nn.Module):
    """EDSR-style residual block without BN: x + conv2(relu(conv1(x))) (residual scale 1)."""

    def __init__(self, num_feat: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """BasicSR's modified SRResNet (Ledig et al. 2017, no BN), x4.

    conv_first + LReLU 0.1 -> num_block residual blocks (no long skip) -> 2 x (conv C -> 4C,
    PixelShuffle(2), LReLU 0.1) -> conv_hr + LReLU 0.1 -> conv_last, plus a bilinear x4 upsampling
    of the input (align_corners=False).

    forward(lq): lq (B, num_in_ch, h, w) in [0, 1] -> sr (B, num_out_ch, 4h, 4w), not clamped.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16):
        super().__init__()
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat) for _ in range(num_block)])
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        out = self.body(F.leaky_relu(self.conv_first(lq), 0.1))
        for conv in (self.upconv1, self.upconv2):
            out = F.leaky_relu(F.pixel_shuffle(conv(out), 2), 0.1)
        out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.1))
        return out + F.interpolate(lq, scale_factor=4, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------------
# SFTGAN (Wang et al. 2018, "Recovering realistic texture in image super-resolution by deep spatial
# feature transform")


class SFTLayer(nn.Module):
    """Spatial feature transform: out = x * (scale + offset) + shift, per element.

    scale = SFT_scale_conv1(LReLU(SFT_scale_conv0(cond))), shift likewise with the shift convs
    (1x1 convs cond_feat -> hidden -> num_feat). SFT_Net: LReLU 0.1, offset 1 (the layer starts
    near the identity); SFT_Net_torch: LReLU 0.01, offset 0.

    forward(x, cond): x (B, num_feat, h, w), cond (B, cond_feat, h, w) -> (B, num_feat, h, w).
    """

    def __init__(
        self, num_feat: int = 64, cond_feat: int = 32, hidden: int = 32, slope: float = 0.1, offset: float = 1.0
    ):
        super().__init__()
        # Attribute names are SFTGAN's, so that its state dicts load as they are.
        self.SFT_scale_conv0 = nn.Conv2d(cond_feat, hidden, 1)
        self.SFT_scale_conv1 = nn.Conv2d(hidden, num_feat, 1)
        self.SFT_shift_conv0 = nn.Conv2d(cond_feat, hidden, 1)
        self.SFT_shift_conv1 = nn.Conv2d(hidden, num_feat, 1)
        self.slope, self.offset = slope, offset

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale = self.SFT_scale_conv1(F.leaky_relu(self.SFT_scale_conv0(cond), self.slope))
        shift = self.SFT_shift_conv1(F.leaky_relu(self.SFT_shift_conv0(cond), self.slope))
        return x * (scale + self.offset) + shift


class ResBlockSFT(nn.Module):
    """SFTGAN residual block: x + conv1(sft1(relu(conv0(sft0(x))))) in SFT_Net;
    x + conv1(relu(sft1(conv0(relu(sft0(x)))))) in SFT_Net_torch (ReLU after each SFT instead)."""

    def __init__(self, num_feat: int, cond_feat: int, hidden: int, torch_variant: bool):
        super().__init__()
        slope, offset = (0.01, 0.0) if torch_variant else (0.1, 1.0)
        self.sft0 = SFTLayer(num_feat, cond_feat, hidden, slope, offset)
        self.conv0 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.sft1 = SFTLayer(num_feat, cond_feat, hidden, slope, offset)
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.torch_variant = torch_variant

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.torch_variant:
            fea = self.conv0(F.relu(self.sft0(x, cond)))
            fea = self.conv1(F.relu(self.sft1(fea, cond)))
        else:
            fea = F.relu(self.conv0(self.sft0(x, cond)))
            fea = self.conv1(self.sft1(fea, cond))
        return x + fea


class SFTNet(nn.Module):
    """SFTGAN's generator, x4: `SFT_Net` (variant "pytorch") or `SFT_Net_torch` (variant "torch").

    CondNet: conv num_classes -> cond_hidden (4x4, stride 4: HR grid -> LR grid), LReLU 0.1, three
    1x1 convs cond_hidden -> cond_hidden with LReLU 0.1, 1x1 conv -> cond_feat: the shared condition.
    Trunk: conv0 3 -> C; sft_branch = num_block ResBlockSFT, an SFTLayer and a conv; long skip.
    HR_branch: 2 x (conv C -> 4C, PixelShuffle(2), ReLU) for "pytorch", 2 x (nearest x2, conv C -> C,
    ReLU) for "torch"; then conv C -> C, ReLU, conv C -> 3. Defaults are the published sizes.

    forward(lq, seg): lq (B, 3, h, w) RGB in [0, 1]; seg (B, 8, 4h, 4w) probabilities in this
    project's channel order (mapped onto SFTGAN's by name) -> sr (B, 3, 4h, 4w), not clamped.
    """

    def __init__(
        self,
        num_feat: int = 64,
        num_block: int = 16,
        cond_feat: int = 32,
        cond_hidden: int = 128,
        sft_hidden: int = 32,
        num_classes: int = 8,
        variant: str = "pytorch",
    ):
        super().__init__()
        if variant not in ("pytorch", "torch"):
            raise ValueError(f"variant must be 'pytorch' or 'torch', got {variant!r}")
        if num_classes != len(CLASSES):
            raise ValueError(
                f"SFTNet: the condition has {num_classes} channels; this project's maps have {len(CLASSES)}"
            )
        torch_variant = variant == "torch"
        self.variant, self.num_block = variant, num_block
        self.conv0 = nn.Conv2d(3, num_feat, 3, 1, 1)
        last_sft = SFTLayer(num_feat, cond_feat, sft_hidden, *((0.01, 0.0) if torch_variant else (0.1, 1.0)))
        # A ModuleList rather than SFTGAN's Sequential of (fea, cond) tuples: the same state-dict names.
        self.sft_branch = nn.ModuleList(
            [ResBlockSFT(num_feat, cond_feat, sft_hidden, torch_variant) for _ in range(num_block)]
            + [last_sft, nn.Conv2d(num_feat, num_feat, 3, 1, 1)]
        )
        self.HR_branch = nn.Sequential(
            *_up_x2(num_feat, torch_variant),
            *_up_x2(num_feat, torch_variant),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(num_feat, 3, 3, 1, 1),
        )
        cond = [nn.Conv2d(num_classes, cond_hidden, 4, 4), nn.LeakyReLU(0.1)]
        for _ in range(3):
            cond += [nn.Conv2d(cond_hidden, cond_hidden, 1), nn.LeakyReLU(0.1)]
        self.CondNet = nn.Sequential(*cond, nn.Conv2d(cond_hidden, cond_feat, 1))
        # Channel k of SFTGAN's condition is our channel perm[k]; None when the orders agree.
        perm = [CLASSES.index(name) for name in SFTGAN_CLASSES]
        self._perm = None if perm == list(range(len(perm))) else perm

    def forward(self, lq: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        if seg is None:
            raise ValueError("SFTGAN generators need the segmentation prior: forward(lq, seg), seg (B, 8, 4h, 4w)")
        b, _, h, w = lq.shape
        if tuple(seg.shape) != (b, len(CLASSES), 4 * h, 4 * w):
            raise ValueError(
                f"seg must be (B, 8, 4h, 4w) = ({b}, {len(CLASSES)}, {4 * h}, {4 * w}) for lq "
                f"{tuple(lq.shape)}, got {tuple(seg.shape)}"
            )
        if self._perm is not None:
            seg = seg[:, self._perm]
        cond = self.CondNet(seg)
        fea = self.conv0(lq)
        res = fea
        for block in self.sft_branch[: self.num_block]:
            res = block(res, cond)
        res = self.sft_branch[self.num_block + 1](self.sft_branch[self.num_block](res, cond))
        return self.HR_branch(fea + res)


def _up_x2(num_feat: int, torch_variant: bool) -> list[nn.Module]:
    """One x2 stage of SFTGAN's HR branch (3 Sequential slots, so the conv indices match its files)."""
    if torch_variant:
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU()]
    return [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2), nn.ReLU()]


# --------------------------------------------------------------------------------------------------
# Key maps between our RRDBNet names and the ESRGAN layouts


def esrgan_key(key: str) -> str:
    """Our (BasicSR) RRDBNet state-dict key -> ESRGAN RRDBNet_arch.py's key."""
    if m := re.fullmatch(r"body\.(\d+)\.rdb(\d)\.(conv\d\.(?:weight|bias))", key):
        return f"RRDB_trunk.{m[1]}.RDB{m[2]}.{m[3]}"
    head, _, param = key.partition(".")
    names = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
    return f"{names.get(head, head)}.{param}"


def esrgan_2018_key(key: str, num_block: int) -> str:
    """Our RRDBNet key -> ESRGAN's 2018 sequential key (transer_RRDB_models.py's map)."""
    if m := re.fullmatch(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)", key):
        return f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"
    head, _, param = key.partition(".")
    index = {
        "conv_first": "0",
        "conv_body": f"1.sub.{num_block}",
        "conv_up1": "3",
        "conv_up2": "6",
        "conv_hr": "8",
        "conv_last": "10",
    }[head]
    return f"model.{index}.{param}"


# --------------------------------------------------------------------------------------------------
# Reading and recognising


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_error(path: Path, problem: str, keys: list[str]) -> ConfigError:
    shown = ", ".join(keys[:SHOWN_KEYS]) + (f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else "")
    return ConfigError(
        _one_line(
            f"{path}: {problem}; keys that do not fit: {shown or '(none)'}; recognised layouts: {', '.join(LAYOUTS)}",
            limit=1000,
        )
    )


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The file's flat state dict (prefixes stripped) and the wrapper key it came from, if any."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickled modules, truncated files, non-torch files
        raise _format_error(
            path,
            f"cannot be read as a torch state dict with weights_only=True "
            f"({type(err).__name__}: {_one_line(err, 160)})",
            [],
        ) from err
    if not isinstance(obj, dict):
        raise _format_error(path, f"holds a {type(obj).__name__}, not a state dict", [])
    if "arch" in obj and "params_g" in obj:
        raise _format_error(
            path,
            "this is an spsagan pipeline checkpoint ('arch' + 'params_g'), not a published "
            "file: load it with spsagan.models.modelfile.load_generator",
            [],
        )
    wrapper = next((k for k in ("params_ema", "params") if isinstance(obj.get(k), dict)), None)
    if wrapper is not None:
        obj = obj[wrapper]
    state = {}
    for key, value in obj.items():
        name = str(key)
        while name.startswith("module."):  # DataParallel / DistributedDataParallel wrappers
            name = name[len("module.") :]
        state[name] = value
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise _format_error(path, "entries that are not tensors (not a flat state dict)", not_tensors)
    return state, wrapper


def _detect(state: dict) -> str | None:
    keys = list(state)
    if any(k.startswith("RRDB_trunk.") for k in keys):
        return "esrgan_rrdbnet"
    if any(k.startswith("model.1.sub.") for k in keys):
        return "esrgan_rrdbnet_2018"
    if any(re.match(r"body\.\d+\.rdb\d\.", k) for k in keys):
        return "basicsr_rrdbnet"
    if any(re.match(r"body\.\d+\.conv[12]\.", k) for k in keys) and "upconv1.weight" in keys:
        return "basicsr_msrresnet"
    if any(k.startswith("sft_branch.") for k in keys):
        return "sftgan_torch" if "HR_branch.1.weight" in state else "sftgan"
    return None


def _count(state: dict, pattern: str) -> int:
    """1 + the largest index N captured by `pattern` over the keys (0 when none match)."""
    found = [int(m[1]) for k in state if (m := re.match(pattern, k))]
    return 1 + max(found) if found else 0


# Per RRDB layout: first conv, last conv, the block-index pattern, block 0's first dense conv.
_RRDB_KEYS = {
    "esrgan_rrdbnet": ("conv_first", "conv_last", r"RRDB_trunk\.(\d+)\.", "RRDB_trunk.0.RDB1.conv1"),
    "esrgan_rrdbnet_2018": ("model.0", "model.10", r"model\.1\.sub\.(\d+)\.RDB", "model.1.sub.0.RDB1.conv1.0"),
    "basicsr_rrdbnet": ("conv_first", "conv_last", r"body\.(\d+)\.", "body.0.rdb1.conv1"),
}


def _hyper(state: dict, layout: str, path: Path) -> dict:
    """Sizes of the network, read from the shapes of a few defining tensors."""

    def dim(key: str, axis: int) -> int:
        if key not in state:
            raise _format_error(path, f"looks like {layout} but lacks {key}", [key])
        if state[key].dim() != 4:
            raise _format_error(path, f"looks like {layout} but {key} is not a conv weight", [key])
        return int(state[key].shape[axis])

    if layout in _RRDB_KEYS:
        first, last, blocks, conv1 = _RRDB_KEYS[layout]
        return dict(
            num_in_ch=dim(f"{first}.weight", 1),
            num_out_ch=dim(f"{last}.weight", 0),
            num_feat=dim(f"{first}.weight", 0),
            num_block=_count(state, blocks),
            num_grow_ch=dim(f"{conv1}.weight", 0),
        )
    if layout == "basicsr_msrresnet":
        return dict(
            num_in_ch=dim("conv_first.weight", 1),
            num_out_ch=dim("conv_last.weight", 0),
            num_feat=dim("conv_first.weight", 0),
            num_block=_count(state, r"body\.(\d+)\."),
        )
    num_block = _count(state, r"sft_branch\.(\d+)\.sft0\.")
    return dict(
        num_feat=dim("conv0.weight", 0),
        num_block=num_block,
        cond_feat=dim("CondNet.8.weight", 0),
        cond_hidden=dim("CondNet.0.weight", 0),
        num_classes=dim("CondNet.0.weight", 1),
        sft_hidden=dim(f"sft_branch.{num_block}.SFT_scale_conv0.weight", 0),
    )


def _build(layout: str, hyper: dict) -> tuple[nn.Module, Callable[[str], str]]:
    """The network for a layout and the map from its state-dict keys to the file's keys."""
    if layout in _RRDB_KEYS:
        model = RRDBNet(**hyper)
        if layout == "esrgan_rrdbnet":
            return model, esrgan_key
        if layout == "esrgan_rrdbnet_2018":
            return model, lambda key: esrgan_2018_key(key, hyper["num_block"])
        return model, lambda key: key
    if layout == "basicsr_msrresnet":
        return MSRResNet(**hyper), lambda key: key
    return SFTNet(**hyper, variant="torch" if layout == "sftgan_torch" else "pytorch"), lambda key: key


def load_published(path) -> tuple[nn.Module, dict]:
    """Rebuild a published x4 generator from its weights file (see the module docstring for layouts).

    Returns (model in eval mode on the CPU, info). info: "arch" (layout name), "needs_seg" (bool),
    "source" (the path), "weights_key" ("params_ema", "params" or None for a bare state dict) and
    the inferred sizes (num_feat, num_block, and num_grow_ch for RRDB / cond_feat ... for SFTGAN).
    Raises FileNotFoundError for a missing file, ConfigError for anything unrecognised.
    """
    path = Path(path)
    state, wrapper = _read_state(path)
    layout = _detect(state)
    if layout is None:
        raise _format_error(path, "not a recognised published x4 generator", list(state))
    hyper = _hyper(state, layout, path)
    if hyper.get("num_in_ch", 3) != 3 or hyper.get("num_out_ch", 3) != 3:
        first, last = _RRDB_KEYS.get(layout, ("conv_first", "conv_last"))[:2]
        raise _format_error(
            path,
            f"looks like {layout} but {first} / {last} take {hyper['num_in_ch']} -> "
            f"{hyper['num_out_ch']} channels; only x4 RGB generators (3 -> 3) are supported "
            "(BasicSR's x2 / x1 RRDBNet pixel-unshuffles its input to 12 / 48 channels)",
            [],
        )
    if hyper["num_block"] < 1:
        raise _format_error(path, f"looks like {layout} but has no blocks", list(state))
    try:
        model, file_key = _build(layout, hyper)
    except ValueError as err:
        raise _format_error(path, f"looks like {layout} but {err}", []) from err

    expected = {file_key(k): v.shape for k, v in model.state_dict().items()}
    unexpected = [k for k in state if k not in expected]
    missing = [k for k in expected if k not in state]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(s)})"
        for k, s in expected.items()
        if k in state and state[k].shape != s
    ]
    if unexpected or missing or wrong:
        parts = [
            f"{n} {what}"
            for n, what in (
                (len(unexpected), "unexpected"),
                (len(missing), "missing"),
                (len(wrong), "of the wrong shape"),
            )
            if n
        ]
        raise _format_error(
            path,
            f"looks like {layout} (sizes {hyper}) but has {', '.join(parts)} keys",
            unexpected + [f"missing {k}" for k in missing] + wrong,
        )
    model.load_state_dict({k: state[file_key(k)] for k in model.state_dict()}, strict=True)
    info = {
        "arch": layout,
        "needs_seg": layout in ("sftgan", "sftgan_torch"),
        "source": str(path),
        "weights_key": wrapper,
        **hyper,
    }
    return model.eval(), info


# Where each published file comes from (the asset registry), for the note that names a missing one.
SOURCES = PUBLISHED_WEIGHTS


def published_source(path) -> str:
    """Where a published weights file comes from (by file name), for messages about a missing file."""
    name = Path(path).name
    return (
        f"get it from {SOURCES[name]}" if name in SOURCES else "see docs/data.md for where published weights come from"
    )
