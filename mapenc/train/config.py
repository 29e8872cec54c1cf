"""Training settings as a frozen dataclass, and JSON round trips for any frozen config dataclass."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from mapenc.checks import FieldChecks
from mapenc.errors import ConfigError

Optimizer = Literal["adam", "adamw", "sgd"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)

ConfigT = TypeVar("ConfigT")
# Seeds go to numpy, which takes 32 bits; torch seeds are derived from them.
MAX_SEED = 2**32 - 1
MAX_WORKERS = 256


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
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r}: expected one of {OPTIMIZERS}")
        (
            FieldChecks(self)
            .number("epochs", integer=True, minimum=1)
            .number("max_minutes", above=0, optional=True)
            .number("max_steps", integer=True, minimum=1, optional=True)
            .number("batch_size", integer=True, minimum=1)
            .number("lr", above=0)
            .number("weight_decay", minimum=0)
            .number("grad_clip_norm", above=0, optional=True)
            .number("seed", integer=True, minimum=0, maximum=MAX_SEED)
            .number("log_every_steps", integer=True, minimum=1)
            .number("checkpoint_every_steps", integer=True, minimum=1, optional=True)
            .number("num_workers", integer=True, minimum=0, maximum=MAX_WORKERS)
            .done()
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
    if annotation in SCALAR_TYPES and not _is_scalar(value, annotation):
        raise ConfigError(f"expected {annotation.__name__}, got {type(value).__name__} {value!r}")
    return value


# Field types whose JSON values are checked on load (a config.json edited by hand).
SCALAR_TYPES: tuple[type, ...] = (int, float, str, bool)


def _is_scalar(value: Any, annotation: type) -> bool:
    """Whether a JSON ``value`` can stand for a field of type ``annotation``."""
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def config_from_dict(cls: type[ConfigT], data: dict[str, Any]) -> ConfigT:
    """Instance of the config dataclass ``cls`` from ``config_to_dict`` output.

    Unknown keys, values of the wrong type (``"epochs": "ten"``) and missing fields raise
    ConfigError (a config written by another version, for another model, or edited by hand).
    """
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"{cls!r} is not a config dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown settings {sorted(unknown)}")
    values = {}
    for key, value in data.items():
        try:
            values[key] = _coerce(value, hints[key])
        except ConfigError as err:
            raise ConfigError(f"{cls.__name__}.{key}: {err}") from None
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:  # a missing field, or a check tripping on a type
        raise ConfigError(f"{cls.__name__}: {err}") from None
