"""Data: the external asset registry, verified downloads, safe extraction, demo images, HR/LR pairs.

One function per pipeline stage:

- `prepare_dataset(name, root, source=..., ...)` (download_data): `<root>/<name>/HR/*.png` from a
  verified archive, a local copy, a mirror, or the offline demo images.
- `make_pairs(hr_dir, out_dir, scale=4, ...)` (make_lr): mod-cropped HR, MATLAB-bicubic LR and
  optional training sub-images.

Modules: `assets` (registry), `download` (HTTP, checksums, datasets), `extract` (safe zip/tar),
`demo` (scikit-image stand-in photos), `pairs` (HR/LR and sub-images).
"""

from spsagan._lazy import lazy_exports

# Public names and their modules, imported on first use (see spsagan/_lazy.py).
_LAZY = {
    "ChecksumMismatch": "spsagan.data.download",
    "DownloadError": "spsagan.data.download",
    "ManualDownloadRequired": "spsagan.data.download",
    "fetch_asset": "spsagan.data.download",
    "prepare_dataset": "spsagan.data.download",
    "make_pairs": "spsagan.data.pairs",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
