"""SFTGAN's OutdoorSceneSeg: the segmentation network behind the paper's 8 probability maps.

Architecture (SFTGAN `pytorch_test/architectures.py`, rebuilt here from its layer list): a dilated
ResNet-101-like trunk with output stride 8, an 8-class head, a grouped x8 transposed convolution and a
softmax over channels. Every convolution of the trunk has no bias and is followed by BatchNorm.

    stem      conv3x3 3->64 /2, conv3x3 64->64, conv3x3 64->128, maxpool 3x3 /2 (ceil mode)
    conv2     Res131(128, 64, 256)   + 2 x Res131(256, 64, 256)
    conv3     Res131(256, 128, 512, stride 2) + 3 x Res131(512, 128, 512)
    conv4     Res131(512, 256, 1024, dilation 2) + 22 x Res131(1024, 256, 1024, dilation 2)
    conv5     Res131(1024, 512, 2048, dilation 4) + 2 x Res131(2048, 512, 2048, dilation 4)
    head      conv3x3 2048->512, Dropout(0.1), conv1x1 512->8 (with bias)
    deconv    ConvTranspose2d(8, 8, kernel 16, stride 8, padding 4, groups 8, no bias)
    softmax   over the 8 channels

State-dict layout, so that `segmentation_OST_bic.pth` loads with `strict=True` (SFTGAN flattens every
conv-BN-ReLU triple into one `nn.Sequential`, which fixes these indices):

    feature.0.weight (64, 3, 3, 3)      feature.1.*  BatchNorm(64)
    feature.3.weight (64, 64, 3, 3)     feature.4.*  BatchNorm(64)
    feature.6.weight (128, 64, 3, 3)    feature.7.*  BatchNorm(128)
    (feature.2/5/8 are ReLUs, feature.9 the max-pool: no parameters)
    feature.10 ... feature.42           the 33 Res131 blocks in the order above, each with
        res.0.weight (mid, in, 1, 1)    res.1.*  BatchNorm(mid)
        res.3.weight (mid, mid, 3, 3)   res.4.*  BatchNorm(mid)
        res.6.weight (out, mid, 1, 1)   res.7.*  BatchNorm(out)
        proj.0.weight (out, in, 1, 1)   proj.1.* BatchNorm(out)   (only the first block of a stage)
    feature.43.weight (512, 2048, 3, 3) feature.44.* BatchNorm(512)
    feature.47.weight (8, 512, 1, 1)    feature.47.bias (8,)
    deconv.weight (8, 1, 16, 16)

where BatchNorm(c).* is `weight`, `bias`, `running_mean`, `running_var` (all (c,)) and, for files
saved by PyTorch >= 0.4.1, `num_batches_tracked` (a scalar; PyTorch fills it in when absent).
Parameters: 52,068,296 (BatchNorm affine parameters included, running statistics not).

Input: the SFTGAN preprocessing of `preprocess_lq` (the LR's bicubic x4, BGR, 0..255 scale, minus the
Caffe means), with H and W multiples of 8. Output: probabilities in the channel order of
`spsagan.segmentation.classes.CLASSES`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spsagan.errors import ConfigError
from spsagan.image import imresize, make_lq, modcrop
from spsagan.segmentation.classes import CLASSES, NUM_CLASSES
from spsagan.segmentation.storage import pad_map

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
PARAMETER_COUNT = 52_068_296
WEIGHTS_FILE = "segmentation_OST_bic.pth"
RANDOM_WEIGHTS = "random"  # `weights` value for seeded random weights (`random_outdoor_scene_seg`)
WEIGHTS_SOURCES = (
    "SFTGAN project, folder 'pretrained_models' on Google Drive: "
    "https://drive.google.com/drive/folders/16owosaM_ADAm2FmVI9eKmuYzULVeBy7t",
    "or Baidu: https://pan.baidu.com/s/1stZurDwBouItgfrGsrMwdw",
)

# (in, mid, out, blocks, dilation, stride of the first block) for conv2 .. conv5
STAGES = (
    (128, 64, 256, 3, 1, 1),
    (256, 128, 512, 4, 1, 2),
    (512, 256, 1024, 23, 2, 1),
    (1024, 512, 2048, 3, 4, 1),
)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, dilation: int = 1, relu: bool = True):
    """Conv (no bias, 'same' padding also when dilated) + BatchNorm (+ ReLU), as a flat list."""
    padding = dilation * (kernel - 1) // 2
    layers = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class Res131(nn.Module):
    """Bottleneck block 1x1 -> 3x3 (stride, dilation) -> 1x1, with a projection when in != out.

    x: (B, in, H, W) -> (B, out, H / stride, W / stride); output = ReLU(shortcut + residual).
    """

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, dilation: int = 1, stride: int = 1):
        super().__init__()
        self.res = nn.Sequential(
            *_conv_bn(in_ch, mid_ch, 1),
            *_conv_bn(mid_ch, mid_ch, 3, stride=stride, dilation=dilation),
            *_conv_bn(mid_ch, out_ch, 1, relu=False),
        )
        self.proj = nn.Sequential(*_conv_bn(in_ch, out_ch, 1, stride=stride, relu=False)) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return torch.relu(shortcut + self.res(x))


class OutdoorSceneSeg(nn.Module):
    """SFTGAN's 8-class outdoor scene segmentation network (see the module docstring).

    forward(x): x (B, 3, H, W) float32, preprocessed by `preprocess_lq` (BGR minus Caffe means, about
    -124..152), H and W multiples of 8 -> (B, 8, H, W) probabilities summing to 1 over channels.
    """

    def __init__(self):
        super().__init__()
        layers = [*_conv_bn(3, 64, 3, stride=2), *_conv_bn(64, 64, 3), *_conv_bn(64, 128, 3)]
        layers.append(nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True))
        for in_ch, mid_ch, out_ch, blocks, dilation, stride in STAGES:
            layers.append(Res131(in_ch, mid_ch, out_ch, dilation, stride))
            layers += [Res131(out_ch, mid_ch, out_ch, dilation) for _ in range(blocks - 1)]
        layers += [*_conv_bn(2048, 512, 3), nn.Dropout(0.1), nn.Conv2d(512, NUM_CLASSES, 1)]
        self.feature = nn.Sequential(*layers)
        # A learned per-class x8 upsampler: output size = input size for H, W multiples of 8.
        self.deconv = nn.ConvTranspose2d(
            NUM_CLASSES, NUM_CLASSES, 16, stride=8, padding=4, groups=NUM_CLASSES, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"OutdoorSceneSeg expects a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        if height % 8 or width % 8 or height < 8 or width < 8:
            raise ValueError(
                f"OutdoorSceneSeg needs H and W multiples of 8 (>= 8), got {height}x{width}; mod-crop first"
            )
        return torch.softmax(self.deconv(self.feature(x)), dim=1)


def preprocess_lq(lq: np.ndarray) -> torch.Tensor:
    """OutdoorSceneSeg's input for one LR image: uint8 (h, w, 3) RGB or (h, w) gray -> float32 (3, H8, W8).

    SFTGAN's preprocessing (`test_segmentation.py`) on the bicubic x4 upsampling of the LR: RGB -> BGR;
    scale to [0, 1]; MATLAB bicubic x4 (float, no rounding or clipping); times 255; minus the Caffe
    means (103.939, 116.779, 123.68) per BGR channel; no division by a std. Then the mod-8 crop the
    network needs: H8, W8 = 4h, 4w rounded down to multiples of 8. Gray is replicated to 3 channels.
    SFTGAN downsamples a float HR instead; here the LR is the uint8 image the generator sees, so the
    pipeline and spsagan-upscale compute one prior (`spsagan.segmentation.run.prior_from_lq`).
    """
    lq = np.asarray(lq)
    if lq.dtype != np.uint8:
        raise ValueError(f"preprocess_lq expects a uint8 image, got {lq.dtype}")
    if lq.ndim == 2:
        lq = np.repeat(lq[:, :, None], 3, axis=2)
    if lq.ndim != 3 or lq.shape[2] != 3:
        raise ValueError(f"preprocess_lq expects an (h, w, 3) RGB or (h, w) gray image, got shape {lq.shape}")
    if lq.shape[0] < 2 or lq.shape[1] < 2:
        raise ValueError(
            f"LR image of {lq.shape[0]}x{lq.shape[1]} pixels is too small for OutdoorSceneSeg (needs >= 2x2, 8x8 at x4)"
        )
    bgr = lq[:, :, ::-1].astype(np.float64) / 255.0
    upsampled = modcrop(imresize(bgr, 4.0), 8) * 255.0
    upsampled -= np.asarray(CAFFE_MEAN_BGR)
    return torch.from_numpy(np.ascontiguousarray(upsampled.transpose(2, 0, 1), dtype=np.float32))


# --------------------------------------------------------------------------------------------------
# Weights


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _how_to_get(path: Path) -> str:
    return (
        f"Download {WEIGHTS_FILE} from the {WEIGHTS_SOURCES[0]} ({WEIGHTS_SOURCES[1]}) and place it at {path}. "
        f"No checksum is published for this file: it is verified by loading it strictly into OutdoorSceneSeg "
        f"and checking the parameter count ({PARAMETER_COUNT:,}). To pin your copy, run `sha256sum {path}` "
        f"and put the digest in params (make_seg_maps weights_sha256)."
    )


def load_outdoor_scene_seg(path: str | os.PathLike, sha256: str | None = None) -> tuple[OutdoorSceneSeg, str]:
    """Load `segmentation_OST_bic.pth` strictly; return (model in eval mode, the file's sha256).

    Raises ConfigError saying which file, where to get it and how to verify it when the file is
    missing, its sha256 differs from `sha256` (if given), it is not a state dict, or its keys/shapes
    are not OutdoorSceneSeg's.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"OutdoorSceneSeg weights not found: {path}. {_how_to_get(path)}")
    digest = file_sha256(path)
    if sha256 is not None and digest != str(sha256).strip().lower():
        raise ConfigError(
            f"{path}: sha256 is {digest}, but params expect {sha256}. The file is not the copy you pinned "
            f"(corrupt or a different download). {_how_to_get(path)}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a usable weights file"
        raise ConfigError(f"{path}: not a readable PyTorch weights file ({exc}). {_how_to_get(path)}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path}: expected a plain state dict of tensors (as SFTGAN saves it). {_how_to_get(path)}")
    model = OutdoorSceneSeg()
    _check_layout(path, state, model)
    model.load_state_dict(state, strict=True)
    count = sum(p.numel() for p in model.parameters())
    if count != PARAMETER_COUNT:  # cannot differ after a strict load; kept as the documented check
        raise ConfigError(f"{path}: {count:,} parameters, expected {PARAMETER_COUNT:,}. {_how_to_get(path)}")
    return model.eval(), digest


def _check_layout(path: Path, state: dict, model: OutdoorSceneSeg) -> None:
    """Compare keys and shapes before load_state_dict, to name the first mismatches plainly."""
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional, key=_key_order)
    unexpected = sorted(set(state) - set(expected), key=_key_order)
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} shape mismatches (first: {k} is {tuple(state[k].shape)}, "
            f"expected {tuple(expected[k].shape)})"
        )
    if problems:
        raise ConfigError(f"{path}: not OutdoorSceneSeg weights: {'; '.join(problems)}. {_how_to_get(path)}")


