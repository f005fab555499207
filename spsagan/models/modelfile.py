"""The model file: the one format training writes and evaluation, export and upscale read.

A model file is a dict saved with `torch.save` that loads with weights_only=True:

    {"arch": model.arch,            # RRDBNet arguments: build_generator(arch) rebuilds the network
     "params_g": state_dict,        # the generator's weights (CPU, contiguous)
     "preset": name,                # the Fig. 11 variant (spsagan.models.presets.PRESETS)
     "method": name,                # the name reports give it ("rrdb_psnr", "spsagan", ...)
     "step": int,                   # training iterations done
     "segmenter": str | None,       # which segmentation priors it was trained with (SPSA models)
     "params": dict,                # the training stage's config, without its runtime keys
     "info": dict}                  # facts that shape the weights (precision, perceptual extractor)

Byte-stable: the same weights and settings give the same bytes, whatever the file's name, the
commit, the device or the day. Downstream stages hash model.pt, so anything that varies between
identical trainings stays out of it: `torch.save` is given an open file (its zip archive's root
folder is then always "archive", never the temporary name the atomic write uses; zip timestamps are
fixed by torch), tensors are saved as fresh contiguous CPU copies (no shared or oversized storage),
and what only describes one run goes to a provenance sidecar, `<stem>.provenance.json` next to the
model (`provenance_path`): the git revision, host, date, torch version, device, the runtime keys
(`spsagan.config.runtime_keys`: workers, log_every, ...) and the model file's sha256. The sidecar is
written right after the model by `save_model`, is no declared output of any stage (nothing hashes
or reads it), and is not copied by `dvc pull`: it is a note for people.

`weights_digest` hashes what a model computes (arch and tensors), not its file: resume keys use it.
`save_model` writes a model file (atomically), `load_generator` reads it back into a network.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from spsagan.atomic import atomic_path, write_json
from spsagan.models.presets import build_generator
from spsagan.models.rrdb import RRDBNet


def git_revision(cwd: str | Path | None = None) -> str | None:
    """The commit hash of the git checkout at `cwd` (default: the current directory), or None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", rev) else None


def save_model(
    path: str | Path,
    model: torch.nn.Module,
    preset: str,
    step: int,
    params: dict,
    segmenter: str | None,
    method: str | None = None,
    info: dict | None = None,
    provenance: dict | None = None,
) -> None:
    """Write the final generator in the format of the contracts, atomically, then its sidecar.

    {"arch", "params_g", "preset", "method", "step", "segmenter", "params", "info"}: params is the
    stage's config (runtime keys left out by the caller), method the name reports show (default:
    the preset), info facts that shape the weights (precision, perceptual extractor). Loads with
    `load_generator` (weights_only=True). `provenance` (e.g. the device and runtime keys) goes to
    the sidecar with the git revision, host, date and torch version (module docstring).
    """
    ckpt = {
        "arch": model.arch,
        "params_g": canonical_state(model),
        "preset": preset,
        "method": method or preset,
        "step": int(step),
        "segmenter": segmenter,
        "params": _plain(params),
        "info": _plain(info or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(ckpt, fh)  # a file object: the archive's root folder is "archive", not the temporary name
    note = {
        "model": path.name,
        "model_sha256": _sha256(path),
        "git_rev": git_revision(),
        "host": socket.gethostname(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
        **_plain(provenance or {}),
    }
    write_json(provenance_path(path), note)


def provenance_path(model_path: str | Path) -> Path:
    """The sidecar of a model file: `results/.../model.pt` -> `results/.../model.provenance.json`."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.provenance.json")


def canonical_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as fresh contiguous CPU tensors, one storage each, so that the bytes
    saved depend on the values alone (not on the device, memory format or shared storage)."""
    return {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}


def weights_digest(path: str | Path) -> str:
    """sha256 of what a model file computes: its arch and every tensor's name, dtype, shape and values.

    Resume keys use it instead of the file's bytes, so re-saving the same weights (another commit,
    another name, another torch) never restarts a training that starts from them.
    """
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    h = hashlib.sha256(json.dumps(_plain(ckpt["arch"]), sort_keys=True).encode())
    for name in sorted(ckpt["params_g"]):
        t = ckpt["params_g"][name].detach()
        h.update(f"\n{name} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain(obj: Any):
    """JSON-like copy (dicts, lists, str, numbers, bool, None) of a cfg, for weights_only loading."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def training_seed(ckpt: dict) -> int | None:
    """The seed a model file was trained with (its stage's `seeds`, one per job), None when it records none."""
    params = ckpt.get("params") or {}
    seed = (params.get("seeds") or [params.get("seed")])[0]  # `seed`: files written before seeds were a list
    return None if seed is None else int(seed)


def load_generator(path, map_location="cpu") -> tuple[RRDBNet, dict]:
    """Rebuild the generator of a checkpoint file: returns (model in eval mode, checkpoint dict)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: checkpoint not found") from None
    except Exception as err:
        raise ValueError(f"{path}: cannot read as a torch checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or "arch" not in ckpt or "params_g" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(
            f"{path}: not an spsagan checkpoint (needs 'arch' and 'params_g', has {keys}); "
            "a BasicSR/ESRGAN file loads with RRDBNet().load_state_dict(ckpt['params'])"
        )
    try:
        model = build_generator(ckpt["arch"])
        model.load_state_dict(ckpt["params_g"], strict=True)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ValueError(f"{path}: checkpoint does not rebuild its generator: {err}") from err
    return model.eval(), ckpt
