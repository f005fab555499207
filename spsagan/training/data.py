"""Training data: aligned (gt, lq, seg) sub-images, a seeded mixing sampler, batch assembly.

On disk (pipeline contracts), for a training set `<ds>`:
    results/make_lr/<ds>/sub/HR/<sub>.png       HR sub-image, 8-bit RGB
    results/make_lr/<ds>/sub/LR_x4/<sub>.png    its x4 MATLAB-bicubic LR
    results/make_lr/<ds>/sub/index.csv          columns sub,source,top,left,size
    results/make_seg_maps/<ds>/sub/<sub>.npz    optional prior, (8, H, W) float32 probabilities

Reproducible sample stream: batch k is a pure function of (seed, k). `MixSampler.draw(k)` seeds a
NumPy generator with (seed, k) and picks, per sample, the set (with the mix ratios), an item
(uniformly, with replacement), a crop position and one of the 8 flips/rotations. Resuming at
step k therefore continues the very same stream, whatever ran or was prefetched before, and a
worker process can build any batch alone. The sampler's state is just the next step.

Data-parallel training (`spsagan.training.distributed`): `batch_size` is the global batch, and the
process of rank r among W takes the samples [r B/W, (r+1) B/W) of each global draw, so the W
processes together see exactly the batches of a single-process run.

Tensors: `gt` (B, 3, P, P) and `lq` (B, 3, P/4, P/4) are uint8 0..255 (converted to float [0, 1]
on the training device, which moves 4x fewer bytes); `seg` (B, 8, P, P) cut at the same HR
coordinates, either float32 probabilities or, for maps read from disk, the stored uint8
quantisation q with probabilities q / 255 (`batch_to_device` converts both). P is the HR crop size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spsagan.config import batch_share
from spsagan.data.pairs import index_path, read_index
from spsagan.errors import ConfigError
from spsagan.image import read_image

SCALE = 4


# --------------------------------------------------------------------------------------------------
# One training set


class SubImageSet:
    """One training set's aligned sub-images: `get(i, with_seg) -> (gt, lq, seg | None)`.

    gt: uint8 (H, W, 3); lq: uint8 (H/4, W/4, 3); seg: float32 (8, H, W) or None.
    Decoded images are kept in memory up to `cache_mb` megabytes (first come, first kept), so a
    small set (the demo) is decoded once and a large one (DIV2K) decodes the rest on demand.
    """

    def __init__(
        self,
        name: str,
        names: Sequence[str],
        load: Callable[[int, bool], tuple],
        fingerprint: Callable[[bool], str],
        has_seg: bool,
        cache_mb: float = 2048,
    ):
        if not names:
            raise ConfigError(f"training set {name!r} holds no sub-images")
        self.name = name
        self.names = list(names)
        self.has_seg = has_seg
        self._load = load
        self._fingerprint = fingerprint
        self._cache: dict[tuple[int, bool], tuple] = {}
        self._cache_budget = cache_mb * 2**20
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.names)

    def get(self, i: int, with_seg: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if with_seg and not self.has_seg:
            raise ConfigError(
                f"training set {self.name!r} was opened without segmentation maps, "
                "but this model needs them (pass seg_dir when opening it)"
            )
        key = (i, with_seg)
        item = self._cache.get(key)
        if item is None:
            item = self._load(i, with_seg)
            _check_item(item, f"{self.name}/{self.names[i]}", with_seg)
            size = sum(a.nbytes for a in item if a is not None)
            if self._cached_bytes + size <= self._cache_budget:
                self._cache[key] = item
                self._cached_bytes += size
        return item

    def fingerprint(self, with_seg: bool) -> str:
        """A hash identifying the set's content listing (keys resume checkpoints)."""
        return self._fingerprint(with_seg)

    @classmethod
    def from_arrays(
        cls, name: str, gts: Sequence[np.ndarray], lqs: Sequence[np.ndarray], segs: Sequence[np.ndarray] | None = None
    ) -> SubImageSet:
        """A set from in-memory images (uint8 (H, W, 3) gt, (H/4, W/4, 3) lq, float32 (8, H, W) seg)."""
        if len(gts) != len(lqs) or (segs is not None and len(segs) != len(gts)):
            raise ConfigError(
                f"training set {name!r}: {len(gts)} gt, {len(lqs)} lq"
                f"{'' if segs is None else f', {len(segs)} seg'} arrays; the counts must match"
            )
        names = [f"{i:06d}" for i in range(len(gts))]

        def load(i, with_seg):
            return gts[i], lqs[i], (segs[i] if with_seg else None)

        def fingerprint(with_seg):
            h = hashlib.sha256()
            for i in range(len(gts)):
                for a in (gts[i], lqs[i], segs[i] if (with_seg and segs is not None) else None):
                    if a is not None:
                        a = np.ascontiguousarray(a)
                        h.update(repr((a.shape, a.dtype.str)).encode())
                        h.update(a.tobytes())
            return h.hexdigest()

        return cls(name, names, load, fingerprint, has_seg=segs is not None, cache_mb=0)

    @classmethod
    def from_dir(
        cls,
        name: str,
        make_lr_dir: str | os.PathLike,
        seg_dir: str | os.PathLike | None = None,
        cache_mb: float = 2048,
        sources: Sequence[str] | None = None,
    ) -> SubImageSet:
        """Open `make_lr_dir/sub/{HR,LR_x4,index.csv}` and, if given, maps in `seg_dir/sub/<sub>.npz`.

        Pass `seg_dir=None` for models without the prior: no map is then ever read.
        sources: only the sub-images of these source images (None: all).
        """
        index = index_path(make_lr_dir)
        sub = index.parent
        names = subimage_names(index, sources)
        for d in ("HR", "LR_x4"):
            missing = [n for n in names if not (sub / d / f"{n}.png").is_file()]
            if missing:
                raise ConfigError(
                    f"{sub / d}: {len(missing)} sub-image(s) listed in {index} are missing "
                    f"(first: {missing[0]}.png); rerun the make_lr stage"
                )
        seg_sub = None
        if seg_dir is not None:
            seg_sub = Path(seg_dir) / "sub"
            missing = [n for n in names if not (seg_sub / f"{n}.npz").is_file()]
            if missing:
                raise ConfigError(
                    f"{seg_sub}: {len(missing)} segmentation map(s) for {index} are missing "
                    f"(first: {missing[0]}.npz); rerun the make_seg_maps stage"
                )

        def load(i, with_seg):
            n = names[i]
            gt = read_image(sub / "HR" / f"{n}.png", gray="rgb")
            lq = read_image(sub / "LR_x4" / f"{n}.png", gray="rgb")
            seg = _load_seg_quantized(seg_sub / f"{n}.npz") if with_seg else None
            return gt, lq, seg

        def fingerprint(with_seg):
            h = hashlib.sha256(index.read_bytes())
            for n in names:
                files = [sub / "HR" / f"{n}.png", sub / "LR_x4" / f"{n}.png"]
                if with_seg:
                    files.append(seg_sub / f"{n}.npz")
                h.update(repr([(f.name, f.stat().st_size) for f in files]).encode())
            return h.hexdigest()

        return cls(name, names, load, fingerprint, has_seg=seg_sub is not None, cache_mb=cache_mb)


