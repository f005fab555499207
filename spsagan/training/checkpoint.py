"""Resumable training state: numbered checkpoints, their keys, and one trainer per folder.

Resume checkpoints live in a side folder that is never a declared pipeline output (Snakemake
deletes the outputs of a failed job; DVC deletes non-persistent outputs before a run):

    <ckpt_root>/<stage>-<instance>/<key>/step_00001000.pt

`key` hashes everything that determines the trained weights (the stage's cfg, the data listing,
the initial model's weights), so a changed parameter never resumes a stale run. Each file is
written atomically (temporary name, then rename); the last `keep` files are kept. A rerun loads
the newest file that reads back completely and has every expected entry, skipping corrupt ones.

One trainer at a time: `ResumeDir.exclusive` locks `<ckpt_root>/<stage>-<instance>/` for the whole
run (`spsagan.training.lock`); a second trainer stops at once with `InUse`, and a pipeline run
refuses to start while any trainer holds such a lock (`spsagan.training.lock.refuse_live_trainers`). Holding the lock,
a trainer removes the temporary files that a kill during a write left (`remove_partial_writes`).
Stopping on a signal is `spsagan.training.signals`; the final model file is `spsagan.models.modelfile`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from spsagan.atomic import atomic_path
from spsagan.training.lock import exclusive_folder

STATE_KEYS = ("step", "models", "optimizers", "rng", "sampler", "history")
_STEP_FILE = re.compile(r"^step_(\d{8,})\.pt$")


# --------------------------------------------------------------------------------------------------
# Keys


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_key(stage: str, cfg: dict, extra: dict | None = None, length: int = 16) -> str:
    """Hex key of a run: sha256 of canonical JSON of {stage, cfg, extra} (sorted keys)."""
    blob = json.dumps({"stage": stage, "cfg": cfg, "extra": extra or {}}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def safe_name(text: str) -> str:
    """A folder-name-safe form of an instance label ("+spsa" -> "+spsa", "a/b" -> "a_b")."""
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", text) or "_"


# --------------------------------------------------------------------------------------------------
# RNG state as tensors and plain lists (loadable with weights_only=True)


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and every CUDA device) generator states."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    return {
        "python": [version, list(internal), gauss],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------------
# The resume folder


class ResumeDir:
    """Numbered resume checkpoints of one run in `<ckpt_root>/<stage>-<instance>/<key>/`."""

    def __init__(self, ckpt_root: str | Path, stage: str, instance: str, key: str, keep: int = 2):
        self.path = Path(ckpt_root) / f"{stage}-{safe_name(instance)}" / key
        self.keep = max(1, int(keep))

    def files(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        if not self.path.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.path.iterdir() if (m := _STEP_FILE.match(p.name))]
        return [p for _, p in sorted(found)]

    def save(self, state: dict) -> Path:
        """Write `state` (see STATE_KEYS) atomically as step_<step>.pt; keep only the newest `keep`."""
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise KeyError(f"resume state lacks {missing}")
        target = self.step_file(state["step"])
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
            _fsync(tmp)  # on disk before the rename: a power loss must not leave an empty "newest" file
        for old in self.files()[: -self.keep]:
            old.unlink(missing_ok=True)
        return target

    def exclusive(self) -> contextlib.AbstractContextManager:
        """Lock `<ckpt_root>/<stage>-<instance>/` (every key of this instance) while inside."""
        return exclusive_folder(self.path.parent)

    def remove_partial_writes(self) -> list[Path]:
        """Delete the temporary files of checkpoint writes that a kill interrupted, in every key folder of
        this instance; returns them. Call it only while holding `exclusive()`: a running trainer's
        write in progress looks the same."""
        found = [p for key in _subfolders(self.path.parent) for p in partial_writes(key, r"step_\d{8,}", ".pt")]
        for path in found:
            path.unlink(missing_ok=True)
        return found

    def load_latest(self, map_location="cpu") -> dict | None:
        """The newest checkpoint that loads completely, or None. Corrupt files are skipped with a warning."""
        return self.latest(map_location)[1]

    def latest(self, map_location="cpu") -> tuple[Path | None, dict | None]:
        """(file, state) of the newest checkpoint that loads completely, or (None, None)."""
        for path in reversed(self.files()):
            try:
                return path, self.load_file(path, map_location)
            except Exception as err:  # any unreadable file: fall back to the previous one
                warnings.warn(f"{path}: skipping unusable resume checkpoint ({err})", RuntimeWarning, stacklevel=3)
        return None, None

    @staticmethod
    def load_file(path: str | Path, map_location="cpu") -> dict:
        """One checkpoint file's state; raises if it is incomplete or holds another step than its name."""
        path = Path(path)
        state = torch.load(path, map_location=map_location, weights_only=True)
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"missing entries {missing}")
        if f"step_{int(state['step']):08d}.pt" != path.name:
            raise ValueError(f"holds step {state['step']}, not the step in its name")
        return state

    def step_file(self, step: int) -> Path:
        """The file a checkpoint of `step` is saved to."""
        return self.path / f"step_{int(step):08d}.pt"


def _subfolders(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def partial_writes(folder: str | Path, stem: str, suffix: str) -> list[Path]:
    """Temporary files that `spsagan.atomic.atomic_path` left in `folder` for targets `<stem><suffix>`
    (stem: a regular expression) when killed before its rename: `.<stem>.<random>.tmp<suffix>`."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^\.(?:{stem})\.[A-Za-z0-9_]+\.tmp{re.escape(suffix)}$")
    return sorted(p for p in folder.iterdir() if pattern.match(p.name) and p.is_file())


def optimizer_states(optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    return {name: opt.state_dict() for name, opt in optimizers.items()}


def load_optimizer_states(optimizers: dict[str, torch.optim.Optimizer], states: dict) -> None:
    for name, opt in optimizers.items():
        opt.load_state_dict(states[name])


def module_states(modules: dict[str, torch.nn.Module]) -> dict:
    return {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in modules.items()}


def load_module_states(modules: dict[str, torch.nn.Module], states: dict, names: Iterable[str] | None = None) -> None:
    for name in names or modules:
        modules[name].load_state_dict(states[name], strict=True)
