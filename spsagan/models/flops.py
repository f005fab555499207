"""Multiply-accumulate counts of a generator's convolutions and linear layers.

Counted by forward hooks on a shape-only copy of the model (the "meta" device: no memory, no
arithmetic), so any input size is cheap. Per layer: Conv2d: output elements x (in_channels /
groups) x kernel area; Linear: output elements x in_features. Biases, activations, interpolation,
concatenation and the attention matrix products (eq. 2-7: about 3 N^2 (C/8) + N^2 C per SPSA
layer) are not counted.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def count_flops(model: nn.Module, lq_shape) -> int:
    """MACs of one forward pass of `model` on an input of shape lq_shape = (B, 3, h, w).

    A generator with an SPSA layer is given a matching (B, 8, 4h, 4w) segmentation input.
    """
    b, _, height, width = lq_shape
    shadow = copy.deepcopy(model).to("meta")
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * (module.in_channels // module.groups) * kernel
        else:
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in shadow.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            lq = torch.empty(tuple(lq_shape), device="meta")
            attention = getattr(shadow, "attention", None)
            if attention is not None and hasattr(attention, "transform"):
                seg = torch.empty((b, attention.num_classes, 4 * height, 4 * width), device="meta")
                shadow(lq, seg)
            else:
                shadow(lq)
    finally:
        for handle in handles:
            handle.remove()
    return int(total)