def subimage_names(index: Path, sources: Sequence[str] | None = None) -> list[str]:
    """Sub-image names of an index (`spsagan.data.pairs.read_index`), in file order.

    sources: keep only sub-images cut from these source images (e.g. a multi-category selection).
    """
    try:
        names = [row["sub"] for row in read_index(index) if sources is None or row["source"] in sources]
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    if not names:
        raise ConfigError(f"{index}: no sub-image left (sources: {sorted(sources) if sources else 'all'})")
    return names


def _load_seg(path: Path) -> np.ndarray:
    """float32 (8, H, W) probabilities."""
    from spsagan.segmentation.storage import load_seg

    return load_seg(path)


def _load_seg_quantized(path: Path) -> np.ndarray:
    """uint8 (8, H, W) integers summing to 255 per pixel (probabilities = q / 255): 4x less memory."""
    from spsagan.segmentation.storage import load_quantized

    return load_quantized(path)


def _check_item(item, where: str, with_seg: bool) -> None:
    gt, lq, seg = item
    if (
        gt.dtype != np.uint8
        or lq.dtype != np.uint8
        or gt.ndim != 3
        or lq.ndim != 3
        or gt.shape[2] != 3
        or lq.shape[2] != 3
    ):
        raise ConfigError(
            f"{where}: gt and lq must be uint8 (H, W, 3), got {gt.dtype}{gt.shape} and {lq.dtype}{lq.shape}"
        )
    if gt.shape[0] != SCALE * lq.shape[0] or gt.shape[1] != SCALE * lq.shape[1]:
        raise ConfigError(f"{where}: gt {gt.shape[:2]} is not {SCALE}x lq {lq.shape[:2]}; rerun make_lr")
    if with_seg and (seg is None or seg.ndim != 3 or seg.shape[1:] != gt.shape[:2]):
        raise ConfigError(
            f"{where}: segmentation map {None if seg is None else seg.shape} does not cover "
            f"the HR sub-image {gt.shape[:2]}; rerun make_seg_maps"
        )


