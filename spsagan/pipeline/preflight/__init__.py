"""Preflight: every external file a profile will need, checked before any stage runs.

A paper run needs files that no stage can make: dataset archives, files only a person can download
(Google Drive), the VGG19 of the perceptual loss, the segmentation model, pyiqa's NRQM model for PI.
Without a check up front, a missing one stops the run days in (train_gan after pretraining).

Three modules, one job each: `needs` (what a profile needs), `verify` (the state of each need, the
table, the check before a run), `fetch` (`make fetch`).

- `needed_assets(params, profile)`: what the profile's settings need, derived from the typed configs:
  the datasets of `download_data.datasets`, `make_seg_maps.weights` (OutdoorSceneSeg),
  `train_gan.perceptual_weights` (VGG19, when `w_perceptual` > 0), NRQM and pyiqa (when `evaluate.pi`),
  `evaluate.published` (optional) and `evaluate.outside_folders`.
- `inspect(...)`: one `Row` per need: present (and verified), fetched later by download_data,
  missing, or wrong (fails its checksum).
- `check(...)`: prints one table (asset, needed by, status, where to get it, where to put it) and raises
  ConfigError listing every missing required file at once. The Snakefile calls it for the paper profile.
- `fetch(...)` (`make fetch`): downloads every fetchable file that is absent, verified, then reports
  what is left (the manual downloads).

What counts as present: a dataset when `download_data.local` names an existing path, when download_data
already extracted it (`results/download_data/<name>/HR`), or when its archive in `downloads_dir`
verifies. An absent dataset that can be downloaded is not an error (download_data downloads it); an
absent manual one is. A weights file must be at the path its setting names, and verify. Missing NRQM
(or pyiqa) only means PI is reported as not available: a warning. Missing published weights only
drop their Table 1 column: optional.

Checksums of large files take a while, so a file that verified once is remembered by path, size and
modification time in a small cache file (`.snakemake/spsagan_preflight.json`); `fetch` records what it
downloads there too.

CLI: `python -m spsagan.pipeline.preflight [--profile paper] [--fetch] [--mirror DIR_OR_URL]`; exit status 1 when
a required file is missing or a download failed.
"""

from spsagan.pipeline.preflight.fetch import fetch
from spsagan.pipeline.preflight.needs import needed_assets, nrqm_path, torch_hub_dir
from spsagan.pipeline.preflight.verify import check, inspect

__all__ = ["check", "fetch", "inspect", "needed_assets", "nrqm_path", "torch_hub_dir"]
