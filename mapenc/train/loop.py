"""The training loop every mapenc model uses: ``fit(model, dataset, TrainConfig, out_dir)``.

The model is any ``nn.Module`` with ``loss(batch) -> (loss, metrics)``: a scalar tensor to
minimise and a dict of floats (or 0-d tensors) to log. ``fit`` owns the rest: device, seeding,
batching (a seeded shuffle per epoch, ``DistributedSampler`` under torchrun), optimiser, progress
bar, CSV logs, atomic checkpoints, exact resumption, NaN checks and the time budget.

Files in ``out_dir`` (written by rank 0 only):
- ``config.json``: the training config and every config passed in ``saved_configs``;
- ``checkpoint.pt``: model and optimiser ``state_dict``, epoch, step, RNG state (the last one);
- ``train_log.csv``: one row per ``log_every_steps`` steps (means over those steps);
- ``epochs.csv``: one row per epoch (training means plus whatever ``evaluate`` returned).
"""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from mapenc.errors import ConfigError, TrainingError
from mapenc.train.checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_json,
)
from mapenc.train.config import TrainConfig, config_to_dict
from mapenc.train.distributed import DistContext, all_reduce_sum, barrier, init_distributed

PathType = str | PathLike[str]
StopReason = Literal["epochs", "max_steps", "max_minutes"]
Evaluate = Callable[[nn.Module], Mapping[str, float]]

LOG = logging.getLogger(__name__)
TRAIN_LOG_NAME = "train_log.csv"
EPOCH_LOG_NAME = "epochs.csv"


class LossModel(Protocol):
    """What ``fit`` needs from a model besides being an ``nn.Module``."""

    def loss(self, batch: Any) -> tuple[torch.Tensor, Mapping[str, float | torch.Tensor]]:
        """Scalar loss to minimise on ``batch`` and named values to log."""
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


