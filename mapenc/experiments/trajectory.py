"""The trajectory experiment: the map-conditioned TrajectoryCVAE end to end (train-traj, eval-traj).

``train(config, run_dir)`` loads the scenarios of a split, cuts samples, caches their rasters and
fits the model with ``mapenc.train.fit``; the run folder then holds ``checkpoint.pt``,
``config.json`` (the TrainConfig under ``train``, the ``TrajExperimentConfig`` of
``mapenc.experiments.trajectory_data`` under ``experiment``) and ``training.json``.
``evaluate(run_dir, data)`` reloads a run, draws K futures per sample and scores them beside the
training-free baselines, with bootstrap intervals over whole scenes (``mapenc.evaluation``), as a
``TrajEvaluation``; ``load_run(run_dir)`` gives ``(config, model)``. ``train_and_evaluate`` does
both and adds the parameter count and seconds, for studies that compare encoders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import typing
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, Dataset

from mapenc.checks import check_memory
from mapenc.data.context import ContextDataset
from mapenc.data.traj_sources import data_sets_of, scene_names, shard_files
from mapenc.data.trajectory import TrajSamples, concat_samples, extract_samples, resampling
from mapenc.errors import ConfigError, DataError
from mapenc.evaluation.baselines import CONSTANT_VELOCITY, baseline_forecasts
from mapenc.evaluation.report import (
    PerSample,
    evaluation_report,
    score_per_sample,
    write_predictions,
)
from mapenc.experiments.trajectory_data import (
    CACHE_ENV,
    NGSIM_RASTER,
    SIGN_FLIP_LAYERS,
    SYNTHETIC_RASTER,
    TRAJ_TASKS,
    SplitData,
    TrajExperimentConfig,
    context_settings,
    default_cache_dir,
    load_split,
    make_experiment_config,
    polyline_spec,
    streamed_training_set,
)
from mapenc.maps import iter_scenarios
from mapenc.maps.types import Scenario
from mapenc.metrics import score_forecasts
from mapenc.progress import progress_bar
from mapenc.safeio import write_bytes_atomic
from mapenc.train import check_model_fits, config_from_dict, count_parameters, fit
from mapenc.train.checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    load_model_weights,
    read_json,
    save_checkpoint,
    write_json,
)
from mapenc.train.run_folder import claim_run_folder
from mapenc.vae.trajectory import TrajectoryCVAE

TRAINING_NAME = "training.json"
BEST_NAME = "best_val.pt"
BEST_FACTS_NAME = "best_val.json"
VAL_K = 6

__all__ = [
    "CACHE_ENV",
    "NGSIM_RASTER",
    "SIGN_FLIP_LAYERS",
    "SYNTHETIC_RASTER",
    "TRAINING_NAME",
    "TRAJ_TASKS",
    "SplitData",
    "TrajEvaluation",
    "TrajExperimentConfig",
    "default_cache_dir",
    "evaluate",
    "load_run",
    "load_split",
    "make_experiment_config",
    "polyline_spec",
    "predict",
    "train",
    "train_and_evaluate",
    "training_facts",
]


def train(
    config: TrajExperimentConfig,
    run_dir: str | os.PathLike[str],
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Fit a TrajectoryCVAE on ``config.split`` into ``run_dir``; returns the run folder.

    ``run_dir/training.json`` holds ``train_samples``, ``params``, ``map_params``, ``steps``,
    ``epochs``, ``train_seconds`` and ``stopped`` (why training ended); a streamed run
    (``config.stream``), whose number of samples is not known beforehand, holds ``streamed``
    instead of ``train_samples``: ``shards``, the ``epoch`` it ended in and the
    ``epoch_scenarios`` and ``epoch_samples`` consumed of it (since the last start or resume).
    The run folder is claimed (``mapenc.train.run_folder``: locked; a used one refused without
    ``resume``/``overwrite``) before any scene is read.
    """
    with claim_run_folder(run_dir, resume, overwrite):
        return _train(config, Path(run_dir), resume)


