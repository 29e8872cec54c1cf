"""The two tasks of the encoder study, each a ``StudyTask`` over one experiment.

``MnistStudy`` trains the MNIST VAE of ``mapenc.experiments.mnist`` with each encoder and scores
it on a fixed subset of the test images; ``TrajStudy`` trains the trajectory CVAE of
``mapenc.experiments.trajectory`` with each map encoder (or none) at each raster size. Both take
their training defaults (batch size, gradient clipping) from their experiment's config and only
set the budget, the learning rate, the seed and the device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader

from mapenc.data.traj_sources import data_sets_of
from mapenc.encoders import build_encoder
from mapenc.encoders.registry import ENCODERS, encoder_input_kind
from mapenc.evaluation.baselines import baseline_forecasts
from mapenc.evaluation.report import score_per_sample
from mapenc.evaluation.trajectory_types import sample_trajectory_types
from mapenc.experiments import mnist, trajectory
from mapenc.study.config import NO_MAP, CompareConfig, study_encoder
from mapenc.study.intervals import seed_interval_entries
from mapenc.study.probes import PolylineInputs, probe_encoder, probe_polyline_encoder
from mapenc.study.protocol import (
    Run,
    StudyTask,
    bottleneck_facts,
    cached_probes,
    seconds_per_training_step,
)
from mapenc.study.traj_scores import (
    SAMPLES_NAME,
    SampleScores,
    corrected_differences,
    interval_entries,
    interval_entries_by_source,
    interval_entries_by_type,
    read_or_score,
    sample_scores,
    save_sample_identities,
)
from mapenc.train import TrainConfig
from mapenc.train.checkpoint import read_json
from mapenc.vae.image import ImageVAEConfig
from mapenc.vae.trajectory import build_map_encoder

# Extent of the trajectory raster, kept fixed when raster_sizes changes the resolution.
TRAJ_EXTENT_M = 64.0
# The data a step is timed on for the study's estimate of its duration.
TIMING_DATA = "synthetic:2"
# Forecasts per sample the study scores (minADE6, minFDE6).
K_FORECASTS = 6
# Epochs of a run whose step budget alone decides when it stops.
UNBOUNDED_EPOCHS = 10_000


def study_train_config(config: CompareConfig, base: TrainConfig, seed: int) -> TrainConfig:
    """The experiment's training defaults with the study's budget, optimiser and ``seed``."""
    return dataclasses.replace(
        base,
        epochs=config.epochs or UNBOUNDED_EPOCHS,
        max_minutes=config.max_minutes,
        max_steps=config.max_steps,
        batch_size=config.batch_size or base.batch_size,
        lr=config.lr,
        seed=seed,
        device=config.device,
        progress=config.progress,
    )


def wall_times(metrics: dict[str, Any]) -> dict[str, Any]:
    """``train_seconds``, ``eval_seconds`` and their sum ``seconds`` of a run's metrics."""
    train_s, eval_s = metrics["train_seconds"], metrics["eval_seconds"]
    return {"train_seconds": train_s, "eval_seconds": eval_s, "seconds": round(train_s + eval_s, 1)}


