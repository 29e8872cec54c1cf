"""What a trajectory run is made of: its config (``TrajExperimentConfig``), the raster presets,
and the scenes, samples and dataset (cached rasters, anchors, neighbours) of one split."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapenc.data.context import ContextDataset, ContextSettings
from mapenc.data.streaming import StreamingSamples
from mapenc.data.traj_sources import load_scenarios, scene_names, shard_files, split_scenarios
from mapenc.data.trajectory import (
    AV2_TASK,
    NGSIM_TASK,
    TrajSamples,
    TrajTask,
    samples_from_scenarios,
)
from mapenc.errors import ConfigError, DataError
from mapenc.maps.polylines import PolylineSpec
from mapenc.maps.types import Scenario
from mapenc.raster import RASTER_MODES, RasterSpec
from mapenc.train import TrainConfig
from mapenc.vae.trajectory import TrajCVAEConfig, uses_polylines

# NGSIM: 64 m x 64 m at 1 m/px, 48 m ahead of the agent; lane geometry, road edges and direction.
NGSIM_RASTER = RasterSpec(
    size_px=(64, 64),
    pixel_size_m=1.0,
    agent_at=(0.25, 0.5),
    layers=(
        "drivable_area",
        "lane_boundaries",
        "centerlines",
        "lane_heading_sin",
        "lane_heading_cos",
    ),
)
# Synthetic towns: the NGSIM layers on a 48 m x 48 m window, enough for their short blocks.
SYNTHETIC_RASTER = dataclasses.replace(NGSIM_RASTER, size_px=(48, 48))
# Raster layers whose values change sign when the picture is mirrored left-right.
SIGN_FLIP_LAYERS = ("lane_heading_sin",)
TRAJ_TASKS: dict[str, TrajTask] = {"ngsim": NGSIM_TASK, "av2": AV2_TASK}
CACHE_ENV = "MAPENC_CACHE"


def default_cache_dir() -> str:
    """``$MAPENC_CACHE/traj`` or ``~/.cache/mapenc/traj``: where raster caches live."""
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "mapenc")
    return str(Path(root) / "traj")


@dataclass(frozen=True)
class TrajExperimentConfig:
    """Everything a train-traj run depends on (saved beside its checkpoint).

    The raster and the task state the input shapes once: the model's ``raster_channels``,
    ``raster_size``, ``history_steps``, ``future_steps`` and ``dt`` are filled in from them.

    Attributes:
        data: data paths (``mapenc.data.traj_sources.load_scenarios``): Waymo TFRecord shards,
            scenario-store shards (mapenc prepare), CommonRoad files or folders, AV2 or generic
            scene folders, synthetic[:N].
        split: the split trained on ("train", "val", "test" or "all"); with stream, all of the
            data is trained on ("train" or "all" only).
        task: history/future lengths and sampling.
        raster: the raster spec of the map branch (ignored without the map).
        model: the TrajectoryCVAE architecture.
        train: the training loop's settings (gradients clipped to norm 5 by default).
        cache_dir: raster cache folder ("" = $MAPENC_CACHE/traj or ~/.cache/mapenc/traj).
        raster_mode: Rasterizer mode (``mapenc.raster.RASTER_MODES``): "auto" (default: exact
            for scenes with few poses, fast where many share one map), "exact" and "fast" build
            the raster cache; "torch" draws each batch's rasters on the model's device inside its
            map branch (no cache, and no DataLoader workers: ``train.num_workers`` must be 0).
        skip_bad: leave out (and list) scene files that cannot be read, instead of failing.
        select_on_val: when training on "train", score minFDE_6 on the val split (or on
            val_data) after every epoch and keep the best weights (``best_val.pt``), which
            ``load_run`` then loads (without val samples, the last weights are used).
        stream: stream the training data from its shards (``mapenc.data.streaming``) instead of
            holding it in memory: every scenario of the data paths is trained on, read whole as
            the training split (the official Waymo Open Motion training folder is one), since
            the leak-free split planner needs all scenarios in memory; give held-out data with
            val_data. Rasters are drawn on the fly (no cache; not raster_mode "torch").
        val_data: data paths scored whole (split "all") for select_on_val, instead of the val
            split of data (e.g. the official Waymo Open Motion validation folder); held in
            memory.
        shuffle_buffer: with stream, samples held for shuffling (per DataLoader worker).
    """

    data: tuple[str, ...] = ("synthetic",)
    split: str = "train"
    task: TrajTask = NGSIM_TASK
    raster: RasterSpec = NGSIM_RASTER
    model: TrajCVAEConfig = field(default_factory=TrajCVAEConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=10, batch_size=64, grad_clip_norm=5.0)
    )
    cache_dir: str = ""
    raster_mode: str = "auto"
    skip_bad: bool = False
    select_on_val: bool = True
    stream: bool = False
    val_data: tuple[str, ...] = ()
    shuffle_buffer: int = 1024

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("TrajExperimentConfig.data is empty: give at least one data path")
        if self.stream and self.split not in ("train", "all"):
            raise ConfigError(
                f"split={self.split!r} with stream: a streamed run trains on all of its data "
                "(the split planner needs every scenario in memory); give held-out data with "
                "val_data, and score test data with eval-traj"
            )
        if self.stream and self.raster_mode == "torch":
            raise ConfigError(
                "stream draws rasters in the data loader: raster_mode cannot be torch"
            )
        if self.raster_mode not in RASTER_MODES:
            raise ConfigError(f"raster_mode={self.raster_mode!r}: expected one of {RASTER_MODES}")
        if self.raster_mode == "torch" and self.train.num_workers:
            raise ConfigError(
                "raster_mode='torch' draws rasters on the model's device, in the main process: "
                f"num_workers must be 0, got {self.train.num_workers}"
            )
        shaped = dataclasses.replace(
            self.model,
            raster_channels=self.raster.num_channels,
            raster_size=self.raster.size_px,
            history_steps=self.task.history_steps,
            future_steps=self.task.future_steps,
            dt=self.task.dt,
            flip_sign_channels=tuple(
                i for i, name in enumerate(self.raster.layers) if name in SIGN_FLIP_LAYERS
            ),
        )
        object.__setattr__(self, "model", shaped)


def make_experiment_config(
    data: Sequence[str],
    *,
    encoder: str = "conv-spatial",
    use_map: bool = True,
    task: TrajTask = NGSIM_TASK,
    raster: RasterSpec = NGSIM_RASTER,
    train: TrainConfig | None = None,
    **model_settings: Any,
) -> TrajExperimentConfig:
    """A TrajExperimentConfig from the usual choices (``model_settings``: TrajCVAEConfig fields)."""
    config = TrajExperimentConfig(
        data=tuple(data),
        task=task,
        raster=raster,
        model=TrajCVAEConfig(use_map=use_map, map_encoder=encoder, **model_settings),
    )
    return config if train is None else dataclasses.replace(config, train=train)


def polyline_spec(config: TrajExperimentConfig) -> PolylineSpec | None:
    """The polylines a vector map encoder sees: the raster's window; None for other models."""
    if not uses_polylines(config.model):
        return None
    return PolylineSpec(extent_m=config.raster.extent_m)


