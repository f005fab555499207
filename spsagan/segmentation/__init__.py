"""Segmentation priors: SFTGAN's OutdoorSceneSeg, an offline stand-in, map storage and selection.

- `OutdoorSceneSeg` (outdoor_scene_seg.py): the 8-class network; `preprocess_lq` makes its input from an LR image.
- `StandInSegmenter` (standin.py): unsupervised colour/texture clusters in the same map format.
- `CLASSES` (classes.py): the channel order, SFTGAN's, named once.
- storage.py: `save_seg`, `load_seg`, `read_seg_meta` (compact uint8 `.npz` maps).
- run.py: `build_segmenter`, `segment_dataset` (what the make_seg_maps stage calls).
- selection.py: multi-category selection of DIV2K images; figure.py: `plot_segmentation`.
"""

from spsagan._lazy import lazy_exports

# Public names and their modules, imported on first use (see spsagan/_lazy.py).
_LAZY = {
    "CLASSES": "spsagan.segmentation.classes",
    "NUM_CLASSES": "spsagan.segmentation.classes",
    "OutdoorSceneSeg": "spsagan.segmentation.outdoor_scene_seg",
    "OutdoorSceneSegmenter": "spsagan.segmentation.outdoor_scene_seg",
    "preprocess_lq": "spsagan.segmentation.outdoor_scene_seg",
    "StandInSegmenter": "spsagan.segmentation.standin",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
