"""Trajectory samples streamed from shards: memory bounded by one scenario and a shuffle buffer,
whatever the number of shards.

``StreamingSamples`` is a torch ``IterableDataset`` over shard files (Waymo TFRecord shards,
scenario-store shards from ``mapenc prepare``, or any file or scene folder ``iter_scenarios``
reads). Per epoch:

- the shard order is a permutation drawn from ``(seed, epoch)``, the same on every rank;
- shard ``k`` of that order goes to the reader ``k mod R``, where the R = ranks x workers readers
  are numbered ``rank * workers + worker`` (DDP rank from ``torch.distributed`` when it is
  initialised, DataLoader worker from ``get_worker_info``): every scenario is read by exactly one
  reader, and the readers' scenarios together are all of them;
- each reader reads its shards one scenario at a time, cuts the scenario's samples
  (``extract_samples``), makes their items with the in-memory datasets on that one scenario
  (``dataset_of``: a ``TrajectoryDataset`` by default, ``ContextSettings.dataset`` for what the
  trajectory model trains on; rasters drawn into memory, no cache file) and passes them through
  a shuffle buffer of ``shuffle_buffer`` samples drawn from ``(seed, epoch, reader)``.

Items are whole batches of ``batch_size`` samples (use ``DataLoader(dataset, batch_size=None,
num_workers=W)``): the DataLoader hands out its workers' batches in turn (passing over workers
that have none left), so the stream of a rank is a fixed function of (seed, epoch, ranks,
workers). ``state_dict()`` / ``load_state_dict()`` carry the epoch, the batches the rank has
consumed of each worker (``mark_consumed``; each batch names its worker) and the worker of the
last one; a resumed stream (with the same number of workers) skips exactly those and takes up
the turns after that worker, so a killed run resumes where it was. ``progress`` counts the
scenarios and samples of the batches handed to ``mark_consumed`` (in the training process,
whatever the number of workers).

A batch is the dict of the dataset's items stacked (by default the ``TrajectoryDataset`` ones:
``past`` (B, P, 2), ``past_heading``, ``velocity``, ``future``, ``raster`` (B, C, H, W)), each
sample's item equal to the one of the same sample in the in-memory dataset, except that its
``index`` (a position in a data set the stream never holds) is replaced by ``scenario_key`` (B,)
int64, a stable hash of each sample's scenario id or source (for checks that the ranks read
disjoint scenarios); ``stream_worker`` (B,) int64 is the (logical) DataLoader worker that made
the batch and ``stream_workers`` (B,) int64 how many workers there were, for ``mark_consumed``.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from mapenc.data.traj_dataset import TrajectoryDataset
from mapenc.data.trajectory import TrajSamples, TrajTask, extract_samples
from mapenc.errors import ConfigError
from mapenc.maps import Scenario, iter_scenarios
from mapenc.raster import RasterSpec
from mapenc.raster.rasterizer import Mode

# The dataset of one scenario's samples: (samples, [scenario]) -> items.
ScenarioItems = Callable[[TrajSamples, Sequence[Scenario]], Dataset[dict[str, torch.Tensor]]]


@dataclass
class StreamProgress:
    """What training has consumed of the stream this epoch (since it was started or resumed):
    scenarios seen, samples."""

    scenarios: int = 0
    samples: int = 0
    _seen: set[int] = field(default_factory=set, repr=False)

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        """Count a batch's samples and the scenarios (by ``scenario_key``) not seen before."""
        self.samples += len(batch["scenario_key"])
        self._seen.update(batch["scenario_key"].tolist())
        self.scenarios = len(self._seen)


def scenario_key(scenario: Scenario) -> int:
    """A stable 63-bit key of a scenario (its id, else its source), the same in every process."""
    name = scenario.scenario_id or scenario.source
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") >> 1


def _place() -> tuple[int, int, int, int]:
    """(rank, ranks, worker, workers) of the calling process (rank 0 of 1 without DDP, worker 0
    of 1 outside DataLoader workers)."""
    rank, ranks = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, ranks = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = get_worker_info()
    worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
    return rank, ranks, worker, workers


