"""Networks of SPSAGAN.

- `rrdb`: ESRGAN's RRDBNet generator and its pruned form RRSB (connection mask `keep`),
  with an optional attention layer on the trunk output.
- `spsa`: segmentation-prior self-attention (paper eq. 1-7), memory-bounded.
- `attention`: SAGAN feature attention (the `+fa` ablation) and the shared row chunking.
- `presets`: the paper's four variants, `build_generator(arch)`, `load_generator(path)`.
- `discriminator`: VGG-style discriminator for 96 x 96 / 128 x 128 crops.
- `vgg`: frozen VGG19 feature extractor for the perceptual loss.
- `flops`: multiply-accumulate counts.
- `tiling`: tiled x4 inference for large images (spsagan-upscale).
"""

from spsagan.models.attention import FeatureAttention
from spsagan.models.presets import PRESETS, build_generator, load_generator, needs_seg
from spsagan.models.rrdb import RRDBNet
from spsagan.models.spsa import SPSA

__all__ = [
    "FeatureAttention",
    "PRESETS",
    "RRDBNet",
    "SPSA",
    "build_generator",
    "load_generator",
    "needs_seg",
]
