"""Training settings as a frozen dataclass, and JSON round trips for any frozen config dataclass."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from mapenc.errors import ConfigError

Optimizer = Literal["adam", "adamw", "sgd"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)

ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: budget (``epochs`` and optionally ``max_minutes`` / ``max_steps``), batch,
    optimiser, seeding, logging and checkpointing.

    ``max_minutes`` counts training wall-clock time over all resumed runs together; training stops
    at whichever budget runs out first and the last checkpoint is written either way.
    ``checkpoint_every_steps`` adds checkpoints inside an epoch (one is always written at the end
    of each epoch). ``device="auto"`` uses CUDA when present.

    Attributes:
        epochs: passes over the training set.
        max_minutes: training time budget (minutes, wall clock).
        max_steps: stop after this many optimiser steps.
        batch_size: samples per step (per process under torchrun).
        lr: learning rate.
        weight_decay: L2 weight decay.
        optimizer: adam, adamw or sgd (momentum 0.9).
        grad_clip_norm: clip the gradient norm to this (None: no clipping).
        seed: seed of the weights, the shuffling and everything random.
        log_every_steps: steps per row of train_log.csv.
        checkpoint_every_steps: also checkpoint every N steps (one is written each epoch anyway).
        device: auto (CUDA when present), cpu, cuda, cuda:N or mps.
        num_workers: DataLoader worker processes (0: load in the main process).
        progress: show a progress bar.
        tensorboard: also log to TensorBoard (needs the tensorboard package).
    """

    epochs: int = 10
    max_minutes: float | None = None
    max_steps: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: Optimizer = "adam"
    grad_clip_norm: float | None = None
    seed: int = 0
    log_every_steps: int = 50
    checkpoint_every_steps: int | None = None
    device: str = "auto"
    num_workers: int = 0
    progress: bool = True
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs}: must be at least 1")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size}: must be at least 1")
        if self.lr <= 0:
            raise ConfigError(f"lr={self.lr}: must be positive")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r}: expected one of {OPTIMIZERS}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"max_minutes={self.max_minutes}: must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps={self.max_steps}: must be at least 1")
        if self.log_every_steps < 1:
            raise ConfigError(f"log_every_steps={self.log_every_steps}: must be at least 1")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise ConfigError(
                f"checkpoint_every_steps={self.checkpoint_every_steps}: must be at least 1"
            )


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a (nested) config dataclass; tuples become lists."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ConfigError(f"{config!r} is not a config dataclass instance")
    return dataclasses.asdict(config)


def _coerce(value: Any, annotation: Any) -> Any:
    """``value`` read from JSON, turned back into ``annotation`` (nested dataclasses, tuples)."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return config_from_dict(annotation, value)  # type: ignore[arg-type]
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        return tuple(_coerce(v, a) for v, a in zip(value, args, strict=False))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None) and value is not None:
                return _coerce(value, arg)
    return value


def config_from_dict(cls: type[ConfigT], data: dict[str, Any]) -> ConfigT:
    """Instance of the config dataclass ``cls`` from ``config_to_dict`` output.

    Unknown keys raise ConfigError (a config written by another version or for another model).
    """
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"{cls!r} is not a config dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown settings {sorted(unknown)}")
    return cls(**{key: _coerce(value, hints[key]) for key, value in data.items()})
