"""The library's exceptions: one for anything a user must fix, and a few that callers handle apart.

- `ConfigError` (ValueError): a setting (params.yaml, the registry, a CLI flag), or a file a setting
  names (weights, a mask, a test image, a training set), is wrong, missing or does not fit. Nobody
  catches it: the step prints its one line (naming the key or file and what to do) and exits 1.
- `ImageError` (a ConfigError): an image file cannot be read as 8-bit gray or RGB; readers catch it to
  add which set and stage the file belongs to.
- `SegStorageError` (a ConfigError): a segmentation map file is missing, damaged or of another
  format; make_seg_maps catches it and computes the map again.
- `DownloadError` (RuntimeError), with `ChecksumMismatch` (the bytes differ from the registry's) and
  `ManualDownloadRequired` (only a person can download it): the downloader retries, deletes a bad
  copy, or prints where to get the file.
- `ArchiveError` (RuntimeError): an archive cannot be extracted safely and completely; download_data
  quarantines a bad archive and downloads it again.
- `InUse` (RuntimeError): another process holds the project's run lock or a trainer's checkpoint
  folder; the message names its PID, and the user waits for it or stops it.
- `Preempted` (RuntimeError): training stopped on a signal after saving a checkpoint; the step exits
  75 and the scheduler runs the job again, which resumes.
- `VoteError` (ValueError): the user study refuses a request (an unknown trial, another participant's,
  an option not shown, a trial already answered); the study server answers with its HTTP status and
  message, and nothing is stored.

Anything else escaping a step is a bug and shows its traceback.
"""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A setting, or a file a setting names, that a user must fix; one line per problem, naming the key or file."""


class ImageError(ConfigError):
    """An image file cannot be read as an 8-bit gray or RGB image."""


class SegStorageError(ConfigError):
    """A segmentation map file is missing, corrupt, or not in this format; the message names the file."""


class DownloadError(RuntimeError):
    """A file could not be obtained (message names the file and the alternatives)."""


class ChecksumMismatch(DownloadError):
    """A file's digest or size differs from the registry's."""


class ManualDownloadRequired(DownloadError):
    """An asset that only a person can download (Google Drive folders); the message says how."""


class ArchiveError(RuntimeError):
    """An archive that cannot be extracted safely and completely (message names the archive).

    bad_archive: True when the archive itself is at fault (unsafe, over a limit, corrupt); False when
    writing the extracted files failed (disk full, permissions), so the archive may well be fine.
    """

    def __init__(self, message: str, bad_archive: bool = True):
        super().__init__(message)
        self.bad_archive = bad_archive


class InUse(RuntimeError):
    """Another process holds a lock this one needs (the project's run lock, a trainer's checkpoint folder)."""


class Preempted(RuntimeError):
    """Training stopped on purpose after saving a checkpoint; run it again to resume.

    cause: why it stopped ("received SIGTERM", "its parent process 123 (snakemake) exited").
    `exit_code` is 75 (EX_TEMPFAIL, "try again later"); any non-zero exit makes Snakemake retry.
    """

    exit_code = 75

    def __init__(self, cause: str, step: int, path: Path):
        super().__init__(
            f"{cause}: saved a resumable checkpoint at step {step} to {path}; run the same command again to continue"
        )
        self.cause, self.step, self.path = cause, step, path


class VoteError(ValueError):
    """A request the user study refuses; `status` is the HTTP status to answer with (4xx)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