def _train(config: TrajExperimentConfig, run_dir: Path, resume: bool) -> Path:
    """``train`` once the run folder is held."""
    check_model_fits(lambda: TrajectoryCVAE(config.model))
    torch.manual_seed(config.train.seed)
    facts: dict[str, Any] = {}
    skipped: dict[str, str] | None = None
    train_set: Dataset[Any]
    if config.stream:
        train_set = stream = streamed_training_set(config)
        model = TrajectoryCVAE(config.model)
    else:
        split = load_split(
            config, config.split, progress=config.train.progress, skip_bad=config.skip_bad
        )
        train_set, facts["train_samples"] = split.dataset, len(split.samples)
        skipped = split.skipped
        model = TrajectoryCVAE(config.model)
        model.map_rasters = split.dataset.base.device_rasters
    keeper = _selection_on_val(config, run_dir, resume)
    result = fit(
        model,
        train_set,
        config.train,
        run_dir,
        resume=resume,
        saved_configs={"experiment": config},
        evaluate=keeper,
    )
    if config.stream:
        facts["streamed"] = {
            "shards": len(stream.shards),
            "epoch": stream.epoch + 1,
            "epoch_scenarios": stream.progress.scenarios,
            "epoch_samples": stream.progress.samples,
        }
    facts.update(
        {
            "params": count_parameters(model),
            "map_params": count_parameters(model.map_encoder) if model.map_encoder else 0,
            "steps": result.steps,
            "epochs": result.epochs_completed,
            "train_seconds": round(result.seconds, 1),
            "stopped": result.stopped,
        }
    )
    if skipped is not None:
        facts["skipped"] = skipped
    if keeper is not None and (run_dir / BEST_FACTS_NAME).is_file():  # an epoch was scored
        facts["best_val"] = read_json(run_dir / BEST_FACTS_NAME)
    write_json(Path(run_dir) / TRAINING_NAME, facts)
    return Path(run_dir)


def _selection_on_val(
    config: TrajExperimentConfig, run_dir: Path, resume: bool
) -> BestOnVal | None:
    """The per-epoch selection on held-out data: all of ``config.val_data`` when given, else the
    val split of the training data (not when streaming: there is no split); None without
    ``select_on_val`` or (for the val split) without val samples."""
    if not config.select_on_val:
        return None
    progress, skip_bad = config.train.progress, config.skip_bad
    if config.val_data:
        val = load_split(config, "all", config.val_data, progress=progress, skip_bad=skip_bad)
        return BestOnVal(val.dataset, run_dir, resume)
    if config.stream or config.split != "train":
        return None
    try:
        val = load_split(config, "val", progress=progress, skip_bad=skip_bad)
    except DataError:
        return None  # no val scene or sample to select on: the last weights are kept
    return BestOnVal(val.dataset, run_dir, resume)


class BestOnVal:
    """The per-epoch evaluation of ``fit``: minFDE_6 on the val split; the weights with the lowest
    so far go to ``run_dir/best_val.pt``, and ``best_val.json`` holds their score and epoch and
    the epochs scored (read back on resume, so a resumed run keeps the best of all its epochs)."""

    def __init__(self, dataset: ContextDataset, run_dir: Path, resume: bool) -> None:
        self.dataset = dataset
        self.run_dir = run_dir
        facts = run_dir / BEST_FACTS_NAME
        if resume and facts.is_file():
            self.state = dict(read_json(facts))
        else:
            (run_dir / BEST_NAME).unlink(missing_ok=True)
            self.state = {"minFDE": None, "epoch": 0, "epochs_scored": 0}

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        trajectory_model = typing.cast(TrajectoryCVAE, model)
        train_rasters = trajectory_model.map_rasters
        trajectory_model.map_rasters = self.dataset.base.device_rasters  # val's scenes
        try:
            forecasts, _ = predict(trajectory_model, self.dataset, VAL_K)
        finally:
            trajectory_model.map_rasters = train_rasters
        truth = self.dataset.samples.future.astype(np.float64)
        min_fde = score_forecasts(forecasts, truth).min_fde
        model.train()
        self.state["epochs_scored"] += 1
        if self.state["minFDE"] is None or min_fde < self.state["minFDE"]:
            self.state.update(minFDE=round(min_fde, 4), epoch=self.state["epochs_scored"])
            save_checkpoint(self.run_dir / BEST_NAME, {"model": model.state_dict()})
        write_json(self.run_dir / BEST_FACTS_NAME, self.state)
        return {"val_minFDE": min_fde}


