"""Segmentation priors: SFTGAN's OutdoorSceneSeg, an offline stand-in, map storage and selection.

- `OutdoorSceneSeg` (outdoor_scene_seg.py): the 8-class network; `preprocess_lq` makes its input from an LR image.
- `StandInSegmenter` (standin.py): unsupervised colour/texture clusters in the same map format.
- `CLASSES` (classes.py): the channel order, SFTGAN's, named once.
- storage.py: `save_seg`, `load_seg`, `read_seg_meta` (compact uint8 `.npz` maps).
- run.py: `build_segmenter`, `segment_dataset` (what the make_seg_maps stage calls).
- selection.py: multi-category selection of DIV2K images; figure.py: `plot_segmentation`.
"""

from spsagan.segmentation.classes import CLASSES, NUM_CLASSES
from spsagan.segmentation.outdoor_scene_seg import OutdoorSceneSeg, OutdoorSceneSegmenter, WeightsError, preprocess_lq
from spsagan.segmentation.standin import StandInSegmenter

__all__ = [
    "CLASSES",
    "NUM_CLASSES",
    "OutdoorSceneSeg",
    "OutdoorSceneSegmenter",
    "StandInSegmenter",
    "WeightsError",
    "preprocess_lq",
]
