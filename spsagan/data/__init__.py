"""Data: the external asset registry, verified downloads, safe extraction, demo images, HR/LR pairs.

One function per pipeline stage:

- `prepare_dataset(name, root, source=..., ...)` (download_data): `<root>/<name>/HR/*.png` from a
  verified archive, a local copy, a mirror, or the offline demo images.
- `make_pairs(hr_dir, out_dir, scale=4, ...)` (make_lr): mod-cropped HR, MATLAB-bicubic LR and
  optional training sub-images.

Modules: `assets` (registry), `download` (HTTP, checksums, datasets), `extract` (safe zip/tar),
`demo` (scikit-image stand-in photos), `pairs` (HR/LR and sub-images).
"""

from spsagan.data.download import (
    ChecksumMismatch,
    DownloadError,
    ManualDownloadRequired,
    fetch_asset,
    prepare_dataset,
)
from spsagan.data.pairs import ImageTooSmall, make_pairs

__all__ = [
    "ChecksumMismatch",
    "DownloadError",
    "ImageTooSmall",
    "ManualDownloadRequired",
    "fetch_asset",
    "make_pairs",
    "prepare_dataset",
]