class StreamingSamples(IterableDataset[dict[str, torch.Tensor]]):
    """Samples of the scenarios in ``shards``, streamed (see the module docstring).

    Args:
        shards: shard files (or any paths ``iter_scenarios`` reads), at least one.
        task: how samples are cut from a scenario.
        spec: raster size and layers of the default items.
        mode: Rasterizer mode of the default items ("exact", "fast" or "auto"; not "torch").
        batch_size: samples per batch.
        seed: seed of the shard order and the shuffle buffers.
        shuffle_buffer: samples held for shuffling (1: the stream's own order).
        dataset_of: the items of one scenario's samples (default: the ``TrajectoryDataset`` of
            ``spec`` and ``mode``, rasters in memory); it must rasterize on the CPU and pickle
            (DataLoader workers).
    """

    def __init__(
        self,
        shards: Sequence[str | Path],
        task: TrajTask,
        spec: RasterSpec,
        mode: Mode = "exact",
        batch_size: int = 64,
        seed: int = 0,
        shuffle_buffer: int = 1024,
        dataset_of: ScenarioItems | None = None,
    ) -> None:
        if not shards:
            raise ConfigError("StreamingSamples needs at least one shard")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if shuffle_buffer < 1:
            raise ConfigError(f"shuffle_buffer must be >= 1, got {shuffle_buffer}")
        if mode == "torch":
            raise ConfigError("StreamingSamples rasterizes on the CPU: mode exact, fast or auto")
        self.shards = [Path(s) for s in shards]
        self.task = task
        self.spec = spec
        self.mode = mode
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.epoch = 0
        self.consumed = 0  # batches of this epoch this rank has handed to training
        self.consumed_by_worker: list[int] = []  # of them, those of each (logical) worker
        self.last_worker = -1  # the worker of the last one (-1: none yet)
        self.workers = 0  # DataLoader workers of the batches consumed (0: none consumed yet)
        self.progress = StreamProgress()
        self.dataset_of = dataset_of or functools.partial(
            TrajectoryDataset, spec=spec, task=task, cache_dir=None, mode=mode, progress=False
        )

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (a new shard order and shuffle) from its beginning."""
        self.load_state_dict(
            {"epoch": epoch, "consumed_by_worker": [], "last_worker": -1, "workers": 0}
        )
        self.progress = StreamProgress()

    def state_dict(self) -> dict[str, Any]:
        """Where the rank's stream is: ``epoch``, the batches of that epoch ``consumed`` in all
        and by each worker (``consumed_by_worker``), the worker of the last (``last_worker``, -1
        before the first) and the number of DataLoader workers that made them (``workers``, 0
        before the first; the stream goes on only with as many)."""
        return {
            "epoch": self.epoch,
            "consumed": self.consumed,
            "consumed_by_worker": list(self.consumed_by_worker),
            "last_worker": self.last_worker,
            "workers": self.workers,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a ``state_dict()``: the next iteration skips the consumed batches.
        Raises ConfigError for a state without the fields of ``state_dict()``."""
        missing = sorted({"epoch", "consumed_by_worker", "last_worker", "workers"} - set(state))
        if missing:
            raise ConfigError(f"not a StreamingSamples state_dict(): no {', '.join(missing)}")
        self.epoch = int(state["epoch"])
        self.consumed_by_worker = [int(n) for n in state["consumed_by_worker"]]
        self.consumed = sum(self.consumed_by_worker)
        self.last_worker = int(state["last_worker"])
        self.workers = int(state["workers"])

    def mark_consumed(self, batch: dict[str, torch.Tensor]) -> None:
        """Record that training used ``batch``, the next batch of this epoch (and count it in
        ``progress``)."""
        worker = int(batch["stream_worker"][0])
        missing = worker + 1 - len(self.consumed_by_worker)
        self.consumed_by_worker.extend([0] * max(missing, 0))
        self.consumed_by_worker[worker] += 1
        self.consumed += 1
        self.last_worker = worker
        self.workers = int(batch["stream_workers"][0])
        self.progress.add(batch)

    def shards_of(self, reader: int, readers: int) -> list[Path]:
        """The shards reader ``reader`` of ``readers`` reads this epoch, in reading order."""
        order = list(range(len(self.shards)))
        random.Random(f"{self.seed}:{self.epoch}").shuffle(order)
        return [self.shards[k] for k in order[reader::readers]]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rank, ranks, worker, workers = _place()
        if self.workers and self.workers != workers and self.consumed:
            raise ConfigError(
                f"the stream's batches so far came from {self.workers} DataLoader worker(s); it "
                f"goes on only with as many, not {workers}"
            )
        # The DataLoader takes its workers' batches in turn from worker 0, passing over workers
        # that have none left. The turn after the last consumed batch is the next worker's:
        # worker w plays the logical worker (w + last_worker + 1) % workers and skips the
        # batches of that worker already consumed.
        logical = (worker + self.last_worker + 1) % workers
        by_worker = self.consumed_by_worker
        skip = by_worker[logical] if logical < len(by_worker) else 0
        reader, readers = rank * workers + logical, ranks * workers
        rng = random.Random(f"{self.seed}:{self.epoch}:{reader}")
        items = self._shuffled(self._items(reader, readers), rng, [])
        for index, batch in enumerate(self._batches(items)):
            if index >= skip:
                batch["stream_worker"] = torch.full_like(batch["scenario_key"], logical)
                batch["stream_workers"] = torch.full_like(batch["scenario_key"], workers)
                yield batch

    def _batches(
        self, items: Iterator[dict[str, torch.Tensor]]
    ) -> Iterator[dict[str, torch.Tensor]]:
        """``items`` stacked ``batch_size`` at a time (the last batch may be smaller)."""
        batch: list[dict[str, torch.Tensor]] = []
        for item in items:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield {key: torch.stack([b[key] for b in batch]) for key in batch[0]}
                batch = []
        if batch:
            yield {key: torch.stack([b[key] for b in batch]) for key in batch[0]}

    def _shuffled(
        self,
        items: Iterator[dict[str, torch.Tensor]],
        rng: random.Random,
        buffer: list[dict[str, torch.Tensor]],
    ) -> Iterator[dict[str, torch.Tensor]]:
        """``items`` through a shuffle buffer: once full, each new item takes the place of a
        random one, which is given out."""
        for item in items:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(item)
                continue
            slot = rng.randrange(len(buffer))
            buffer[slot], item = item, buffer[slot]
            yield item
        rng.shuffle(buffer)
        yield from buffer
        buffer.clear()

    def _items(self, reader: int, readers: int) -> Iterator[dict[str, torch.Tensor]]:
        """Every sample of the reader's shards, scenario by scenario, rasterized."""
        for shard in self.shards_of(reader, readers):
            for scenario in iter_scenarios(shard):
                yield from self._scenario_items(scenario)

    def _scenario_items(self, scenario: Scenario) -> Iterator[dict[str, torch.Tensor]]:
        """The items of the scenario's samples (none when it has no sample)."""
        samples = extract_samples(scenario, self.task)
        if not len(samples):
            return
        dataset = self.dataset_of(samples, [scenario])
        key = torch.tensor(scenario_key(scenario), dtype=torch.int64)
        for i in range(len(samples)):
            item = dataset[i]
            del item["index"]
            item["scenario_key"] = key
            yield item
