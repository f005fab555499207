"""Data-parallel training across processes (torch.distributed), as torchrun launches it.

torchrun starts copies of a training step and gives each RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR
and MASTER_PORT. `World` is this process's place among them, taken from those variables alone, with
the few collective operations the training loop needs. A process started without torchrun is a
world of one, and every operation below is then a no-op: the single-process path is unchanged.
Whether the world is the one the config asked for is the config's check (`check_world` of the
training configs in `spsagan.config`).

Two process groups: the default one (NCCL on CUDA, gloo on CPU) carries DDP's gradient all-reduce;
a gloo group on the CPU carries the loop's small control messages (the stop flag of every
iteration, loss means, the checkpoint to resume, barriers). Control messages on the CPU never wait
for the GPU, so the host keeps queueing kernels ahead of it.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from spsagan.errors import ConfigError

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclasses.dataclass
class World:
    """This process's rank among `size` training processes (`local_rank`: its index on this node)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    control: Any = None  # the gloo process group for control messages (None: the default group)
    torchrun: bool = False  # started by torchrun (a world of one may be either)

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and the model file, and validates."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        """Wait until every process arrives here."""
        if self.distributed:
            dist.barrier(group=self.control)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` (picklable), on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on at least one (one scalar all-reduce)."""
        if not self.distributed:
            return bool(flag)
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t.item())

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Per-name means over the ranks of float values (float64; every rank passes the same names)."""
        if not self.distributed or not values:
            return dict(values)
        names = sorted(values)
        t = torch.tensor([float(values[n]) for n in names], dtype=torch.float64)
        dist.all_reduce(t, group=self.control)
        return {n: float(v) / self.size for n, v in zip(names, t.tolist())}


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def world_from_env() -> World:
    """This process's `World`, from torchrun's variables (a world of one without them)."""
    if not launched_by_torchrun():
        return World()
    size, rank, local = (int(os.environ[k]) for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"))
    return World(rank=rank, size=size, local_rank=local, torchrun=True)


def rank_device(world: World, device: torch.device) -> torch.device:
    """The device of this rank: cuda:LOCAL_RANK on CUDA (one GPU per process), else `device`."""
    if device.type != "cuda" or not world.distributed:
        return device
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise ConfigError(
            f"this process has LOCAL_RANK {world.local_rank}, but torch sees only {count} CUDA "
            f"device(s) on this node; start at most {count} processes per node"
        )
    return torch.device("cuda", world.local_rank)


_CONTROL: dict = {}  # the control group of the initialised process group, made once


@contextlib.contextmanager
def process_group(world: World, device: torch.device, timeout_min: float = 30) -> Iterator[World]:
    """This rank's `World` joined to the run's process groups (nothing to join for a world of one).

    NCCL for CUDA devices, gloo for the CPU; the control group is always gloo. The groups stay
    until the process exits, so a second training in the same process (the GAN after the
    pretraining, in a script) reuses them: the store torchrun provides does not support joining
    a new default group after the first one was destroyed.
    """
    if not world.distributed:
        yield world
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_min))
        atexit.register(_destroy)
    if (dist.get_world_size(), dist.get_rank(), dist.get_backend()) != (world.size, world.rank, backend):
        raise RuntimeError(
            f"the process group is rank {dist.get_rank()} of {dist.get_world_size()} with "
            f"{dist.get_backend()}; this run needs rank {world.rank} of {world.size} with {backend}"
        )
    if "group" not in _CONTROL:
        _CONTROL["group"] = None if backend == "gloo" else dist.new_group(backend="gloo")
    yield dataclasses.replace(world, control=_CONTROL["group"])


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
    _CONTROL.clear()


def wrap(module: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """`module` in DistributedDataParallel when training on several processes, else itself.

    DDP averages the gradients over the ranks during backward: with each rank's loss the mean over
    its share of the batch, that is the gradient of the mean over the global batch.
    Buffers are not copied from rank 0 before each forward (broadcast_buffers=False). The generator's
    buffers are set once, identically on every rank; the discriminator's BatchNorm running
    statistics stay per rank, as in BasicSR (they are never used: the discriminator only runs in
    training mode, on batch statistics).
    """
    if not world.distributed:
        return module
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # Newer torch names the switch forward_sync_buffers (buffers are still copied from rank 0 once,
    # at construction, where every rank holds the same ones anyway).
    newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers": False} if newer else {"broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=ids, **no_sync)
