"""The pieces the training loop is built from: the model protocol, its result, seeding, batches,
optimisers and the per-epoch sample order."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from mapenc.checks import check_memory
from mapenc.train.config import TrainConfig
from mapenc.train.distributed import DistContext

StopReason = Literal["epochs", "max_steps", "max_minutes"]
# What every checkpoint of ``fit`` holds.
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "samples_in_epoch", "step", "seconds", "rng")


class LossModel(Protocol):
    """What ``fit`` needs from a model besides being an ``nn.Module``."""

    def loss(self, batch: Any) -> tuple[torch.Tensor, Mapping[str, float | torch.Tensor]]:
        """Scalar loss to minimise on ``batch`` and named values to log."""
        ...


class StreamProgress(Protocol):
    """What training has consumed of a stream this epoch: scenarios and samples."""

    scenarios: int
    samples: int


class SampleStream(Protocol):
    """A training set read as a stream of whole batches, in an order fixed by its seed and epoch
    (``mapenc.data.streaming.StreamingSamples``), instead of indexed samples."""

    progress: StreamProgress

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is (saved in checkpoints)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from a ``state_dict()``."""
        ...

    def mark_consumed(self, batch: Any) -> None:
        """Record that training used ``batch``, the next one of the epoch."""
        ...


@dataclass(frozen=True)
class FitResult:
    """What a call to ``fit`` did: steps and epochs done in total (resumed runs included)."""

    steps: int
    epochs_completed: int
    seconds: float
    stopped: StopReason
    last_metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def check_model_fits(build: Callable[[], nn.Module], what: str = "the model") -> None:
    """Build the model on the meta device (no memory) and refuse, with the figure, one whose
    weights, gradients and two Adam moments (16 bytes a parameter) would not fit in memory
    (``mapenc.checks.check_memory``), e.g. a latent size of 10^8."""
    with torch.device("meta"):
        params = count_parameters(build())
    check_memory(16 * params, f"{what} ({params:,} parameters, for training)")


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global state users draw from)
    random.seed(seed)


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor inside (tuples, lists, dicts) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: move_to(value, device) for key, value in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to(value, device) for value in batch)
    return batch


def build_optimizer(
    parameters: Iterable[nn.Parameter], config: TrainConfig
) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` with its ``lr`` and ``weight_decay``."""
    params = list(parameters)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


class LossForward(nn.Module):
    """Routes ``forward`` to ``model.loss`` so DistributedDataParallel sees (and syncs) the call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> tuple[torch.Tensor, Mapping[str, float | torch.Tensor]]:
        return cast(LossModel, self.model).loss(batch)


def as_float(value: float | torch.Tensor) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def epoch_indices(
    num_samples: int, epoch: int, config: TrainConfig, context: DistContext, dataset: Dataset[Any]
) -> list[int]:
    """This rank's sample order for ``epoch``: a permutation seeded by ``(seed, epoch)``."""
    if context.distributed:
        sampler: DistributedSampler[Any] = DistributedSampler(
            dataset,
            num_replicas=context.world_size,
            rank=context.rank,
            shuffle=True,
            seed=config.seed,
        )
        sampler.set_epoch(epoch)
        return list(sampler)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    return torch.randperm(num_samples, generator=generator).tolist()


def loader_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The DataLoader's own generator for ``epoch`` on ``rank``, seeded from the run's seed."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_009 + rank) % 2**63)
