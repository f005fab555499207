"""Generator and discriminator losses of the GAN stage (ESRGAN's recipe, which SPSAGAN follows).

L_G = L_percep + 5e-3 * L_G^RaGAN + 1e-2 * L1 (the weights live in params.yaml, not here).
- `pixel_l1_loss`: mean |sr - gt|.
- `PerceptualLoss`: mean |VGG(sr) - VGG(gt)| on VGG19 conv5_4 features before ReLU.
- Relativistic average GAN (Jolicoeur-Martineau 2018; ESRGAN eq. 1-2), with
  D_Ra(a, b) = sigmoid(C(a) - mean C(b)) and BCE on the logits C:
    discriminator: -E[log D_Ra(real, fake)] - E[log(1 - D_Ra(fake, real))], halved;
    generator:     -E[log(1 - D_Ra(real, fake))] - E[log D_Ra(fake, real)], halved.
  The averaged term of the other side is detached, as in BasicSR's ESRGAN model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def pixel_l1_loss(sr: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean absolute error; sr, gt (B, 3, H, W) in [0, 1]."""
    return F.l1_loss(sr, gt)


class PerceptualLoss(nn.Module):
    """forward(sr, gt) -> scalar: L1 between the extractor's features of sr and of gt (gt detached).

    extractor: a frozen feature network, e.g. `VGG19FeatureExtractor`.
    sr, gt: (B, 3, H, W) in [0, 1].
    """

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor

    def forward(self, sr: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.extractor(gt)
        return F.l1_loss(self.extractor(sr), target)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def ragan_generator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Relativistic average GAN loss for the generator (unweighted).

    real_logits: C(gt) (B, 1), treated as constant (detached here); fake_logits: C(sr) (B, 1)
    with gradients to the generator. Returns
    0.5 * [BCE(C(gt) - mean C(sr), 0) + BCE(C(sr) - mean C(gt), 1)].
    """
    real = real_logits.detach()
    return 0.5 * (_bce(real - fake_logits.mean(), 0.0) + _bce(fake_logits - real.mean(), 1.0))


def ragan_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, detach_means: bool = False
) -> torch.Tensor:
    """Relativistic average GAN loss for the discriminator.

    real_logits: C(gt) (B, 1); fake_logits: C(sr.detach()) (B, 1). Returns
    0.5 * BCE(C(gt) - mean C(sr), 1) + 0.5 * BCE(C(sr) - mean C(gt), 0).
    detach_means=False (ESRGAN's original code, which the paper builds on): the gradient also flows
    through each mean term. True: each mean term is a constant (BasicSR 1.x's two separate backward
    passes).
    """
    fake_mean = fake_logits.mean().detach() if detach_means else fake_logits.mean()
    real_mean = real_logits.mean().detach() if detach_means else real_logits.mean()
    return 0.5 * (_bce(real_logits - fake_mean, 1.0) + _bce(fake_logits - real_mean, 0.0))
