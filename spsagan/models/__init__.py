"""Networks of SPSAGAN.

- `rrdb`: ESRGAN's RRDBNet generator and its pruned form RRSB (connection mask `keep`),
  with an optional attention layer on the trunk output.
- `spsa`: segmentation-prior self-attention (paper eq. 1-7), memory-bounded.
- `attention`: SAGAN feature attention (the `+fa` ablation) and the shared row chunking.
- `presets`: the paper's four variants, `build_generator(arch)`.
- `modelfile`: the model file training writes and later stages read: `save_model`, `load_generator(path)`.
- `discriminator`: VGG-style discriminator for 96 x 96 / 128 x 128 crops.
- `vgg`: frozen VGG19 feature extractor for the perceptual loss.
- `flops`: multiply-accumulate counts.
- `tiling`: tiled x4 inference for large images (spsagan-upscale).
"""

from spsagan._lazy import lazy_exports

# Public names and their modules, imported on first use (see spsagan/_lazy.py).
_LAZY = {
    "FeatureAttention": "spsagan.models.attention",
    "PRESETS": "spsagan.models.presets",
    "build_generator": "spsagan.models.presets",
    "load_generator": "spsagan.models.modelfile",
    "needs_seg": "spsagan.models.presets",
    "RRDBNet": "spsagan.models.rrdb",
    "SPSA": "spsagan.models.spsa",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
