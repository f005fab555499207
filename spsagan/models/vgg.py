"""Frozen VGG19 feature extractor for the perceptual loss (ESRGAN: conv5_4 before its ReLU).

Loads torchvision's ImageNet file (`vgg19-dcbb9e9d.pth`, a state dict with keys `features.N.*`
and `classifier.*`) without needing torchvision: the `features` stack is rebuilt here with the
same indices (conv5_4 = features.34). Input RGB in [0, 1], normalised with the ImageNet mean/std.
Without a weights file (offline demo) the network gets a seeded random init and says so in
`weights_label` (`vgg19-random-seed<k>`). `verify_weights(path)` checks a file against the asset
registry's entry (`vgg19`: torchvision's published sha256 prefix), as train_gan does before training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from spsagan.data.assets import get_asset
from spsagan.errors import ConfigError

# torchvision's VGG19 configuration "E": channels per conv, "M" = 2x2 max pool.
_CONFIG = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
    "M",
]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names() -> list[str]:
    """Names of features[0..36]: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..., pool5."""
    names, block, conv = [], 1, 1
    for item in _CONFIG:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def verify_weights(path, key: str = "train_gan.perceptual_weights") -> str:
    """The sha256 of torchvision's VGG19 file at `path`, checked against the registry (sha256 prefix).

    Raises ConfigError naming the file, the setting `key` that names it, and how to get the right one.
    """
    asset = get_asset("vgg19")
    path = Path(path)
    remedy = (
        f"run `make fetch` on a machine with internet (the login node), or download {asset.url} and put it at {path}"
    )
    if not path.is_file():
        raise ConfigError(f"{key}: VGG19 weights not found: {path}. To get them, {remedy}.")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    sha256 = digest.hexdigest()
    if not asset.checksum.matches(sha256):
        raise ConfigError(
            f"{path} ({key}): sha256 mismatch, expected {asset.checksum.describe()}, got {sha256}: "
            f"not torchvision's {asset.filename} (truncated, or another file). Delete it, then {remedy}."
        )
    return sha256


def random_label(seed: int = 0) -> str:
    """How a VGG19 with seeded random weights is named in model files and reports."""
    return f"vgg19-random-seed{seed}"


class VGG19FeatureExtractor(nn.Module):
    """forward(img) -> features: img (B, 3, H, W) RGB in [0, 1]; features of `layer`, e.g. conv5_4
    (B, 512, H/16, W/16), pre-activation. Frozen: no gradients to its weights, always in eval mode
    (gradients still flow to `img`).

    Args:
        weights: None (seeded random init) or the path of torchvision's vgg19 state dict file.
        layer: last layer kept (a name from `layer_names()`), default conv5_4.
        seed: the random init's seed when weights is None.
    """

    def __init__(self, weights=None, layer: str = "conv5_4", seed: int = 0):
        super().__init__()
        names = layer_names()
        if layer not in names:
            raise ValueError(f"unknown VGG19 layer {layer!r}; valid layers: {names}")
        self.layer = layer
        modules, cin = [], 3
        for item in _CONFIG:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(cin, item, 3, 1, 1), nn.ReLU(inplace=True)]
                cin = item
        self.features = nn.Sequential(*modules[: names.index(layer) + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        if weights is None:
            self._random_init(seed)
            self.weights_label = random_label(seed)
        else:
            self._load(Path(weights))
            self.weights_label = Path(weights).stem
        self.requires_grad_(False)
        self.eval()

    def _random_init(self, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        for m in self.features:
            if isinstance(m, nn.Conv2d):  # torchvision's VGG init
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                nn.init.zeros_(m.bias)

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: VGG19 weights not found (torchvision's vgg19-dcbb9e9d.pth "
                "from https://download.pytorch.org/models/vgg19-dcbb9e9d.pth)"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path}: cannot read as a torch state dict ({err})") from err
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected torchvision's VGG19 state dict, got {type(state).__name__}")
        wanted = {f"features.{k}" for k in self.features.state_dict()}
        missing = sorted(wanted - set(state))
        if missing:
            raise ValueError(f"{path}: not torchvision's VGG19 state dict format; missing {missing[:4]}")
        sub = {k[len("features.") :]: v for k, v in state.items() if k in wanted}
        try:
            self.features.load_state_dict(sub, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path}: VGG19 weights do not fit ({err})") from err

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: never leaves eval mode

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.features((img - self.mean) / self.std)