class _LossForward(nn.Module):
    """Routes ``forward`` to ``model.loss`` so DistributedDataParallel sees (and syncs) the call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> tuple[torch.Tensor, Mapping[str, float | torch.Tensor]]:
        return cast(LossModel, self.model).loss(batch)


class CsvLog:
    """Append-only CSV whose columns are fixed by the first row; on resume, rows past the
    checkpoint's step are dropped so a killed run leaves no duplicates."""

    def __init__(self, path: Path, keep_until_step: int | None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if keep_until_step is None or not path.is_file():
            path.unlink(missing_ok=True)
            return
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            self.fields = list(reader.fieldnames or [])
            rows = [row for row in reader if int(row["step"]) <= keep_until_step]
        self._write_all(rows)

    def _write_all(self, rows: list[dict[str, Any]]) -> None:
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields or [])
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one row; keys not in the header are ignored, missing ones left empty."""
        if self.fields is None:
            self.fields = list(row)
            self._write_all([])
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore").writerow(row)


class _Means:
    """Running means of named values between two log rows."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def pop(self) -> dict[str, float]:
        means = {key: total / max(self.count, 1) for key, total in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


def _as_float(value: float | torch.Tensor) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _epoch_indices(
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


class _TensorBoard:
    """Scalars to TensorBoard when requested; ConfigError when the package is missing."""

    def __init__(self, enabled: bool, log_dir: Path) -> None:
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tensorboard=True but the tensorboard package is not installed"
            ) from None
        self.writer = SummaryWriter(log_dir=str(log_dir / "tensorboard"))

    def add(self, values: Mapping[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def fit(
    model: nn.Module,
    train_set: Dataset[Any],
    config: TrainConfig,
    out_dir: PathType,
    *,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    resume: bool = False,
    saved_configs: Mapping[str, Any] | None = None,
    evaluate: Evaluate | None = None,
    context: DistContext | None = None,
) -> FitResult:
    """Train ``model`` (an ``nn.Module`` with ``loss(batch)``) on ``train_set``.

    ``resume=True`` continues from ``out_dir/checkpoint.pt`` when there is one (model, optimiser,
    epoch, position inside the epoch, RNG state, elapsed time) and starts afresh otherwise.
    ``saved_configs`` maps names to frozen config dataclasses written into ``config.json``.
    ``evaluate(model)`` runs on rank 0 after each epoch; its values go to ``epochs.csv``.
    Under torchrun (``context.world_size > 1``) the model is wrapped in DistributedDataParallel,
    each rank sees its own shard, and only rank 0 writes files.

    Raises TrainingError naming the step when the loss (averaged over ranks) is NaN or infinite.
    """
    context = context or init_distributed(config.device)
    out = Path(out_dir)
    checkpoint_path = out / CHECKPOINT_NAME
    num_samples = len(train_set)  # type: ignore[arg-type]
    if num_samples == 0:
        raise TrainingError("the training set is empty")

    model.to(context.device)
    optimizer = build_optimizer(model.parameters(), config)
    epoch, samples_in_epoch, step, seconds_before = 0, 0, 0, 0.0
    state = (
        load_checkpoint(checkpoint_path, context.device)
        if resume and checkpoint_path.is_file()
        else None
    )
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as err:
            raise TrainingError(
                f"{checkpoint_path}: does not fit this model/optimiser (changed settings?): {err}"
            ) from None
        epoch, samples_in_epoch = int(state["epoch"]), int(state["samples_in_epoch"])
        step, seconds_before = int(state["step"]), float(state["seconds"])
        LOG.info("resuming %s at epoch %d, step %d", checkpoint_path, epoch + 1, step)
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        configs = {"train": config_to_dict(config)}
        configs.update({name: config_to_dict(c) for name, c in (saved_configs or {}).items()})
        write_json(out / CONFIG_NAME, configs)
    if state is not None and context.is_main:
        set_rng_state(state["rng"])
    else:  # a fresh run, or a rank whose RNG stream rank 0's checkpoint does not hold
        torch.manual_seed(config.seed * 1_000_003 + 7_919 * context.rank + step)

    train_log = (
        CsvLog(out / TRAIN_LOG_NAME, step if state is not None else None)
        if context.is_main
        else None
    )
    epoch_log = (
        CsvLog(out / EPOCH_LOG_NAME, step if state is not None else None)
        if context.is_main
        else None
    )
    board = _TensorBoard(config.tensorboard and context.is_main, out)
    wrapped: nn.Module = _LossForward(model)
    if context.distributed:
        device_ids = [context.device] if context.device.type == "cuda" else None
        wrapped = DistributedDataParallel(wrapped, device_ids=device_ids)

    def checkpoint() -> None:
        if context.is_main:
            save_checkpoint(
                checkpoint_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "samples_in_epoch": samples_in_epoch,
                    "step": step,
                    "seconds": seconds_before + time.monotonic() - started,
                    "rng": rng_state(),
                    "train_config": config_to_dict(config),
                },
            )

    started = log_started = time.monotonic()
    samples_since_log = 0
    step_means, epoch_means = _Means(), _Means()

    def log_row(epoch: int) -> dict[str, float]:
        """Write the means since the last row to the CSV (and TensorBoard); return them."""
        nonlocal log_started, samples_since_log
        now = time.monotonic()
        means = step_means.pop()
        row = {
            "step": step,
            "epoch": epoch + 1,
            "seconds": round(seconds_before + now - started, 3),
            "samples_per_s": round(samples_since_log / max(now - log_started, 1e-9), 1),
            **means,
        }
        log_started, samples_since_log = now, 0
        board.add(means, step)
        if train_log is not None:
            train_log.append(row)
        return means

    budget_s = None if config.max_minutes is None else 60.0 * config.max_minutes
    stopped: StopReason = "epochs"
    last_metrics: dict[str, float] = {}
    saved_at_step = step if state is not None else -1
    while epoch < config.epochs and stopped == "epochs":
        set_epoch = getattr(train_set, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        indices = _epoch_indices(num_samples, epoch, config, context, train_set)
        loader = DataLoader(
            train_set,
            batch_size=config.batch_size,
            sampler=indices[samples_in_epoch:],
            collate_fn=collate_fn,
            num_workers=config.num_workers,
            pin_memory=context.device.type == "cuda",
        )
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not (config.progress and context.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        model.train()
        for batch in bar:
            batch_on_device = move_to(batch, context.device)
            loss, metrics = wrapped(batch_on_device)
            names = list(metrics)
            out_of_time = (
                budget_s is not None and seconds_before + time.monotonic() - started >= budget_s
            )
            packed = torch.tensor(
                [float(loss.detach()), float(out_of_time and context.is_main)]
                + [_as_float(metrics[name]) for name in names],
                dtype=torch.float64,
                device=context.device,
            )
            packed = all_reduce_sum(packed, context)
            global_loss = float(packed[0]) / context.world_size
            if not math.isfinite(global_loss):
                raise TrainingError(
                    f"loss became {global_loss} at step {step + 1} (epoch {epoch + 1}); "
                    "try a lower lr or set grad_clip_norm"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
            optimizer.step()
            step += 1
            batch_size = len(indices[samples_in_epoch : samples_in_epoch + config.batch_size])
            samples_in_epoch += batch_size
            samples_since_log += batch_size * context.world_size
            values = {"loss": global_loss}
            values.update(
                {
                    name: float(v) / context.world_size
                    for name, v in zip(names, packed[2:], strict=True)
                }
            )
            step_means.add(values)
            epoch_means.add(values)
            if step % config.log_every_steps == 0:
                bar.set_postfix(loss=f"{log_row(epoch)['loss']:.4g}")
            if config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
                checkpoint()
                saved_at_step = step
            if packed[1] > 0:
                stopped = "max_minutes"
            elif config.max_steps is not None and step >= config.max_steps:
                stopped = "max_steps"
            if stopped != "epochs":
                break
        bar.close()
        if stopped != "epochs":
            break
        epoch, samples_in_epoch = epoch + 1, 0
        last_metrics = epoch_means.pop()
        if evaluate is not None and context.is_main:
            model.eval()
            with torch.no_grad():
                last_metrics.update({f"eval_{k}": float(v) for k, v in evaluate(model).items()})
        if epoch_log is not None:
            elapsed = round(seconds_before + time.monotonic() - started, 3)
            epoch_log.append({"epoch": epoch, "step": step, "seconds": elapsed, **last_metrics})
        checkpoint()
        saved_at_step = step
        barrier(context)
    if step_means.count:
        log_row(epoch)
    if saved_at_step != step:
        checkpoint()
    board.close()
    barrier(context)
    if not last_metrics:
        last_metrics = epoch_means.pop()
    return FitResult(
        steps=step,
        epochs_completed=epoch,
        seconds=seconds_before + time.monotonic() - started,
        stopped=stopped,
        last_metrics=last_metrics,
        checkpoint=checkpoint_path if context.is_main else None,
    )