class MnistStudy:
    """Runs of the MNIST VAE study (``mapenc.experiments.mnist``)."""

    headline_metrics: tuple[str, ...] = ("test_loss", "nll")
    table_digits: int = 2
    metrics_name: str = mnist.METRICS_NAME

    def __init__(self, config: CompareConfig) -> None:
        self.config = config
        self._probe_images: torch.Tensor | None = None

    def runs(self) -> list[Run]:
        """Every encoder with every seed."""
        return [
            Run(name, seed) for name in self.config.encoders for seed in range(self.config.seeds)
        ]

    def experiment(self, run: Run) -> mnist.MnistExperimentConfig:
        """The ``MnistExperimentConfig`` of a run."""
        base = mnist.MnistExperimentConfig()
        return dataclasses.replace(
            base,
            model=ImageVAEConfig(
                encoder=study_encoder(run.encoder, "mnist") or run.encoder,
                decoder=self.config.decoder,
            ),
            train=study_train_config(self.config, base.train, run.seed),
            data=self.config.data[0] if self.config.data else None,
            eval_iw_k=self.config.iw_k,
        )

    def train(self, run: Run, run_dir: Path) -> None:
        """Train, then score on the first ``eval_images`` test images; writes ``metrics.json``."""
        # resume: a run killed earlier continues from its checkpoint instead of being refused.
        mnist.train_and_evaluate(
            self.experiment(run), run_dir, resume=True, eval_first=self.config.eval_images
        )

    def row(self, run: Run, run_dir: Path) -> dict[str, Any]:
        """The results row of a finished run (metrics, size, bottleneck, wall times, probes)."""
        metrics = read_json(run_dir / self.metrics_name)
        experiment, model = mnist.load_run(run_dir, self.config.device)
        if self._probe_images is None:
            test = mnist.test_split(experiment)
            count = min(self.config.probe_samples, len(test))
            self._probe_images = torch.stack([test[i][0] for i in range(count)])
        images = self._probe_images.to(model.q_mean.weight.device)
        row = {
            key: metrics[key]
            for key in ("test_loss", "nll", "kl", "recon", "active_units", "iw_k", "test_images")
            if key in metrics
        }
        row.update(
            params=metrics["params"],
            steps=metrics["steps"],
            epochs=metrics["epochs"],
            **wall_times(metrics),
            **bottleneck_facts(model.encoder, images.shape[1:]),
        )
        probes = cached_probes(
            run_dir,
            lambda: probe_encoder(lambda x: model.posterior(x)[0], images, self.config.probe),
        )
        return {**row, **probes}

    def seconds_per_step(self, run: Run) -> float:
        """One step of the run's VAE on a batch of random images."""
        experiment = self.experiment(run)
        model = mnist.build_image_vae(experiment.model)
        batch = torch.rand(experiment.train.batch_size, 1, 28, 28).round()
        return seconds_per_training_step(model, batch)

    def summary_extras(self, out_dir: Path, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Student-t intervals over seeds of the test loss and the IWAE bound per encoder, and
        Welch intervals of each one's difference to each of the ``references`` (by default the
        first encoder)."""
        references = self.config.difference_references()
        return {
            "intervals": seed_interval_entries(rows, self.headline_metrics, references),
            "references": list(references),
            "intervals_over": "seeds (Student t; Welch for differences)",
        }


# The dataset item fields a vector encoder takes, in ``PolylineInputs`` order.
POLYLINE_KEYS = ("polyline_points", "polyline_mask", "polyline_types", "past", "past_heading")
# A study's probe inputs: rasters [M, C, H, W] and, for a vector encoder, its inputs.
ProbeSamples = tuple[torch.Tensor, PolylineInputs | None]


class TrajStudy:
    """Runs of the trajectory CVAE study (``mapenc.experiments.trajectory``); checks every encoder
    can take its raster before the first run."""

    headline_metrics: tuple[str, ...] = ("minADE", "minFDE", "offroad_rate")
    table_digits: int = 3
    metrics_name: str = "results.json"

    def __init__(self, config: CompareConfig) -> None:
        self.config = config
        self._probe_samples: dict[tuple[int, bool], ProbeSamples] = {}
        for run in self.runs():  # an encoder that cannot take the raster fails now
            model = self.experiment(run).model
            if model.use_map:
                build_map_encoder(model)

    def runs(self) -> list[Run]:
        """Every raster size, seed and encoder (sizes named in folders only when several), seed
        by seed: a study cut short has whole seeds, and runs that build the same raster cache
        do not start together."""
        sizes: Sequence[int] = self.config.raster_sizes
        named = len(sizes) > 1
        return [
            Run(name, seed, size if named else None)
            for size in sizes
            for seed in range(self.config.seeds)
            for name in self.config.encoders
        ]

    def raster_size(self, run: Run) -> int:
        """Pixels per side of the run's raster: the encoder's own size when it is built for one
        (``seed_spatial``: 100), else the run's or the study's."""
        native = fixed_input_size(study_encoder(run.encoder, "traj"))
        return native or run.raster_size or self.config.raster_sizes[0]

    def experiment(self, run: Run) -> trajectory.TrajExperimentConfig:
        """The ``TrajExperimentConfig`` of a run: the study's raster layers over a 64 m window
        at the run's resolution."""
        size = self.raster_size(run)
        raster = dataclasses.replace(
            trajectory.NGSIM_RASTER,
            size_px=(size, size),
            pixel_size_m=TRAJ_EXTENT_M / size,
            layers=self.config.layers,
        )
        chosen = study_encoder(run.encoder, "traj")
        base = trajectory.TrajExperimentConfig()
        config = trajectory.make_experiment_config(
            self.config.data,
            encoder=chosen or base.model.map_encoder,
            use_map=chosen is not None,
            raster=raster,
            train=study_train_config(self.config, base.train, run.seed),
            anchors=self.config.anchors,
        )
        return dataclasses.replace(
            config, split=self.config.train_split, cache_dir=self.config.cache_dir
        )

    def train(self, run: Run, run_dir: Path) -> None:
        """Train (from the run's last checkpoint when a killed study left one) and evaluate on
        ``eval_split``; writes ``run_dir/results.json`` and the per-sample scores."""
        trajectory.train_and_evaluate(
            self.experiment(run), run_dir, self.config.eval_split, resume=True
        )
        self.scores(run, run_dir)  # here, in the run's own worker, rather than all at the end

    def probe_samples(self, run: Run, experiment: trajectory.TrajExperimentConfig) -> ProbeSamples:
        """Rasters ``[M, C, H, W]`` of evenly spaced samples of the scored split and, for a vector
        encoder's run, the same samples' ``PolylineInputs`` (cached per size and input kind)."""
        takes_polylines = trajectory.polyline_spec(experiment) is not None
        key = (self.raster_size(run), takes_polylines)
        if key not in self._probe_samples:
            split = trajectory.load_split(experiment, self.config.eval_split, progress=False)
            dataset = split.dataset
            count = min(self.config.probe_samples, len(dataset))
            index = np.linspace(0, len(dataset) - 1, count).round().astype(int)
            rasters = torch.stack([dataset.raster(int(i)) for i in index])
            polylines: PolylineInputs | None = None
            if takes_polylines:
                items = [dataset[int(i)] for i in index]
                stacked = [torch.stack([item[name] for item in items]) for name in POLYLINE_KEYS]
                polylines = (stacked[0], stacked[1], stacked[2], stacked[3], stacked[4])
            self._probe_samples[key] = (rasters, polylines)
        return self._probe_samples[key]

    @staticmethod
    def encoder_input_shape(experiment: trajectory.TrajExperimentConfig) -> tuple[int, int, int]:
        """``(C, H, W)`` of the rasters, or for a vector encoder ``(polylines, points, history)``."""
        spec = trajectory.polyline_spec(experiment)
        if spec is not None:
            return spec.max_polylines, spec.points, experiment.task.history_steps + 1
        return experiment.raster.num_channels, *experiment.raster.size_px

    def row(self, run: Run, run_dir: Path) -> dict[str, Any]:
        """The results row of a finished run (metrics, size, bottleneck, map-latent probes, and
        under ``by_trajectory_type`` the sample count and the model's means per type)."""
        result = read_json(run_dir / self.metrics_name)
        experiment, model = trajectory.load_run(run_dir)
        model.eval()
        raster = experiment.raster
        row: dict[str, Any] = {
            "raster_size": raster.size_px[0],
            "pixel_size_m": raster.pixel_size_m,
            **{key: result["model"][key] for key in self.headline_metrics},
            "miss_rate": result["model"]["miss_rate"],
            "cv_ADE": result["constant_velocity"]["ADE"],
            "cv_FDE": result["constant_velocity"]["FDE"],
            "k": result["k"],
            "n_test": result["n"],
            "params": result["params"],
            "steps": result["steps"],
            "epochs": result["epochs"],
            **wall_times(result),
            **bottleneck_facts(model.map_encoder, self.encoder_input_shape(experiment)),
        }
        if "by_trajectory_type" in result:  # absent from runs evaluated before types existed
            row["by_trajectory_type"] = {
                group: {"n": entry["n"], **entry.get("model", {})}
                for group, entry in result["by_trajectory_type"].items()
            }
        encoder = model.map_encoder
        if encoder is None:
            return row
        rasters, polylines = self.probe_samples(run, experiment)

        def probe() -> dict[str, float]:
            if polylines is None:
                return probe_encoder(encoder, rasters, self.config.probe)
            return probe_polyline_encoder(
                encoder, polylines, rasters, experiment.raster, self.config.probe
            )

        return {**row, **cached_probes(run_dir, probe)}

    def scores(self, run: Run, run_dir: Path) -> SampleScores:
        """Per-sample scores of a finished run on ``eval_split`` (``per_sample.npz``, made once)."""

        def score() -> SampleScores:
            experiment, model = trajectory.load_run(run_dir)
            split = trajectory.load_split(experiment, self.config.eval_split, progress=False)
            forecasts, _ = trajectory.predict(model, split.dataset, k=K_FORECASTS)
            scored = score_per_sample(forecasts, split.samples, split.scenarios)
            types = sample_trajectory_types(split.samples, experiment.task.dt)
            return sample_scores(scored, scene_of_each(split), types)

        return read_or_score(run_dir, score)

    def seconds_per_step(self, run: Run) -> float:
        """One step of the run's model on a batch of a small synthetic town, with every input
        (rasters or polylines, anchors, neighbours) the real data gives."""
        experiment = dataclasses.replace(self.experiment(run), data=(TIMING_DATA,), split="all")
        dataset = trajectory.load_split(experiment, "all", progress=False).dataset
        size = min(experiment.train.batch_size, len(dataset))
        batch = next(iter(DataLoader(dataset, batch_size=size)))
        return seconds_per_training_step(trajectory.TrajectoryCVAE(experiment.model), batch)

    def eval_split(self) -> trajectory.SplitData:
        """The scored split's scenarios, names and samples (as the no-map runs load them)."""
        experiment = self.experiment(Run(NO_MAP, 0))
        return trajectory.load_split(experiment, self.config.eval_split, progress=False)

    def baseline_scores(self, split: trajectory.SplitData) -> dict[str, SampleScores]:
        """Per-sample scores of the training-free baselines (``mapenc.evaluation.baselines``)
        on the scored split."""
        task = self.experiment(Run(NO_MAP, 0)).task
        forecasts = baseline_forecasts(split.samples, split.scenarios, task, K_FORECASTS)
        scenes = scene_of_each(split)
        types = sample_trajectory_types(split.samples, task.dt)
        return {
            name: sample_scores(score_per_sample(f, split.samples, split.scenarios), scenes, types)
            for name, f in forecasts.items()
        }

    def summary_extras(self, out_dir: Path, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Intervals over scenes and seeds of every encoder and baseline, paired differences to
        each of the ``references`` (by default ``none``), and the same within every trajectory
        type under ``by_trajectory_type``; none for a study over several raster sizes."""
        if len(self.config.raster_sizes) > 1:
            return {}
        runs: dict[str, list[SampleScores]] = {}
        for run in self.runs():
            scores = self.scores(run, out_dir / "runs" / run.folder_name())
            runs.setdefault(run.encoder, []).append(scores)
        split = self.eval_split()
        baselines = self.baseline_scores(split)
        references = self.config.difference_references()
        sources = source_of_each(split, self.config.data)
        save_sample_identities(
            out_dir / f"{self.config.eval_split}_{SAMPLES_NAME}",
            scenes=scene_of_each(split),
            sources=sources,
            track_ids=split.samples.track_ids,
            last_observed_steps=recorded_steps_of_each(split),
            types=runs[next(iter(runs))][0].types,
        )
        return {
            "intervals": interval_entries(runs, baselines, references),
            "by_trajectory_type": interval_entries_by_type(runs, baselines, references),
            "by_source": interval_entries_by_source(runs, baselines, references, sources),
            "multiple_comparisons": corrected_differences(runs, references),
            "references": list(self.config.difference_references()),
            "intervals_over": "scenes and seeds (paired bootstrap)",
            f"{self.config.eval_split}_scenes": sorted(split.names),
        }


def fixed_input_size(encoder: str | None) -> int | None:
    """Pixels per side of a raster encoder built for one input size only (its config has no
    ``input_size``: ``seed_spatial`` takes 100); None for the others, vector ones and no map."""
    if encoder is None or encoder_input_kind(encoder) != "raster":
        return None
    if "input_size" in {field.name for field in dataclasses.fields(ENCODERS[encoder].config_type)}:
        return None
    return int(build_encoder(encoder).input_shape[-1])


def scene_of_each(split: trajectory.SplitData) -> list[str]:
    """The scene name of every sample of ``split`` (names relative to the data paths)."""
    return [split.names[int(i)] for i in split.samples.scenario_index]


def recorded_steps_of_each(split: trajectory.SplitData) -> NDArray[np.int64]:
    """The last observed step of every sample of ``split`` in its file's own numbering (the
    ``t_obs`` of ``eval-traj --predictions``)."""
    first = np.array([scenario.first_step for scenario in split.scenarios], dtype=np.int64)
    return split.samples.time_step.astype(np.int64) + first[split.samples.scenario_index]


def source_of_each(split: trajectory.SplitData, paths: Sequence[str]) -> list[str]:
    """The data set (``mapenc.data.traj_sources.data_sets_of``) of every sample of ``split``."""
    sources = data_sets_of(split.scenarios, paths)
    return [sources[int(i)] for i in split.samples.scenario_index]


# The study's tasks by name (``CompareConfig.task``).
STUDY_TASKS: dict[str, type[MnistStudy] | type[TrajStudy]] = {
    "mnist": MnistStudy,
    "traj": TrajStudy,
}


def study_task(config: CompareConfig) -> StudyTask:
    """The task that ``config.task`` names, set up for ``config``."""
    return STUDY_TASKS[config.task](config)
