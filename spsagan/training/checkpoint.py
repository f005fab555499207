"""Resumable training state and the final model file.

Resume checkpoints live in a side folder that is never a declared pipeline output (Snakemake
deletes the outputs of a failed job; DVC deletes non-persistent outputs before a run):

    <ckpt_root>/<stage>-<instance>/<key>/step_00001000.pt

`key` hashes everything that determines the trained weights (the stage's cfg, the data listing,
the initial model's bytes), so a changed parameter never resumes a stale run. Each file is
written atomically (temporary name, then rename); the last `keep` files are kept. A rerun loads
the newest file that reads back completely and has every expected entry, skipping corrupt ones.

`StopSignals` turns SIGTERM/SIGUSR1 into a flag that the training loop checks between iterations:
it then saves a checkpoint and raises `Preempted`, so the process exits non-zero and the scheduler
(Snakemake --retries, SLURM requeue) runs it again, which resumes.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import signal
import subprocess
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from spsagan.atomic import atomic_path

STATE_KEYS = ("step", "models", "optimizers", "rng", "sampler", "history")
_STEP_FILE = re.compile(r"^step_(\d{8,})\.pt$")


class Preempted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; run it again to resume.

    `exit_code` is 75 (EX_TEMPFAIL, "try again later"); any non-zero exit makes Snakemake retry.
    """

    exit_code = 75

    def __init__(self, signame: str, step: int, path: Path):
        super().__init__(f"received {signame}: saved a resumable checkpoint at step {step} to {path}; "
                         "run the same command again to continue")
        self.step, self.path = step, path


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
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
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
        target = self.path / f"step_{int(state['step']):08d}.pt"
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
        for old in self.files()[:-self.keep]:
            old.unlink(missing_ok=True)
        return target

    def load_latest(self, map_location="cpu") -> dict | None:
        """The newest checkpoint that loads completely, or None. Corrupt files are skipped with a warning."""
        for path in reversed(self.files()):
            try:
                state = torch.load(path, map_location=map_location, weights_only=True)
                missing = [k for k in STATE_KEYS if k not in state]
                if missing:
                    raise ValueError(f"missing entries {missing}")
                if f"step_{int(state['step']):08d}.pt" != path.name:
                    raise ValueError(f"holds step {state['step']}, not the step in its name")
            except Exception as err:  # any unreadable file: fall back to the previous one
                warnings.warn(f"{path}: skipping unusable resume checkpoint ({err})", RuntimeWarning,
                              stacklevel=2)
                continue
            return state
        return None


# --------------------------------------------------------------------------------------------------
# Signals


class StopSignals:
    """Context manager: while active, SIGTERM and SIGUSR1 set `self.received` instead of killing.

    The training loop polls `received` between iterations. Handlers can only be installed from the
    main thread; elsewhere (e.g. inside a notebook worker) this does nothing and warns.
    """

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            warnings.warn("not in the main thread: SIGTERM/SIGUSR1 will not save a checkpoint", RuntimeWarning)
            return self
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


# --------------------------------------------------------------------------------------------------
# Final model file


def git_revision(cwd: str | Path | None = None) -> str | None:
    """The commit hash of the git checkout at `cwd` (default: the current directory), or None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", rev) else None


def save_model(path: str | Path, model: torch.nn.Module, preset: str, step: int, params: dict,
               segmenter: str | None, method: str | None = None, info: dict | None = None) -> None:
    """Write the final generator in the checkpoint format of the contracts, atomically.

    {"arch", "params_g", "preset", "method", "step", "segmenter", "params", "info", "git_rev"}:
    params is the stage's config, method the name reports show (default: the preset), info extra
    facts of the run (e.g. the perceptual extractor). Loads with `spsagan.models.presets.load_generator`
    (weights_only=True).
    """
    params_g = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    ckpt = {"arch": model.arch, "params_g": params_g, "preset": preset, "method": method or preset,
            "step": int(step), "segmenter": segmenter, "params": _plain(params), "info": _plain(info or {}),
            "git_rev": git_revision()}
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _plain(obj: Any):
    """JSON-like copy (dicts, lists, str, numbers, bool, None) of a cfg, for weights_only loading."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


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
