"""The training loop every mapenc model uses: ``fit(model, dataset, TrainConfig, out_dir)``.

The model is any ``nn.Module`` with ``loss(batch) -> (loss, metrics)``: a scalar tensor to
minimise and a dict of floats (or 0-d tensors) to log. ``fit`` owns the rest: device, seeding,
batching (a seeded shuffle per epoch, ``DistributedSampler`` under torchrun), optimiser, progress
bar, CSV logs, atomic checkpoints, exact resumption, NaN checks and the time budget.

The training set is either indexed (a map-style ``Dataset``) or a stream (an ``IterableDataset``
that is a ``SampleStream``, e.g. ``mapenc.data.streaming.StreamingSamples``): its items are whole
batches, an epoch is one pass over it (``set_epoch``), each checkpoint holds its ``state_dict()``
so a resumed run reads on where it was, and under torchrun an epoch ends when the first rank's
stream does (every step needs every rank; the other ranks' last batches of that epoch are left
out). Logs and the progress bar then also give the scenarios and samples of the epoch consumed
(this rank's).

Files in ``out_dir`` (written by rank 0 only):
- ``config.json``: the training config and every config passed in ``saved_configs``;
- ``checkpoint.pt``: model and optimiser ``state_dict``, epoch, step, RNG state (the last one;
  under torchrun every rank's, and a stream's position);
- ``train_log.csv``: one row per ``log_every_steps`` steps (means over those steps);
- ``epochs.csv``: one row per epoch (training means plus whatever ``evaluate`` returned).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset

from mapenc.errors import TrainingError
from mapenc.progress import progress_bar
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
from mapenc.train.distributed import (
    DistContext,
    all_reduce_sum,
    barrier,
    gather_objects,
    init_distributed,
)
from mapenc.train.logs import EPOCH_LOG_NAME, TRAIN_LOG_NAME, CsvLog, RunningMeans, TensorBoardLog
from mapenc.train.parts import (  # the loop's pieces, importable from here as before
    CHECKPOINT_KEYS,
    FitResult,
    LossForward,
    LossModel,
    SampleStream,
    StopReason,
    as_float,
    build_optimizer,
    count_parameters,
    epoch_indices,
    loader_generator,
    move_to,
    seed_everything,
)
from mapenc.train.run_folder import claim_run_folder, start_fresh_run

__all__ = [
    "EPOCH_LOG_NAME",
    "TRAIN_LOG_NAME",
    "CsvLog",
    "FitResult",
    "LossModel",
    "SampleStream",
    "Trainer",
    "build_optimizer",
    "count_parameters",
    "fit",
    "move_to",
    "seed_everything",
]
PathType = str | PathLike[str]
Evaluate = Callable[[nn.Module], Mapping[str, float]]
STREAM_METHODS = ("set_epoch", "state_dict", "load_state_dict", "mark_consumed")

LOG = logging.getLogger(__name__)


def as_stream(train_set: Dataset[Any]) -> SampleStream | None:
    """``train_set`` as a SampleStream when it is an ``IterableDataset``; None for an indexed one.
    Raises TrainingError when an iterable one cannot be resumed (no SampleStream methods)."""
    if not isinstance(train_set, IterableDataset):
        return None
    missing = [name for name in STREAM_METHODS if not callable(getattr(train_set, name, None))]
    if missing or not hasattr(train_set, "progress"):
        raise TrainingError(
            f"an iterable training set must be a SampleStream; it has no {missing or 'progress'}"
        )
    return cast(SampleStream, train_set)


def batch_length(batch: Any) -> int:
    """Samples in a streamed batch: the length of its first entry (a dict of stacked tensors)."""
    return len(next(iter(batch.values())) if isinstance(batch, Mapping) else batch[0])


class Trainer:
    """One training run of ``model`` on ``train_set`` into ``out_dir``; ``fit`` is its front door.

    Progress (``epoch``, ``samples_in_epoch``, ``step``, training ``seconds``) lives on the object
    and in every checkpoint, so a resumed run continues mid-epoch with the same sample order.
    """

    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset[Any],
        config: TrainConfig,
        out_dir: PathType,
        *,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        evaluate: Evaluate | None = None,
        context: DistContext | None = None,
    ) -> None:
        self.context = context or init_distributed(config.device)
        self.stream = as_stream(train_set)
        # A stream's length is known only once read through; indexed sets must not be empty.
        self.num_samples = 0 if self.stream is not None else len(train_set)  # type: ignore[arg-type]
        if self.stream is None and self.num_samples == 0:
            raise TrainingError("the training set is empty")
        self.model = model.to(self.context.device)
        self.train_set = train_set
        self.config = config
        self.out = Path(out_dir)
        self.checkpoint_path = self.out / CHECKPOINT_NAME
        self.collate_fn = collate_fn
        self.evaluate = evaluate
        self.optimizer = build_optimizer(model.parameters(), config)
        self.epoch, self.samples_in_epoch, self.step, self.seconds_before = 0, 0, 0, 0.0
        self.saved_at_step = -1
        self.random_state_resumed = False
        self.started = self.log_started = time.monotonic()
        self.samples_since_log = 0
        self.step_means, self.epoch_means = RunningMeans(), RunningMeans()
        self.train_log: CsvLog | None = None
        self.epoch_log: CsvLog | None = None
        self.board: TensorBoardLog | None = None
        self.wrapped: nn.Module = LossForward(model)
        if self.context.distributed:
            device_ids = [self.context.device] if self.context.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.wrapped, device_ids=device_ids)

    def seconds(self) -> float:
        """Training wall-clock seconds so far, resumed runs included."""
        return self.seconds_before + time.monotonic() - self.started

    def resume(self) -> bool:
        """Load ``checkpoint.pt`` when there is one; True when training continues from it."""
        if not self.checkpoint_path.is_file():
            return False
        state = load_checkpoint(self.checkpoint_path, self.context.device)
        missing = sorted(set(CHECKPOINT_KEYS) - set(state))
        if missing:
            raise TrainingError(
                f"{self.checkpoint_path}: not a training checkpoint of fit (no {missing})"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise TrainingError(
                f"{self.checkpoint_path}: does not fit this model/optimiser (changed settings?): "
                f"{first_line}"
            ) from None
        self.epoch, self.samples_in_epoch = int(state["epoch"]), int(state["samples_in_epoch"])
        self.step, self.seconds_before = int(state["step"]), float(state["seconds"])
        self.saved_at_step = self.step
        if (self.stream is None) != ("stream" not in state):
            kinds = ("an indexed", "a streamed")
            written, now = kinds if self.stream is not None else kinds[::-1]
            raise TrainingError(
                f"{self.checkpoint_path}: written by a run on {written} training set; this run "
                f"trains on {now} one"
            )
        if self.stream is not None:
            positions = state["stream"]
            if len(positions) != self.context.world_size:
                raise TrainingError(
                    f"{self.checkpoint_path}: holds the stream positions of {len(positions)} "
                    f"ranks; this run has {self.context.world_size}"
                )
            self.stream.load_state_dict(positions[self.context.rank])
        # Every rank's random state under torchrun (checkpoints of earlier versions: rank 0's).
        by_rank = state.get("rng_by_rank")
        if by_rank is not None and len(by_rank) == self.context.world_size:
            set_rng_state(by_rank[self.context.rank])
            self.random_state_resumed = True
        elif self.context.is_main:
            set_rng_state(state["rng"])
            self.random_state_resumed = True
        LOG.info(
            "resuming %s at epoch %d, step %d", self.checkpoint_path, self.epoch + 1, self.step
        )
        return True

    def run(
        self,
        resume: bool = False,
        saved_configs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> FitResult:
        """Train until ``config.epochs`` (or ``max_steps`` / ``max_minutes``); see ``fit``."""
        with claim_run_folder(self.out, resume, overwrite, main=self.context.is_main):
            return self._run(resume, saved_configs)

    def _run(self, resume: bool, saved_configs: Mapping[str, Any] | None) -> FitResult:
        """``run`` once the run folder is held."""
        resumed = resume and self.resume()
        if not (resumed and self.random_state_resumed):
            # A fresh run, or a rank whose RNG stream the checkpoint does not hold.
            torch.manual_seed(self.config.seed * 1_000_003 + 7_919 * self.context.rank + self.step)
        if self.context.is_main:
            if not resumed:
                start_fresh_run(self.out)
            configs = {"train": config_to_dict(self.config)}
            configs.update({name: config_to_dict(c) for name, c in (saved_configs or {}).items()})
            write_json(self.out / CONFIG_NAME, configs)
            keep_until = self.step if resumed else None
            self.train_log = CsvLog(self.out / TRAIN_LOG_NAME, keep_until)
            self.epoch_log = CsvLog(self.out / EPOCH_LOG_NAME, keep_until)
        self.board = TensorBoardLog(self.config.tensorboard and self.context.is_main, self.out)
        self.started = self.log_started = time.monotonic()
        stopped = self._budget_spent()
        first_step = self.step
        last_metrics: dict[str, float] = {}
        while self.epoch < self.config.epochs and stopped is None:
            stopped = self._run_epoch()
            if stopped is None:
                last_metrics = self._finish_epoch()
        if self.step_means.count:
            self._log_row()
        if self.evaluate and stopped and self.samples_in_epoch and self.step > first_step:
            last_metrics = self._score_last_weights()
        if self.saved_at_step != self.step:
            self._checkpoint()
        self.board.close()
        barrier(self.context)
        return FitResult(
            steps=self.step,
            epochs_completed=self.epoch,
            seconds=self.seconds(),
            stopped=stopped or "epochs",
            last_metrics=last_metrics or self.epoch_means.pop(),
            checkpoint=self.checkpoint_path if self.context.is_main else None,
        )

    def _budget_spent(self) -> StopReason | None:
        """The budget a resumed run had already used up (then it trains no further step)."""
        if self.config.max_steps is not None and self.step >= self.config.max_steps:
            return "max_steps"
        if (
            self.config.max_minutes is not None
            and self.seconds_before >= 60.0 * self.config.max_minutes
        ):
            return "max_minutes"
        return None

    def _run_epoch(self) -> StopReason | None:
        """Train on the rest of the current epoch; the reason to stop early, if any."""
        if self.stream is not None:
            batches, size_of = self._stream_batches(self.stream)
        else:
            batches, size_of = self._indexed_batches()
        bar = progress_bar(
            batches,
            desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
            enabled=self.config.progress and self.context.is_main,
            leave=False,
            dynamic_ncols=True,
        )
        self.model.train()
        stopped: StopReason | None = None
        from_start = self.samples_in_epoch == 0
        for batch in bar:
            stopped = self._train_step(batch, size_of(batch))
            if self.stream is not None:
                self.stream.mark_consumed(batch)
            if self.step % self.config.log_every_steps == 0:
                shown = {"loss": f"{self._log_row()['loss']:.4g}", **self._stream_progress()}
                bar.set_postfix(shown, refresh=False)
            every = self.config.checkpoint_every_steps
            if every and self.step % every == 0:
                self._checkpoint()
            if stopped is not None:
                break
        bar.close()
        if from_start and self.samples_in_epoch == 0:
            raise TrainingError(f"the training set gave no batch in epoch {self.epoch + 1}")
        return stopped

    def _loader_settings(self) -> dict[str, Any]:
        """DataLoader settings shared by indexed and streamed training sets."""
        return {
            "num_workers": self.config.num_workers,
            "pin_memory": self.context.device.type == "cuda",
            # Its own generator, seeded by (seed, epoch, rank): creating the loader's iterator
            # then draws nothing from the global RNG, so a resumed run draws what the
            # uninterrupted run drew (worker seeds come from it too).
            "generator": loader_generator(self.config.seed, self.epoch, self.context.rank),
        }

    def _indexed_batches(self) -> tuple[Iterable[Any], Callable[[Any], int]]:
        """The rest of this epoch's batches of an indexed training set (this rank's part of a
        seeded permutation), and the number of samples of each."""
        set_epoch = getattr(self.train_set, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        indices = epoch_indices(
            self.num_samples, self.epoch, self.config, self.context, self.train_set
        )
        loader = DataLoader(
            self.train_set,
            batch_size=self.config.batch_size,
            sampler=indices[self.samples_in_epoch :],
            collate_fn=self.collate_fn,
            **self._loader_settings(),
        )

        def size_of(_batch: Any) -> int:
            start = self.samples_in_epoch
            return len(indices[start : start + self.config.batch_size])

        return loader, size_of

    def _stream_batches(self, stream: SampleStream) -> tuple[Iterable[Any], Callable[[Any], int]]:
        """The rest of this epoch's batches of the stream (from its start unless a checkpoint
        put the stream mid-epoch) while every rank has one, and the number of samples of each."""
        if self.samples_in_epoch == 0:
            stream.set_epoch(self.epoch)
        loader = DataLoader(
            cast(IterableDataset[Any], stream), batch_size=None, **self._loader_settings()
        )
        return self._while_every_rank_has_one(loader), batch_length

    def _while_every_rank_has_one(self, batches: Iterable[Any]) -> Iterator[Any]:
        """``batches`` until a rank has none left (each step needs all ranks); all of them in a
        single process."""
        if not self.context.distributed:
            yield from batches
            return
        for batch in itertools.chain(batches, [None]):
            ended = torch.tensor([float(batch is None)], device=self.context.device)
            if float(all_reduce_sum(ended, self.context)[0]) > 0:
                return
            yield batch

    def _stream_progress(self) -> dict[str, int]:
        """Scenarios and samples of the epoch this rank has consumed (nothing when indexed)."""
        if self.stream is None:
            return {}
        progress = self.stream.progress
        return {"scenarios": progress.scenarios, "samples": progress.samples}

    def _train_step(self, batch: Any, batch_size: int) -> StopReason | None:
        """One optimiser step on ``batch`` (``batch_size`` samples on this rank); the reason to
        stop after it, if any. Loss, metrics and rank 0's time-budget flag travel in one
        all-reduce, so every rank sees the same loss and stops at the same step."""
        loss, metrics = self.wrapped(move_to(batch, self.context.device))
        names = list(metrics)
        budget_s = None if self.config.max_minutes is None else 60.0 * self.config.max_minutes
        out_of_time = budget_s is not None and self.seconds() >= budget_s and self.context.is_main
        packed = torch.tensor(
            [float(loss.detach()), float(out_of_time)] + [as_float(metrics[n]) for n in names],
            dtype=torch.float64,
            device=self.context.device,
        )
        packed = all_reduce_sum(packed, self.context) / self.context.world_size
        values = {"loss": float(packed[0])}
        if not math.isfinite(values["loss"]):
            raise TrainingError(
                f"loss became {values['loss']} at step {self.step + 1} (epoch {self.epoch + 1}); "
                "try a lower lr or set grad_clip_norm"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
        self.optimizer.step()
        self.step += 1
        self.samples_in_epoch += batch_size
        self.samples_since_log += batch_size * self.context.world_size
        values.update({name: float(v) for name, v in zip(names, packed[2:], strict=True)})
        self.step_means.add(values)
        self.epoch_means.add(values)
        if packed[1] > 0:
            return "max_minutes"
        if self.config.max_steps is not None and self.step >= self.config.max_steps:
            return "max_steps"
        return None

    def _finish_epoch(self) -> dict[str, float]:
        """Close the epoch: evaluate (rank 0), write ``epochs.csv``, checkpoint; the epoch's means."""
        self.epoch, self.samples_in_epoch = self.epoch + 1, 0
        metrics = self._evaluate_and_log(self.epoch)
        self._checkpoint()
        barrier(self.context)
        return metrics

    def _score_last_weights(self) -> dict[str, float]:
        """Evaluate the weights a budget stopped on in the middle of an epoch, as at the end of
        an epoch (so a selection on held-out data sees the last weights too); ``epochs.csv``
        gives the epoch as a fraction (for a stream, whose length is unknown, the epochs
        completed). The epoch stays open and the random state is put back: a
        resumed run goes on from here as if this evaluation had not been made (the run's last
        checkpoint, written after this, holds the random state of its last step)."""
        done = 0.0
        if self.stream is None:
            done = self.samples_in_epoch * self.context.world_size / self.num_samples
        random_state = rng_state()
        metrics = self._evaluate_and_log(round(self.epoch + min(done, 1.0), 3))
        set_rng_state(random_state)
        barrier(self.context)
        return metrics

    def _evaluate_and_log(self, epoch: float) -> dict[str, float]:
        """The means since the last call, with the scores of ``evaluate`` (rank 0) under
        ``eval_*``; a row of ``epochs.csv`` at ``epoch``."""
        metrics = self.epoch_means.pop()
        if self.evaluate is not None and self.context.is_main:
            self.model.eval()
            with torch.no_grad():
                metrics.update(
                    {f"eval_{k}": float(v) for k, v in self.evaluate(self.model).items()}
                )
        if self.epoch_log is not None:
            row = {"epoch": epoch, "step": self.step, "seconds": round(self.seconds(), 3)}
            self.epoch_log.append({**row, **metrics})
        return metrics

    def _log_row(self) -> dict[str, float]:
        """Write the means since the last row to ``train_log.csv`` (and TensorBoard)."""
        now = time.monotonic()
        means = self.step_means.pop()
        rate = self.samples_since_log / max(now - self.log_started, 1e-9)
        row = {
            "step": self.step,
            "epoch": self.epoch + 1,
            "seconds": round(self.seconds(), 3),
            "samples_per_s": round(rate, 1),
            **self._stream_progress(),
            **means,
        }
        self.log_started, self.samples_since_log = now, 0
        if self.board is not None:
            self.board.add(means, self.step)
        if self.train_log is not None:
            self.train_log.append(row)
        return means

    def _checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (rank 0 only; under torchrun every rank's random
        state under ``rng_by_rank``, with a stream every rank's position under ``stream``, lists
        by rank)."""
        self.saved_at_step = self.step
        # Every rank's random state and stream position (their workers may run out of shards at
        # different batches), so that each rank resumes as it was.
        random_states = gather_objects(rng_state(), self.context)
        positions = None
        if self.stream is not None:
            positions = gather_objects(self.stream.state_dict(), self.context)
        if not self.context.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "samples_in_epoch": self.samples_in_epoch,
            "step": self.step,
            "seconds": self.seconds(),
            "rng": random_states[0],
            "train_config": config_to_dict(self.config),
        }
        if self.context.distributed:
            state["rng_by_rank"] = random_states
        if positions is not None:
            state["stream"] = positions
        save_checkpoint(self.checkpoint_path, state)


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
    overwrite: bool = False,
) -> FitResult:
    """Train ``model`` (an ``nn.Module`` with ``loss(batch)``) on ``train_set``.

    ``resume=True`` continues from ``out_dir/checkpoint.pt`` when there is one (model, optimiser,
    epoch, position inside the epoch, RNG state, elapsed time), bit-identically to a run that was
    never interrupted, and starts afresh otherwise; a finished run resumed trains no further.
    Without ``resume``, a folder that holds a run already is refused unless ``overwrite``. The
    folder is locked while training (``mapenc.train.run_folder``): a second writer is refused.
    ``saved_configs`` maps names to frozen config dataclasses written into ``config.json``.
    ``evaluate(model)`` runs on rank 0 after each epoch; its values go to ``epochs.csv``.
    Under torchrun (``context.world_size > 1``) the model is wrapped in DistributedDataParallel,
    each rank sees its own shard, and only rank 0 writes files.

    Raises TrainingError naming the step when the loss (averaged over ranks) is NaN or infinite,
    and for a held or already used run folder (see above).
    """
    trainer = Trainer(
        model,
        train_set,
        config,
        out_dir,
        collate_fn=collate_fn,
        evaluate=evaluate,
        context=context,
    )
    return trainer.run(resume=resume, saved_configs=saved_configs, overwrite=overwrite)