# --------------------------------------------------------------------------------------------------
# Sampling


@dataclass(frozen=True)
class Draw:
    """One sample of a batch: set and item, crop position as fractions in [0, 1), augmentation."""

    set_index: int
    item: int
    u_top: float
    u_left: float
    hflip: bool
    vflip: bool
    transpose: bool  # with the flips this gives the 8 rotations/reflections


class MixSampler:
    """Seeded sampler over several sets mixed by `ratios` (e.g. OST:DIV2K = 10:1).

    `draw(step)` is a pure function of (seed, step); iterating yields `draw(next_step)` and advances.
    `state_dict()`/`load_state_dict()` save and restore the position exactly.
    rank, world_size: this process's share of each global batch of `batch_size` draws
    (`global_draw`): `draw` returns the draws [rank B/W, (rank+1) B/W). The state does not depend on
    the share, so a run may resume on another number of processes.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        ratios: Sequence[float],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.share = batch_share(batch_size, world_size)  # the split rule, as the config checks it
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of the {world_size} processes")
        if len(sizes) != len(ratios) or not sizes:
            raise ValueError(f"need one ratio per set, got sizes {list(sizes)} and ratios {list(ratios)}")
        if any(r < 0 for r in ratios) or sum(ratios) <= 0:
            raise ValueError(f"mix ratios must be >= 0 with a positive sum, got {list(ratios)}")
        if any(n < 1 for n, r in zip(sizes, ratios) if r > 0):
            raise ValueError(f"a set with a positive ratio is empty: sizes {list(sizes)}")
        self.sizes = [int(n) for n in sizes]
        self.probs = np.asarray(ratios, dtype=np.float64) / float(sum(ratios))
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.next_step = 0

    def draw(self, step: int) -> list[Draw]:
        """This process's share of the global batch of `step`."""
        return self.global_draw(step)[self.rank * self.share : (self.rank + 1) * self.share]

    def global_draw(self, step: int) -> list[Draw]:
        """All `batch_size` draws of `step` (what a single process trains on)."""
        rng = np.random.default_rng([self.seed, int(step)])
        b = self.batch_size
        sets = rng.choice(len(self.sizes), size=b, p=self.probs)
        u = rng.random((b, 3))  # item, top, left
        aug = rng.integers(0, 2, size=(b, 3)).astype(bool)
        return [
            Draw(
                int(s),
                min(int(u[j, 0] * self.sizes[s]), self.sizes[s] - 1),
                float(u[j, 1]),
                float(u[j, 2]),
                *map(bool, aug[j]),
            )
            for j, s in enumerate(sets)
        ]

    def __iter__(self):
        return self

    def __next__(self) -> list[Draw]:
        draws = self.draw(self.next_step)
        self.next_step += 1
        return draws

    def state_dict(self) -> dict:
        return {"seed": self.seed, "next_step": self.next_step, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed or state["batch_size"] != self.batch_size:
            raise ValueError(
                f"sampler state is for seed {state['seed']}, batch {state['batch_size']}; "
                f"this sampler has seed {self.seed}, batch {self.batch_size}"
            )
        self.next_step = int(state["next_step"])


# --------------------------------------------------------------------------------------------------
# Crops and augmentation


def crop_and_augment(gt: np.ndarray, lq: np.ndarray, seg: np.ndarray | None, d: Draw, crop_size: int):
    """Cut an aligned crop (HR `crop_size`, LR `crop_size/4`, seg at the HR coordinates) and apply
    `d`'s flips/transpose identically to all three. Returns contiguous arrays of the same layouts."""
    c = crop_size // SCALE
    h, w = lq.shape[:2]
    if h < c or w < c:
        raise ConfigError(
            f"a {h}x{w} LR sub-image is smaller than the {c}x{c} LR crop (HR crop_size "
            f"{crop_size}); lower crop_size or make larger sub-images"
        )
    top = min(int(d.u_top * (h - c + 1)), h - c)
    left = min(int(d.u_left * (w - c + 1)), w - c)
    lq = lq[top : top + c, left : left + c]
    ys, xs = slice(SCALE * top, SCALE * (top + c)), slice(SCALE * left, SCALE * (left + c))
    gt = gt[ys, xs]
    seg = seg[:, ys, xs] if seg is not None else None
    # Images are (H, W, C); maps are (C, H, W).
    if d.hflip:
        gt, lq = gt[:, ::-1], lq[:, ::-1]
        seg = seg[:, :, ::-1] if seg is not None else None
    if d.vflip:
        gt, lq = gt[::-1], lq[::-1]
        seg = seg[:, ::-1] if seg is not None else None
    if d.transpose:
        gt, lq = gt.transpose(1, 0, 2), lq.transpose(1, 0, 2)
        seg = seg.transpose(0, 2, 1) if seg is not None else None
    return (np.ascontiguousarray(gt), np.ascontiguousarray(lq), np.ascontiguousarray(seg) if seg is not None else None)


# --------------------------------------------------------------------------------------------------
# Everything a training run reads


@dataclass
class ValImage:
    """A held-out image: lq uint8 (h, w, 3), gt uint8 (4h, 4w, 3), seg float32 (8, 4h, 4w) or None."""

    name: str
    lq: np.ndarray
    gt: np.ndarray
    seg: np.ndarray | None = None


@dataclass
class TrainData:
    """Training sets with their mix ratios, held-out images, and the prior's segmenter label.

    sets/ratios: e.g. [ost, div2k] and [10, 1]. val: held-out images for periodic PSNR.
    segmenter: the label of the segmenter that made the maps (e.g. "OutdoorSceneSeg"), recorded
    in the model checkpoint of models that use the prior.
    """

    sets: list[SubImageSet]
    ratios: list[float]
    val: list[ValImage] = field(default_factory=list)
    segmenter: str | None = None

    def __post_init__(self):
        if len(self.sets) != len(self.ratios):
            raise ValueError(f"{len(self.sets)} sets but {len(self.ratios)} ratios")

    @property
    def has_seg(self) -> bool:
        return all(s.has_seg for s in self.sets)

    def sampler(self, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> MixSampler:
        """The seeded sampler of global batches of `batch_size`; rank/world_size: this process's share."""
        return MixSampler([len(s) for s in self.sets], self.ratios, batch_size, seed, rank, world_size)

    def make_batch(self, draws: Sequence[Draw], crop_size: int, with_seg: bool) -> dict[str, torch.Tensor]:
        """Assemble a batch: {"gt": uint8 (B,3,P,P), "lq": uint8 (B,3,P/4,P/4)[, "seg": (B,8,P,P)]}."""
        gts, lqs, segs = [], [], []
        for d in draws:
            gt, lq, seg = crop_and_augment(*self.sets[d.set_index].get(d.item, with_seg), d, crop_size)
            gts.append(gt)
            lqs.append(lq)
            segs.append(seg)
        batch = {
            "gt": torch.from_numpy(np.stack(gts)).permute(0, 3, 1, 2).contiguous(),
            "lq": torch.from_numpy(np.stack(lqs)).permute(0, 3, 1, 2).contiguous(),
        }
        if with_seg:
            batch["seg"] = torch.from_numpy(np.stack(segs))
        return batch

    def fingerprint(self, with_seg: bool) -> str:
        """Hash of the sets' listings, the ratios and the held-out images (keys resume checkpoints)."""
        h = hashlib.sha256(
            json.dumps(
                {
                    "ratios": [float(r) for r in self.ratios],
                    "sets": [(s.name, s.fingerprint(with_seg)) for s in self.sets],
                }
            ).encode()
        )
        for v in self.val:
            h.update(v.name.encode())
            for a in (v.lq, v.gt, v.seg if with_seg else None):
                if a is not None:
                    h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


class BatchSource(torch.utils.data.Dataset):
    """Map-style dataset whose item k is the whole batch of step k (for a DataLoader with workers)."""

    def __init__(self, data: TrainData, sampler: MixSampler, crop_size: int, with_seg: bool):
        self.data, self.sampler, self.crop_size, self.with_seg = data, sampler, crop_size, with_seg

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        return self.data.make_batch(self.sampler.draw(step), self.crop_size, self.with_seg)


def batches(
    data: TrainData,
    sampler: MixSampler,
    crop_size: int,
    with_seg: bool,
    start: int,
    stop: int,
    workers: int = 0,
    pin_memory: bool = False,
):
    """Yield the batches of steps start..stop-1 (built in `workers` processes when > 0).

    Batch k depends only on (seed, k), so prefetching ahead never changes what a resumed run sees.
    """
    source = BatchSource(data, sampler, crop_size, with_seg)
    if workers <= 0:
        for k in range(start, stop):
            yield source[k]
        return
    loader = torch.utils.data.DataLoader(
        source,
        batch_size=None,
        sampler=range(start, stop),
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4,
        worker_init_fn=_ignore_stop_signals,
    )
    yield from loader


def _ignore_stop_signals(worker_id: int) -> None:
    """Batch workers ignore SIGTERM/SIGUSR1/SIGHUP: SLURM signals every process of a job (a closing
    terminal hangs up on every process of its session), and a worker that died would crash the
    training process before it saves its checkpoint. The DataLoader still stops its workers when the
    training process ends."""
    import signal

    for name in ("SIGTERM", "SIGUSR1", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def batch_to_device(
    batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool = False
) -> dict[str, torch.Tensor]:
    """Move a batch to `device` as float32: gt/lq in [0, 1] (uint8 / 255), seg probabilities."""
    out = {}
    for name, t in batch.items():
        t = t.to(device, non_blocking=True)
        if t.dtype == torch.uint8:  # images 0..255 and quantised maps 0..255 alike
            t = t.float().div_(255.0)
        if channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        out[name] = t
    return out


def load_val_images(
    hr_dir: str | os.PathLike,
    lq_dir: str | os.PathLike,
    seg_dir: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
) -> list[ValImage]:
    """Held-out images from `hr_dir/<name>.png`, `lq_dir/<name>.png` (and `seg_dir/<name>.npz`), as RGB.

    names: file stems to use (default: every PNG in hr_dir, sorted).
    """
    hr_dir, lq_dir = Path(hr_dir), Path(lq_dir)
    if names is None:
        names = sorted(p.stem for p in hr_dir.glob("*.png"))
        if not names:
            raise ConfigError(f"{hr_dir}: no PNG images for validation")
    out = []
    for n in names:
        gt = read_image(hr_dir / f"{n}.png", gray="rgb")
        lq = read_image(lq_dir / f"{n}.png", gray="rgb")
        if gt.shape[:2] != (SCALE * lq.shape[0], SCALE * lq.shape[1]):
            raise ConfigError(f"{hr_dir / n}.png {gt.shape[:2]} is not {SCALE}x {lq_dir / n}.png {lq.shape[:2]}")
        seg = None
        if seg_dir is not None:
            seg = _load_seg(Path(seg_dir) / f"{n}.npz")
            if seg.shape[1:] != gt.shape[:2]:
                raise ConfigError(f"{Path(seg_dir) / n}.npz covers {seg.shape[1:]}, not the HR image {gt.shape[:2]}")
        out.append(ValImage(n, lq, gt, seg))
    return out


def open_train_data(
    make_lr_root: str | os.PathLike,
    mix: dict[str, float],
    seg_root: str | os.PathLike | None = None,
    val: Sequence[ValImage] = (),
    cache_mb: float = 2048,
    sources: dict[str, Sequence[str]] | None = None,
) -> TrainData:
    """Open the pipeline's training sets: `mix` maps a set name under `make_lr_root` to its ratio.

    seg_root: `results/make_seg_maps` for models with the prior, None otherwise (no map is read).
    sources: set name -> source images to keep (e.g. DIV2K's multi-category selection); others: all.
    The segmenter label recorded in model checkpoints comes from the first map's metadata.
    """
    if not mix:
        raise ConfigError("the training mix names no dataset (e.g. {'DIV2K': 1})")
    sets, segmenter = [], None
    for name in mix:
        seg_dir = Path(seg_root) / name if seg_root is not None else None
        keep = (sources or {}).get(name)
        sets.append(SubImageSet.from_dir(name, Path(make_lr_root) / name, seg_dir, cache_mb=cache_mb, sources=keep))
    if seg_root is not None:
        from spsagan.segmentation.storage import read_seg_meta

        first = Path(seg_root) / sets[0].name / "sub" / f"{sets[0].names[0]}.npz"
        meta = read_seg_meta(first)
        segmenter = str(meta.get("segmenter_label") or meta["segmenter"])
    return TrainData(sets, [float(r) for r in mix.values()], list(val), segmenter)
