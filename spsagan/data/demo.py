"""The demo profile's offline data: natural colour photos bundled with scikit-image.

All nine images below ship inside the scikit-image wheel (checked for scikit-image 0.22-0.26), so
the demo never touches the network. scikit-image fetches some other sample images with pooch at run
time; before loading, each image's bundled file is checked to exist, and a missing one is an error
rather than a download.

| name | scikit-image loader | bundled file | size (H x W) |
|---|---|---|---|
| astronaut | astronaut() | astronaut.png | 512 x 512 |
| chelsea | chelsea() | chelsea.png | 300 x 451 |
| coffee | coffee() | coffee.png | 400 x 600 |
| rocket | rocket() | rocket.jpg | 427 x 640 |
| hubble_deep_field | hubble_deep_field() | hubble_deep_field.jpg | 872 x 1000 |
| immunohistochemistry | immunohistochemistry() | ihc.png | 512 x 512 |
| retina | retina() | retina.jpg | 1411 x 1411 |
| motorcycle_left | stereo_motorcycle()[0] | motorcycle_left.png | 500 x 741 |
| motorcycle_right | stereo_motorcycle()[1] | motorcycle_right.png | 500 x 741 |

These are stand-ins for DIV2K/OST and Set5/BSD100: every dataset written here is labelled
`stand_in: true` in its provenance.json.

A name may ask for a centre crop, `<name>@<height>x<width>` (e.g. `chelsea@96x96`, written as
`chelsea_96x96.png`): the paper profile's reduced rehearsal uses small crops to fit a CI budget.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from spsagan.atomic import atomic_dir, write_json
from spsagan.errors import ConfigError
from spsagan.image import write_image

# name -> (scikit-image loader, bundled file, index into the loader's tuple result or None)
DEMO_IMAGES: dict[str, tuple[str, str, int | None]] = {
    "astronaut": ("astronaut", "astronaut.png", None),
    "chelsea": ("chelsea", "chelsea.png", None),
    "coffee": ("coffee", "coffee.png", None),
    "rocket": ("rocket", "rocket.jpg", None),
    "hubble_deep_field": ("hubble_deep_field", "hubble_deep_field.jpg", None),
    "immunohistochemistry": ("immunohistochemistry", "ihc.png", None),
    "retina": ("retina", "retina.jpg", None),
    "motorcycle_left": ("stereo_motorcycle", "motorcycle_left.png", 0),
    "motorcycle_right": ("stereo_motorcycle", "motorcycle_right.png", 1),
}


_CROP = re.compile(r"^(?P<name>\w+)@(?P<height>\d+)x(?P<width>\d+)$")


def parse_demo_name(name: str) -> tuple[str, tuple[int, int] | None]:
    """`photo` or `photo@HxW` -> (the DEMO_IMAGES key, the centre crop's (height, width) or None)."""
    match = _CROP.match(name)
    if match is None:
        return name, None
    return match["name"], (int(match["height"]), int(match["width"]))


def demo_file_stem(name: str) -> str:
    """The file name (without .png) a demo name is written as: `chelsea@96x96` -> `chelsea_96x96`."""
    return name.replace("@", "_")


def demo_image(name: str) -> np.ndarray:
    """One demo photo as uint8 `(H, W, 3)` RGB, 0..255, loaded only from scikit-image's bundled files.

    name: a key of DEMO_IMAGES, or `key@HxW` for the centre H x W crop of that photo.
    """
    name, crop = parse_demo_name(name)
    img = _bundled_photo(name)
    if crop is None:
        return img
    height, width = crop
    if not (0 < height <= img.shape[0] and 0 < width <= img.shape[1]):
        raise ValueError(f"demo image {name!r} is {img.shape[0]}x{img.shape[1]}: no {height}x{width} crop")
    top, left = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
    return np.ascontiguousarray(img[top : top + height, left : left + width])


def _bundled_photo(name: str) -> np.ndarray:
    import skimage
    import skimage.data

    if name not in DEMO_IMAGES:
        raise ValueError(f"unknown demo image {name!r}; available: {', '.join(DEMO_IMAGES)}")
    loader, filename, index = DEMO_IMAGES[name]
    bundled = Path(skimage.data.__file__).parent / filename
    if not bundled.is_file():
        raise ConfigError(
            f"demo image {name!r}: scikit-image {skimage.__version__} does not bundle {filename} (it would download "
            "it); install scikit-image 0.22-0.26 or drop this image from the demo split"
        )
    img = getattr(skimage.data, loader)()
    if index is not None:
        img = img[index]
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"demo image {name!r}: expected uint8 RGB, scikit-image gave {img.dtype} {img.shape}")
    return img


def write_demo_dataset(root: str | os.PathLike, dataset: str, names: list[str]) -> Path:
    """Write `<root>/<dataset>/HR/<name>.png` for each demo image name, plus provenance.json; return the folder.

    names: a non-empty list of distinct keys of DEMO_IMAGES, each optionally with a crop (`key@HxW`,
    written as `<key>_<H>x<W>.png`): the caller's train or test split. The folder is replaced atomically.
    """
    names = list(names)
    unknown = [n for n in names if parse_demo_name(n)[0] not in DEMO_IMAGES]
    if unknown:
        raise ValueError(
            f"demo dataset {dataset!r}: unknown image names {unknown}; available: {', '.join(DEMO_IMAGES)}"
        )
    if not names or len(set(names)) != len(names):
        raise ValueError(f"demo dataset {dataset!r}: names must be a non-empty list without repeats, got {names}")
    import skimage

    root = Path(root)
    with atomic_dir(root / dataset) as tmp:
        sizes = {}
        for name in names:
            img = demo_image(name)
            write_image(tmp / "HR" / f"{demo_file_stem(name)}.png", img)
            sizes[name] = list(img.shape[:2])
        write_json(
            tmp / "provenance.json",
            {
                "dataset": dataset,
                "source": "demo",
                "stand_in": True,
                "description": "offline stand-in: natural colour photos bundled with scikit-image",
                "package": f"scikit-image {skimage.__version__}",
                "license": "public domain or CC0 per scikit-image's loader docstrings; the motorcycle pair is from "
                "the Middlebury 2014 stereo benchmark",
                "images": len(names),
                "sizes_hw": sizes,
            },
        )
    return root / dataset
