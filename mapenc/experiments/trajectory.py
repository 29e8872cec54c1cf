"""The trajectory experiment: the map-conditioned TrajectoryCVAE end to end (train-traj, eval-traj).

``train(config, run_dir)`` loads the scenarios of a split, cuts samples, caches their rasters and
fits the model with ``mapenc.train.fit``; the run folder then holds ``checkpoint.pt``,
``config.json`` (the TrainConfig under ``train``, this module's TrajExperimentConfig under
``experiment``) and ``training.json``. ``evaluate(run_dir, data)`` reloads a run, draws K futures
per test sample and scores them against the constant-velocity baseline (``mapenc.metrics``) as a
``TrajEvaluation``; ``load_run(run_dir)`` gives ``(config, model)``. ``train_and_evaluate`` does
both and adds the parameter count and seconds, for studies that compare encoders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader

from mapenc.data.traj_dataset import TrajectoryDataset
from mapenc.data.traj_sources import load_scenarios, split_scenarios
from mapenc.data.trajectory import (
    AV2_TASK,
    NGSIM_TASK,
    TrajSamples,
    TrajTask,
    constant_velocity_forecast,
    samples_from_scenarios,
)
from mapenc.errors import ConfigError, DataError
from mapenc.geometry import transform_points
from mapenc.maps.types import Scenario
from mapenc.metrics import offroad_mask, score_forecasts
from mapenc.raster import RASTER_MODES, RasterSpec
from mapenc.train import TrainConfig, config_from_dict, count_parameters, fit, load_checkpoint
from mapenc.train.checkpoint import CHECKPOINT_NAME, CONFIG_NAME, read_json, write_json
from mapenc.vae.trajectory import TrajCVAEConfig, TrajectoryCVAE

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
TRAJ_TASKS: dict[str, TrajTask] = {"ngsim": NGSIM_TASK, "av2": AV2_TASK}
CACHE_ENV = "MAPENC_CACHE"
TRAINING_NAME = "training.json"


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
        data: data paths (``mapenc.data.traj_sources.load_scenarios``): CommonRoad files or
            folders, AV2 or generic scene folders, synthetic[:N].
        split: the split trained on ("train", "val", "test" or "all").
        task: history/future lengths and sampling.
        raster: the raster spec of the map branch (ignored without the map).
        model: the TrajectoryCVAE architecture.
        train: the training loop's settings (gradients clipped to norm 5 by default).
        cache_dir: raster cache folder ("" = $MAPENC_CACHE/traj or ~/.cache/mapenc/traj).
        raster_mode: Rasterizer mode (``mapenc.raster.RASTER_MODES``): "exact" and "fast" build
            the raster cache; "torch" draws each batch's rasters on the model's device inside its
            map branch (no cache, and no DataLoader workers: ``train.num_workers`` must be 0).
        skip_bad: leave out (and list) scene files that cannot be read, instead of failing.
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
    raster_mode: str = "fast"
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("TrajExperimentConfig.data is empty: give at least one data path")
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


@dataclass
class SplitData:
    """The scenarios, samples and cached-raster dataset of one split, and the scene files left
    out as unreadable (path -> problem; None unless unreadable files were to be skipped)."""

    scenarios: list[Scenario]
    samples: TrajSamples
    dataset: TrajectoryDataset
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
    dataset = TrajectoryDataset(
        samples,
        scenarios,
        config.raster,
        config.task,
        config.cache_dir or default_cache_dir(),
        mode=config.raster_mode,  # type: ignore[arg-type]
        progress=progress,
    )
    return SplitData(scenarios, samples, dataset, skipped)


def train(
    config: TrajExperimentConfig, run_dir: str | os.PathLike[str], resume: bool = False
) -> Path:
    """Fit a TrajectoryCVAE on ``config.split`` into ``run_dir``; returns the run folder.

    ``run_dir/training.json`` holds ``train_samples``, ``params``, ``map_params``, ``steps``,
    ``epochs``, ``train_seconds`` and ``stopped`` (why training ended).
    """
    torch.manual_seed(config.train.seed)
    split = load_split(
        config, config.split, progress=config.train.progress, skip_bad=config.skip_bad
    )
    model = TrajectoryCVAE(config.model)
    model.map_rasters = split.dataset.device_rasters
    result = fit(
        model,
        split.dataset,
        config.train,
        run_dir,
        resume=resume,
        saved_configs={"experiment": config},
    )
    facts: dict[str, Any] = {
        "train_samples": len(split.samples),
        "params": count_parameters(model),
        "map_params": count_parameters(model.map_encoder) if model.map_encoder else 0,
        "steps": result.steps,
        "epochs": result.epochs_completed,
        "train_seconds": round(result.seconds, 1),
        "stopped": result.stopped,
    }
    if split.skipped is not None:
        facts["skipped"] = split.skipped
    write_json(Path(run_dir) / TRAINING_NAME, facts)
    return Path(run_dir)


def training_facts(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``training.json`` that ``train`` wrote into a run folder."""
    return dict(read_json(Path(run_dir) / TRAINING_NAME))


def load_run(run_dir: str | os.PathLike[str]) -> tuple[TrajExperimentConfig, TrajectoryCVAE]:
    """The experiment config and trained model of a train-traj run folder."""
    run = Path(run_dir)
    if not (run / CONFIG_NAME).is_file() or not (run / CHECKPOINT_NAME).is_file():
        raise DataError(f"{run}: not a train-traj run (needs {CONFIG_NAME} and {CHECKPOINT_NAME})")
    saved = read_json(run / CONFIG_NAME)
    if "experiment" not in saved:
        raise DataError(f"{run / CONFIG_NAME}: no 'experiment' section; not a train-traj run")
    config = config_from_dict(TrajExperimentConfig, saved["experiment"])
    model = TrajectoryCVAE(config.model)
    model.load_state_dict(load_checkpoint(run / CHECKPOINT_NAME)["model"])
    return config, model