def _key_order(key: str):
    return [int(p) if p.isdigit() else p for p in key.split(".")]


def random_outdoor_scene_seg(seed: int) -> OutdoorSceneSeg:
    """OutdoorSceneSeg with PyTorch's default initialisation drawn from `seed`, in eval mode.

    A stand-in for rehearsing the paper profile without `segmentation_OST_bic.pth` (`weights: random`
    in params): the network, its input sizes, memory and speed are the real ones, but its maps mean
    nothing, so the segmenter labels them as a stand-in and as not semantic.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return OutdoorSceneSeg().eval()


# --------------------------------------------------------------------------------------------------
# Segmenter: HR images in, maps at HR size out


class OutdoorSceneSegmenter:
    """Runs OutdoorSceneSeg the SFTGAN way on the x4 bicubic upsampling of LR images; with the trained
    weights the maps are semantic (channel order CLASSES).

    segment_lq(images): list of uint8 (h, w, 3) RGB (or (h, w) gray) LR images -> list of float32
    (8, 4h, 4w) probabilities. Images of one size run as one batch. When 4h or 4w is not a multiple
    of 8, the mod-8 crop is segmented and the map padded to (4h, 4w) by edge replication.
    segment(images): HR images (H, W[, 3]) -> (8, H, W), the maps of their LR (`make_lq`), padded.
    """

    name = "outdoor_scene_seg"

    def __init__(
        self,
        model: OutdoorSceneSeg,
        weights_sha256: str | None,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ):
        """weights_sha256: the trained file's digest; None with `seed` for `random_outdoor_scene_seg`'s
        network, whose label names it as a stand-in and whose maps are not semantic."""
        self.model = model.eval()
        self.weights_sha256 = weights_sha256
        self.semantic = weights_sha256 is not None
        self.channel_names = CLASSES if self.semantic else tuple(f"cluster {k}" for k in range(NUM_CLASSES))
        if self.semantic:
            self.label = f"outdoor_scene_seg({WEIGHTS_FILE} sha256:{weights_sha256[:16]})"
        else:
            self.label = f"outdoor_scene_seg(random weights seed={seed}, rehearsal stand-in)"
        self.device = torch.device(device)
        self.model.to(self.device)

    def to(self, device: str | torch.device) -> OutdoorSceneSegmenter:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def segment_lq(self, images: list[np.ndarray]) -> list[np.ndarray]:
        if not images:
            return []
        if len({np.asarray(im).shape[:2] for im in images}) > 1:
            return [m for im in images for m in self.segment_lq([im])]
        batch = torch.stack([preprocess_lq(im) for im in images]).to(self.device)
        probs = self.model(batch).float().cpu().numpy()
        return [pad_map(p, 4 * np.asarray(im).shape[0], 4 * np.asarray(im).shape[1]) for p, im in zip(probs, images)]

    def segment(self, images: list[np.ndarray]) -> list[np.ndarray]:
        lqs = [make_lq(np.asarray(im), 4) for im in images]
        return [pad_map(m, *np.asarray(im).shape[:2]) for m, im in zip(self.segment_lq(lqs), images)]

    def meta(self) -> dict:
        return {
            "segmenter": self.name,
            "segmenter_label": self.label,
            "semantic": self.semantic,
            "weights_file": WEIGHTS_FILE if self.semantic else None,
            "weights_sha256": self.weights_sha256,
        }
