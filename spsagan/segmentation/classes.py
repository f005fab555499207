"""The 8 segmentation channels: named once, here, in SFTGAN's order.

Every map in the project is an `(8, H, W)` array whose channel k means `CLASSES[k]`. This is the
order of SFTGAN's OutdoorSceneSeg output (its colour look-up table in `test_segmentation.py`), which
is NOT the order the SPSAGAN paper lists the categories in (sky, mountain, plant, grass, water,
animal, building, background). Maps from the offline stand-in use the same 8 channels, but there
channel k is "cluster k" of an unsupervised colour/texture clustering, not a semantic category.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = (
    "background",
    "sky",
    "water",
    "grass",
    "mountain",
    "building",
    "plant",
    "animal",
)
NUM_CLASSES = len(CLASSES)
BACKGROUND = 0

# SFTGAN's RGB colour table for argmax label maps, one row per channel above.
COLORS: tuple[tuple[int, int, int], ...] = (
    (153, 153, 153),  # background
    (0, 255, 255),  # sky
    (109, 158, 235),  # water
    (183, 225, 205),  # grass
    (153, 0, 255),  # mountain
    (17, 85, 204),  # building
    (106, 168, 79),  # plant
    (224, 102, 102),  # animal
)
VOID_COLOR = (255, 255, 255)  # label 255 in SFTGAN's annotations; never produced by a map here

STANDIN_NOTE = "stand-in segmentation: channels are unsupervised colour/texture clusters, not semantic categories"


RANDOM_WEIGHTS_NOTE = (
    "stand-in segmentation: OutdoorSceneSeg's network with seeded random weights (its trained file is "
    "missing); channels are not semantic categories"
)


def standin_note(segmenter_label: str) -> str:
    """What a reader must be told about the non-semantic maps of the segmenter with this label."""
    return RANDOM_WEIGHTS_NOTE if "random weights" in str(segmenter_label) else STANDIN_NOTE


def channel_names(semantic: bool) -> tuple[str, ...]:
    """Names to print for the 8 channels: the OST classes, or `cluster k` for stand-in maps."""
    if semantic:
        return CLASSES
    return tuple(f"cluster {k}" for k in range(NUM_CLASSES))
