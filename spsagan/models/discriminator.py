"""VGG-style discriminator (SRGAN/ESRGAN), for 96 x 96 (SPSAGAN's HR crops) or 128 x 128 input.

Layout and parameter names follow BasicSR's `VGGStyleDiscriminator` (a 128 x 128 BasicSR state
dict loads strictly): conv0_0 3x3 (bias, no BN), then conv0_1 4x4/2 and pairs [3x3/1, 4x4/2] with
BN (convs without bias) at num_feat x (1, 2, 4, 8, 8) channels; LReLU 0.2 throughout. Five
stride-2 stages take 96 -> 3 (128 -> 4), then Linear(8 num_feat * s * s -> 100), LReLU, Linear -> 1.
The 96 variant is old BasicSR's Discriminator_VGG_96 layout (Linear 4608 -> 100 at num_feat 64).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

INPUT_SIZES = (96, 128)


class VGGStyleDiscriminator(nn.Module):
    """forward(img) -> logits: img (B, num_in_ch, S, S) in [0, 1] with S = input_size; (B, 1) raw
    logits (no sigmoid)."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 96):
        super().__init__()
        if input_size not in INPUT_SIZES:
            raise ValueError(f"input_size must be one of {INPUT_SIZES}, got {input_size}")
        self.input_size = input_size
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat)
        channels = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
        for s in range(1, 5):
            cin, cout = channels[s - 1], channels[s]
            setattr(self, f"conv{s}_0", nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            setattr(self, f"bn{s}_0", nn.BatchNorm2d(cout))
            setattr(self, f"conv{s}_1", nn.Conv2d(cout, cout, 4, 2, 1, bias=False))
            setattr(self, f"bn{s}_1", nn.BatchNorm2d(cout))
        side = input_size // 32
        self.linear1 = nn.Linear(num_feat * 8 * side * side, 100)
        self.linear2 = nn.Linear(100, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.dim() != 4 or img.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"discriminator input must be (B, C, {self.input_size}, {self.input_size}), got {tuple(img.shape)}"
            )
        feat = F.leaky_relu(self.conv0_0(img), 0.2)
        feat = F.leaky_relu(self.bn0_1(self.conv0_1(feat)), 0.2)
        for s in range(1, 5):
            for half in (0, 1):
                conv, bn = getattr(self, f"conv{s}_{half}"), getattr(self, f"bn{s}_{half}")
                feat = F.leaky_relu(bn(conv(feat)), 0.2)
        feat = F.leaky_relu(self.linear1(feat.flatten(1)), 0.2)
        return self.linear2(feat)