def predict(
    model: TrajectoryCVAE, dataset: TrajectoryDataset, k: int, seed: int = 0, batch_size: int = 256
) -> NDArray[np.float64]:
    """(N, k, F, 2) futures (agent frame, metres) for every sample, in dataset order."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    outputs = []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            on_device = {name: value.to(device) for name, value in batch.items()}
            outputs.append(model.sample(on_device, k, generator).cpu().double().numpy())
    return np.concatenate(outputs)


def offroad_rate_of(
    forecasts: NDArray[np.floating], samples: TrajSamples, scenarios: Sequence[Scenario]
) -> float:
    """Share of forecast points (N, K, F, 2), agent frame, outside each scenario's drivable area."""
    city = transform_points(samples.pose, forecasts)
    outside = np.zeros(city.shape[:-1], dtype=bool)
    for index in np.unique(samples.scenario_index):
        rows = samples.scenario_index == index
        outside[rows] = offroad_mask(city[rows], scenarios[int(index)].map.area)
    return float(outside.mean())


@dataclass(frozen=True)
class TrajEvaluation:
    """Scores of a trained run on one split (metres and rates; AV2 definitions).

    Attributes:
        n: samples scored.
        k: futures drawn per sample.
        split: the split scored.
        model: ``minADE``, ``minFDE``, ``miss_rate``, ``offroad_rate`` of the K futures.
        constant_velocity: ``ADE``, ``FDE``, ``miss_rate``, ``offroad_rate`` of the baseline.
        ground_truth: ``offroad_rate`` of the true futures (how well the map covers the data).
        figures: PNG paths of the drawn cases.
        skipped: unreadable scene files left out (path -> problem), when asked to skip them.
    """

    n: int
    k: int
    split: str
    model: dict[str, float]
    constant_velocity: dict[str, float]
    ground_truth: dict[str, float]
    figures: list[str] = field(default_factory=list)
    skipped: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready fields (``figures`` only when some were drawn, ``skipped`` only when
        unreadable files were to be skipped)."""
        result = dataclasses.asdict(self)
        if not self.figures:
            del result["figures"]
        if self.skipped is None:
            del result["skipped"]
        return result


def evaluate(
    run_dir: str | os.PathLike[str],
    data: Sequence[str] | None = None,
    *,
    split: str = "test",
    k: int = 6,
    figures: int = 6,
    seed: int = 0,
    skip_bad: bool = False,
) -> TrajEvaluation:
    """Scores of a trained run on ``split`` of ``data`` (default: the run's own data paths), and
    PNGs of ``figures`` cases in ``run_dir/eval_<split>/``; ``skip_bad`` leaves out (and lists)
    unreadable scene files."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    config, model = load_run(run_dir)
    part = load_split(config, split, data, progress=config.train.progress, skip_bad=skip_bad)
    samples, task = part.samples, config.task
    model.map_rasters = part.dataset.device_rasters
    forecasts = predict(model, part.dataset, k, seed)
    truth = samples.future.astype(np.float64)
    cv = constant_velocity_forecast(samples.velocity, task.future_steps, task.dt)[:, None]
    model_scores = score_forecasts(forecasts, truth)
    cv_scores = score_forecasts(cv, truth)
    drawn: list[str] = []
    if figures > 0:
        from mapenc.experiments.plots import plot_forecast_cases

        folder = Path(run_dir) / f"eval_{split}"
        chosen = np.random.default_rng(seed).choice(len(samples), min(figures, len(samples)), False)
        drawn = plot_forecast_cases(
            part.dataset, forecasts, cv[:, 0], sorted(int(i) for i in chosen), folder
        )
    return TrajEvaluation(
        n=len(samples),
        k=k,
        split=split,
        model={
            "minADE": round(model_scores.min_ade, 4),
            "minFDE": round(model_scores.min_fde, 4),
            "miss_rate": round(model_scores.miss_rate, 4),
            "offroad_rate": round(offroad_rate_of(forecasts, samples, part.scenarios), 4),
        },
        constant_velocity={
            "ADE": round(cv_scores.min_ade, 4),
            "FDE": round(cv_scores.min_fde, 4),
            "miss_rate": round(cv_scores.miss_rate, 4),
            "offroad_rate": round(offroad_rate_of(cv, samples, part.scenarios), 4),
        },
        ground_truth={
            "offroad_rate": round(offroad_rate_of(truth[:, None], samples, part.scenarios), 4)
        },
        figures=drawn,
        skipped=part.skipped,
    )


def train_and_evaluate(
    config: TrajExperimentConfig,
    run_dir: str | os.PathLike[str],
    eval_split: str = "test",
    k: int = 6,
    resume: bool = False,
) -> dict[str, Any]:
    """Train, then evaluate on ``eval_split``: the eval-traj JSON plus training facts.

    Adds ``params``, ``map_params``, ``train_samples``, ``steps``, ``epochs``, ``train_seconds``,
    ``eval_seconds``, ``encoder`` and ``use_map``; writes it all to ``run_dir/results.json``.
    """
    started = time.monotonic()
    train(config, run_dir, resume=resume)
    eval_started = time.monotonic()
    result = evaluate(run_dir, split=eval_split, k=k, figures=0).to_dict()
    result.update(training_facts(run_dir))
    result.update(
        {
            "encoder": config.model.map_encoder if config.model.use_map else None,
            "use_map": config.model.use_map,
            "eval_seconds": round(time.monotonic() - eval_started, 1),
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    Path(run_dir, "results.json").write_text(json.dumps(result, indent=1))
    return result