def context_settings(config: TrajExperimentConfig) -> ContextSettings:
    """How the run's samples become model items (rasters, anchors, neighbours, polylines)."""
    return ContextSettings(
        spec=config.raster,
        task=config.task,
        mode=config.raster_mode,  # type: ignore[arg-type]
        modes=config.model.modes,
        anchors="lane" if config.model.anchor_kind == "lane" else "kinematic",
        max_neighbours=config.model.max_neighbours,
        standing=config.model.standing_mode,
        polylines=polyline_spec(config),
    )


def streamed_training_set(config: TrajExperimentConfig) -> StreamingSamples:
    """Every sample of the shards under ``config.data``, streamed as batches of the items the
    model trains on (``context_settings``), shuffled and ordered by the training seed."""
    return StreamingSamples(
        shard_files(config.data),
        config.task,
        config.raster,
        mode=config.raster_mode,  # type: ignore[arg-type]
        batch_size=config.train.batch_size,
        seed=config.train.seed,
        shuffle_buffer=config.shuffle_buffer,
        dataset_of=functools.partial(context_settings(config).dataset, cache_dir=None),
    )


@dataclass
class SplitData:
    """The scenarios (and their names), samples and dataset (cached rasters, anchors, neighbours)
    of one split, and the scene files left out as unreadable (path -> problem; None unless
    unreadable files were to be skipped)."""

    scenarios: list[Scenario]
    samples: TrajSamples
    dataset: ContextDataset
    names: list[str]
    skipped: dict[str, str] | None = None


def load_split(
    config: TrajExperimentConfig,
    split: str,
    data: Sequence[str] | None = None,
    progress: bool = True,
    skip_bad: bool = False,
) -> SplitData:
    """Scenarios of ``split`` from ``data`` (default ``config.data``), samples and dataset; with
    ``skip_bad``, unreadable scene files are left out and listed instead of raising."""
    paths = tuple(data or config.data)
    skipped: dict[str, str] | None = {} if skip_bad else None
    scenarios = split_scenarios(load_scenarios(paths, skipped), split, paths)
    if not scenarios:
        raise DataError(f"split {split!r} of {', '.join(paths)} holds no scenario")
    samples = samples_from_scenarios(scenarios, config.task)
    cache_dir = config.cache_dir or default_cache_dir()
    dataset = context_settings(config).dataset(samples, scenarios, cache_dir, progress)
    return SplitData(scenarios, samples, dataset, scene_names(scenarios, paths), skipped)