def training_facts(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``training.json`` that ``train`` wrote into a run folder."""
    return dict(read_json(Path(run_dir) / TRAINING_NAME))


def load_run(run_dir: str | os.PathLike[str]) -> tuple[TrajExperimentConfig, TrajectoryCVAE]:
    """The experiment config and trained model of a train-traj run folder (the weights best on
    val when training kept them, else the last ones)."""
    run = Path(run_dir)
    if not (run / CONFIG_NAME).is_file() or not (run / CHECKPOINT_NAME).is_file():
        raise DataError(f"{run}: not a train-traj run (needs {CONFIG_NAME} and {CHECKPOINT_NAME})")
    saved = read_json(run / CONFIG_NAME)
    if "experiment" not in saved:
        raise DataError(f"{run / CONFIG_NAME}: no 'experiment' section; not a train-traj run")
    config = config_from_dict(TrajExperimentConfig, saved["experiment"])
    model = TrajectoryCVAE(config.model)
    best = run / BEST_NAME
    load_model_weights(model, best if best.is_file() else run / CHECKPOINT_NAME)
    return config, model


def predict(
    model: TrajectoryCVAE, dataset: ContextDataset, k: int, seed: int = 0, batch_size: int = 256
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(N, k, F, 2) futures (agent frame, metres) and (N, k) probabilities, in dataset order.

    Raises ConfigError, with the figure, when the futures and their copies in scoring (about 3
    times the (N, k, F, 2) float64 array) would not fit in memory (``mapenc.checks``).
    """
    future_steps = dataset.samples.future.shape[1]
    check_memory(
        3 * len(dataset) * k * future_steps * 2 * 8,
        f"{k} futures for each of {len(dataset)} samples",
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    futures, probabilities = [], []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            on_device = {name: value.to(device) for name, value in batch.items()}
            future, prob = model.forecast(on_device, k, generator)
            futures.append(future.cpu().double().numpy())
            probabilities.append(prob.cpu().double().numpy())
    return np.concatenate(futures), np.concatenate(probabilities)


def default_split(config: TrajExperimentConfig, data: Sequence[str] | None) -> str:
    """ "test" when ``data`` is some of the data paths the run was trained on (or None), else
    "all" (zero-shot). Each data path is split on its own (``plan_for``), so one of them alone
    has the same test part as in training. A streamed run trained on all of its data paths:
    ConfigError unless ``data`` is other data."""
    trained = {str(Path(p).resolve()) for p in config.data}
    held_out = bool(data) and not {str(Path(p).resolve()) for p in data or ()} <= trained
    if config.stream and not held_out:
        raise ConfigError(
            "this run streamed all of its data paths in training, none of them is held out: "
            "give other data (e.g. the Waymo Open Motion validation or testing shards)"
        )
    return "all" if held_out else "test"


@dataclass(frozen=True)
class TrajEvaluation:
    """Scores of a trained run on one split beside the baselines (metres and rates; AV2
    definitions, ``mapenc.metrics``).

    Attributes:
        n: samples scored; ``scenes``: the scenes they come from.
        k: futures per sample.
        split: the split scored; ``zero_shot``: True when the data is not what the run trained on.
        task: the task (history, future, rate) the samples were cut for.
        model: ``minADE``, ``minFDE``, ``miss_rate``, ``offroad_rate`` of the K futures.
        baselines: the same for each training-free baseline (``mapenc.evaluation.baselines``).
        model_minus_baseline: per baseline, minADE/minFDE/miss-rate differences with 95 %
            intervals from a paired bootstrap over whole scenes.
        by_location, by_kind, by_motion: every method's scores per location (first folder of
            the scene name), per agent kind, and for standing (below 0.5 m/s) and moving agents.
        by_trajectory_type: per Waymo trajectory type of the true future and for the moving and
            turning agents (``mapenc.evaluation.report.by_trajectory_type``): ``n``, ``scenes``,
            every method's scores and the paired differences with intervals.
        by_source: the same scores, differences and ``by_trajectory_type`` within each data set
            (the data path's folder or file name), with ``n`` and ``scenes``.
        resampling: how the scenes' steps became the task's (``mapenc.data.trajectory.
            resampling``): description -> number of scenes.
        constant_velocity: ``variant``, ``ADE``, ``FDE``, ``miss_rate``, ``offroad_rate`` of the
            constant-velocity baseline chosen on NGSIM val.
        ground_truth: ``offroad_rate`` of the true futures (how well the map covers the data).
        versus, model_minus_versus: the second run's scores and the paired differences (or None).
        figures: PNG paths of the drawn cases.
        predictions: the forecasts file written, or "".
        skipped: unreadable scene files left out (path -> problem), when asked to skip them.
    """

    n: int
    scenes: int
    k: int
    split: str
    zero_shot: bool
    task: dict[str, Any]
    model: dict[str, float]
    baselines: dict[str, dict[str, float]]
    model_minus_baseline: dict[str, Any]
    by_location: dict[str, Any]
    by_kind: dict[str, Any]
    by_motion: dict[str, Any]
    by_trajectory_type: dict[str, Any]
    by_source: dict[str, Any]
    resampling: dict[str, int]
    constant_velocity: dict[str, Any]
    ground_truth: dict[str, float]
    versus: dict[str, float] | None = None
    model_minus_versus: dict[str, Any] | None = None
    figures: list[str] = field(default_factory=list)
    predictions: str = ""
    skipped: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready fields (optional ones only when set; ``skipped`` only when unreadable
        files were to be skipped)."""
        result = dataclasses.asdict(self)
        for name in ("versus", "model_minus_versus", "figures", "predictions"):
            if not result[name]:
                del result[name]
        if self.skipped is None:
            del result["skipped"]
        return result


def evaluate(
    run_dir: str | os.PathLike[str],
    data: Sequence[str] | None = None,
    *,
    split: str | None = None,
    k: int = 6,
    figures: int = 6,
    seed: int = 0,
    predictions: str | os.PathLike[str] | None = None,
    versus: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    stream: bool = False,
) -> TrajEvaluation:
    """Scores of a trained run on ``split`` of ``data`` (default: the run's own data paths)
    beside the baselines, and PNGs of ``figures`` cases in ``run_dir/eval_<split>/``.

    ``split`` defaults to "test" on the data the run was trained on and to "all" on other data
    (zero-shot). ``versus`` is a second run (e.g. the no-map twin) scored on the same samples
    and compared by paired bootstrap. ``predictions`` writes the forecasts
    (``mapenc.evaluation.report.write_predictions``). ``skip_bad`` leaves out (and lists)
    unreadable scene files. With ``stream``, all of ``data`` (split "all", no split planner) is
    read and scored one scenario at a time (``_evaluate_streamed``): no scenario, raster or
    forecast is kept beyond its own, only each sample's trajectories and scores; no figures, and
    no ``predictions`` or ``skip_bad``.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    config, model = load_run(run_dir)
    default = default_split(config, data)
    split = split or default
    versus_run = None
    if versus is not None:
        versus_run = load_run(versus)
        if versus_run[0].task != config.task:
            raise ConfigError(f"{versus}: trained for another task than {run_dir}")
    if stream:
        if split != "all":
            raise ConfigError(
                f"split {split!r} with stream: a stream scores all of its data (the split "
                "planner needs every scenario in memory); give held-out data with --data"
            )
        if predictions is not None or skip_bad:
            raise ConfigError(
                "stream keeps no forecasts and reads every scene: no predictions "
                "file and no skip_bad"
            )
        return _evaluate_streamed(config, model, versus_run, data or config.data, k, seed, default)
    part = load_split(config, split, data, progress=config.train.progress, skip_bad=skip_bad)
    samples, task = part.samples, config.task
    model.map_rasters = part.dataset.base.device_rasters
    forecasts, probabilities = predict(model, part.dataset, k, seed)
    baseline_pred = baseline_forecasts(samples, part.scenarios, task, k)
    versus_forecasts = None
    if versus_run is not None:
        versus_config, versus_model = versus_run
        versus_part = load_split(
            versus_config, split, data or config.data, versus_config.train.progress, skip_bad
        )
        if len(versus_part.samples) != len(samples):
            raise DataError(f"{versus}: its samples of this data differ from {run_dir}'s")
        versus_model.map_rasters = versus_part.dataset.base.device_rasters
        versus_forecasts = predict(versus_model, versus_part.dataset, k, seed)[0]
    scores = _scores(samples, part.scenarios, forecasts, baseline_pred, versus_forecasts)
    if predictions is not None:
        write_predictions(
            predictions,
            forecasts,
            probabilities,
            samples,
            part.names,
            [sc.first_step for sc in part.scenarios],
        )
    drawn: list[str] = []
    if figures > 0:
        from mapenc.experiments.plots import plot_forecast_cases

        folder = Path(run_dir) / f"eval_{split}"
        chosen = np.random.default_rng(seed).choice(len(samples), min(figures, len(samples)), False)
        drawn = plot_forecast_cases(
            part.dataset.base,
            forecasts,
            baseline_pred[CONSTANT_VELOCITY][:, 0],
            sorted(int(i) for i in chosen),
            folder,
        )
    scenes = ScenesScored(
        part.names,
        data_sets_of(part.scenarios, data or config.data),
        [resampling(sc, task).describe() for sc in part.scenarios],
    )
    written = str(predictions) if predictions is not None else ""
    return _evaluation(
        config, split, default, k, seed, samples, scores, scenes, drawn, written, part.skipped
    )


@dataclass
class SampleScores:
    """Per-sample scores of some samples: the model's, each baseline's, the versus run's (or
    None) and the off-road share of the true futures (N,)."""

    model: PerSample
    baselines: dict[str, PerSample]
    versus: PerSample | None
    truth_offroad: NDArray[np.float64]


@dataclass
class ScenesScored:
    """Per scene scored (in scenario-index order): its name, its data set and how its steps
    became the task's (``resampling(...).describe()``)."""

    names: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    resampling: list[str] = field(default_factory=list)


def _scores(
    samples: TrajSamples,
    scenarios: Sequence[Scenario],
    forecasts: NDArray[np.float64],
    baseline_pred: dict[str, NDArray[np.float64]],
    versus_forecasts: NDArray[np.float64] | None,
) -> SampleScores:
    """The SampleScores of ``samples`` (cut from ``scenarios``) given the (N, K, F, 2)
    forecasts of the model, of each baseline and of the versus run."""
    truth = samples.future.astype(np.float64)[:, None]
    return SampleScores(
        model=score_per_sample(forecasts, samples, scenarios),
        baselines={
            name: score_per_sample(f, samples, scenarios) for name, f in baseline_pred.items()
        },
        versus=None
        if versus_forecasts is None
        else score_per_sample(versus_forecasts, samples, scenarios),
        truth_offroad=score_per_sample(truth, samples, scenarios).offroad,
    )


def _concat_scores(parts: Sequence[SampleScores]) -> SampleScores:
    """One SampleScores holding ``parts`` in order."""
    versus = [p.versus for p in parts if p.versus is not None]
    return SampleScores(
        model=PerSample.concat([p.model for p in parts]),
        baselines={
            name: PerSample.concat([p.baselines[name] for p in parts])
            for name in parts[0].baselines
        },
        versus=PerSample.concat(versus) if versus else None,
        truth_offroad=np.concatenate([p.truth_offroad for p in parts]),
    )


def _evaluate_streamed(
    config: TrajExperimentConfig,
    model: TrajectoryCVAE,
    versus_run: tuple[TrajExperimentConfig, TrajectoryCVAE] | None,
    data: Sequence[str],
    k: int,
    seed: int,
    default: str,
) -> TrajEvaluation:
    """``evaluate`` on all of ``data``, one scenario at a time: its samples' items made as in
    training (``context_settings``), forecast, scored beside the baselines; then the report over
    all samples. Forecasts equal the in-memory ones up to float rounding of other batch sizes
    (and, with ``k`` above the model's modes, other draws of the extra modes)."""
    task, paths = config.task, tuple(data)
    scenarios = (sc for shard in shard_files(paths) for sc in iter_scenarios(shard))
    bar = progress_bar(scenarios, desc="scenarios", enabled=config.train.progress, leave=False)
    kept_samples: list[TrajSamples] = []
    kept_scores: list[SampleScores] = []
    scenes = ScenesScored()
    for index, scenario in enumerate(bar):
        scenes.names += scene_names([scenario], paths)
        scenes.sources += data_sets_of([scenario], paths)
        scenes.resampling.append(resampling(scenario, task).describe())
        samples = extract_samples(scenario, task)
        if not len(samples):
            continue
        forecasts = _forecasts_of_scene(config, model, samples, scenario, k, seed)
        versus_forecasts = None
        if versus_run is not None:
            versus_forecasts = _forecasts_of_scene(*versus_run, samples, scenario, k, seed)
        baseline_pred = baseline_forecasts(samples, [scenario], task, k)
        kept_scores.append(_scores(samples, [scenario], forecasts, baseline_pred, versus_forecasts))
        kept_samples.append(
            dataclasses.replace(samples, scenario_index=np.full(len(samples), index))
        )
    if not kept_samples:
        raise DataError(f"no sample in the scenarios of {', '.join(paths)}")
    samples, scores = concat_samples(kept_samples), _concat_scores(kept_scores)
    return _evaluation(config, "all", default, k, seed, samples, scores, scenes, [])


def _forecasts_of_scene(
    config: TrajExperimentConfig,
    model: TrajectoryCVAE,
    samples: TrajSamples,
    scenario: Scenario,
    k: int,
    seed: int,
) -> NDArray[np.float64]:
    """(N, k, F, 2) forecasts of the run (``config``, ``model``) for one scenario's samples."""
    dataset = context_settings(config).dataset(samples, [scenario])
    model.map_rasters = dataset.base.device_rasters
    return predict(model, dataset, k, seed)[0]


def _evaluation(
    config: TrajExperimentConfig,
    split: str,
    default: str,
    k: int,
    seed: int,
    samples: TrajSamples,
    scores: SampleScores,
    scenes: ScenesScored,
    figures: list[str],
    predictions: str = "",
    skipped: dict[str, str] | None = None,
) -> TrajEvaluation:
    """The TrajEvaluation of ``scores`` of ``samples`` (their scenario indices into ``scenes``)
    on ``split`` (``default``: the split that was the default), with the ``figures`` drawn, the
    ``predictions`` file written ("" for none) and the scene files ``skipped``."""
    report = evaluation_report(
        scores.model,
        scores.baselines,
        samples,
        scenes.names,
        dt=config.task.dt,
        versus=scores.versus,
        scene_sources=scenes.sources,
        seed=seed,
    )
    cv = scores.baselines[CONSTANT_VELOCITY].means()
    return TrajEvaluation(
        n=len(samples),
        scenes=len(scenes.names),
        k=k,
        split=split,
        zero_shot=split == "all" and default == "all",
        task=dataclasses.asdict(config.task),
        model=report["model"],
        baselines=report["baselines"],
        model_minus_baseline=report["model_minus_baseline"],
        by_location=report["by_location"],
        by_kind=report["by_kind"],
        by_motion=report["by_motion"],
        by_trajectory_type=report["by_trajectory_type"],
        by_source=report["by_source"],
        resampling=dict(Counter(scenes.resampling)),
        constant_velocity={
            "variant": CONSTANT_VELOCITY,
            "ADE": cv["minADE"],
            "FDE": cv["minFDE"],
            "miss_rate": cv["miss_rate"],
            "offroad_rate": cv["offroad_rate"],
        },
        ground_truth={"offroad_rate": round(float(scores.truth_offroad.mean()), 4)},
        versus=report.get("versus"),
        model_minus_versus=report.get("model_minus_versus"),
        figures=figures,
        predictions=predictions,
        skipped=skipped,
    )


def train_and_evaluate(
    config: TrajExperimentConfig,
    run_dir: str | os.PathLike[str],
    eval_split: str = "test",
    k: int = 6,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train, then evaluate on ``eval_split``: the eval-traj JSON plus training facts.

    Adds ``params``, ``map_params``, ``train_samples``, ``steps``, ``epochs``, ``train_seconds``,
    ``eval_seconds``, ``encoder`` and ``use_map``; writes it all to ``run_dir/results.json``.
    The run folder stays claimed until the results are written.
    """
    with claim_run_folder(run_dir, resume, overwrite):
        return _train_and_evaluate(config, Path(run_dir), eval_split, k, resume)


def _train_and_evaluate(
    config: TrajExperimentConfig, run_dir: Path, eval_split: str, k: int, resume: bool
) -> dict[str, Any]:
    """``train_and_evaluate`` once the run folder is held."""
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
    # Atomic: a study takes a results.json as the mark of a finished run.
    write_bytes_atomic(Path(run_dir, "results.json"), json.dumps(result, indent=1).encode())
    return result
