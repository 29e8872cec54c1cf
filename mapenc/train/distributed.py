"""Distributed data-parallel set-up under ``torchrun`` (gloo on CPU, NCCL on CUDA).

``torchrun --nproc_per_node=N -m mapenc train-mnist ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; ``init_distributed`` reads them. Without
them everything runs in one process and the collectives below are no-ops.

The process group may be joined before the run's device is known (``join_process_group``: the run
folder is claimed first, see ``mapenc.train.run_folder``), so it is made with gloo for CPU tensors
and, where CUDA is present, NCCL for CUDA tensors; object collectives and barriers use gloo.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mapenc.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` processes, and its torch device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` → ``cuda:local_rank`` when CUDA is present, else CPU; other names as given.

    Raises ConfigError for a name torch does not know and for a CUDA or MPS device this machine
    does not have (rather than an assertion deep inside torch at the first tensor moved there).
    """
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device={name!r}: {err}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device={name!r}: CUDA is not available here; use cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device={name!r}: this machine has {count} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name!r}: MPS is not available here; use cpu or auto")
    return device


def launch_rank() -> tuple[int, int]:
    """(rank, world size) that torchrun's environment gives this process; (0, 1) without it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def join_process_group() -> bool:
    """Join the process group named by torchrun's environment (once per process); whether this
    process trains together with others."""
    rank, world_size = launch_rank()
    if world_size <= 1:
        return False
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        atexit.register(shutdown_distributed)
    return True


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group named by torchrun's environment, or a single-process context.

    Collectives on CUDA tensors use NCCL, on CPU tensors gloo. Calling it again in a process
    that already joined returns the same context.
    """
    rank, world_size = launch_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = resolve_device(device, local_rank)
    if world_size > 1 and torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)  # before the first NCCL collective picks a device
    join_process_group()
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=torch_device)


def broadcast_from_main(value: object) -> object:
    """Rank 0's ``value`` on every rank (a picklable object, sent between this run's own
    processes); ``value`` itself in a single process."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(value: object, context: DistContext) -> list[object]:
    """Every rank's ``value`` (picklable), in rank order, on every rank; ``[value]`` in a single
    process."""
    if not context.distributed:
        return [value]
    gathered: list[object] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def all_reduce_sum(tensor: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Sum of ``tensor`` over all ranks (in place); the tensor itself in a single process."""
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(context: DistContext) -> None:
    """Wait for every rank; a no-op in a single process."""
    if context.distributed:
        dist.barrier()


def shutdown_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
