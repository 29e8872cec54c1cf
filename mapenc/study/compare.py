"""The encoder study: train every encoder under one protocol with several seeds, probe, summarise.

``run_compare(CompareConfig(...), out_dir)`` trains run ``<encoder>-s<seed>`` (with ``-r<px>`` when
several raster sizes are compared) into ``out_dir/runs/``, skipping runs whose metrics file exists,
so an interrupted study resumes. Each run gives one row of ``out_dir/results.json``:

- ``encoder``, ``seed`` (and for ``traj`` ``raster_size``, ``pixel_size_m``);
- the task's metrics: MNIST ``test_loss``, ``nll``, ``kl``, ``recon`` (nats per image),
  ``active_units``; trajectories ``minADE``, ``minFDE``, ``miss_rate``, ``offroad_rate`` (metres,
  rates; best of ``k`` = 6) and the constant-velocity baseline's ``cv_ADE``, ``cv_FDE``;
- ``params`` (the whole model), ``encoder_params``, ``seconds`` (train + evaluate),
  ``bottleneck_shape`` (the ``[C, h, w]`` maps entering the fc) and ``bottleneck_elements``;
- the probes of ``mapenc.study.probes`` on the trained encoder, prefixed ``probe_``.

``summary.json`` holds mean and std (over seeds) per encoder; ``format_table`` prints it.

Encoders are registry names (``mapenc.encoders.list_encoders()``, among them the seed designs at
any input size, ``seed_spatial_conv`` and ``seed_global_conv``) or (trajectories only) ``none``:
the same model without its map branch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mapenc.encoders import (
    Description,
    VectorDescription,
    VectorMapEncoder,
    describe,
    list_encoders,
)
from mapenc.errors import ConfigError
from mapenc.study.probes import ProbeConfig, probe_encoder
from mapenc.study.protocol import HEADLINE_METRICS, PROBE_COLUMNS, STUDY_TASKS, Task
from mapenc.train import TrainConfig
from mapenc.train.checkpoint import read_json, write_json

PathType = str | PathLike[str]
NO_MAP = "none"
RESULTS_NAME = "results.json"
SUMMARY_NAME = "summary.json"
PROBES_NAME = "probes.json"
# Extent of the trajectory raster, kept fixed when --raster-sizes changes the resolution.
TRAJ_EXTENT_M = 64.0

DEFAULT_BATCH_SIZE: dict[str, int] = {"mnist": 128, "traj": 64}


DEFAULT_ENCODERS = (
    "seed_global",
    "seed_spatial_conv",
    "conv-global",
    "conv-spatial",
    "conv-mixed",
    "resnet",
)


def study_encoder(name: str, task: Task) -> str | None:
    """The registered encoder behind a study name; None for ``none`` (no map branch, ``traj``)."""
    if name == NO_MAP and task == "traj":
        return None
    # Images have no polylines: the MNIST study takes raster encoders only.
    usable = list_encoders() if task == "traj" else list_encoders("raster")
    if name in usable:
        return name
    known = [*usable] + ([NO_MAP] if task == "traj" else [])
    raise ConfigError(f"unknown encoder {name!r} for the {task} study; known: {', '.join(known)}")


@dataclass(frozen=True)
class CompareConfig:
    """One study: task, encoders, seeds and the per-run budget every encoder gets alike.

    Attributes:
        task: ``mnist`` (the image VAE) or ``traj`` (the trajectory CVAE).
        encoders: study names (see the module docstring).
        seeds: runs per encoder, with seeds ``0 .. seeds - 1``.
        data: MNIST source (None: the embedded 5k) or trajectory data paths (comma-free list).
        epochs, max_minutes, max_steps: the budget of each run (the first to run out stops it).
        batch_size: None for the task's default (128 images, 64 trajectories).
        lr: learning rate.
        decoder: MNIST only: one decoder for every encoder (so only the encoder differs), or None
            for each encoder's mirror decoder.
        iw_k: MNIST only: importance samples of the test NLL.
        raster_sizes: traj only: raster sizes in pixels over a fixed 64 m extent (64 = 1 m/px).
        train_split, eval_split: traj only: the splits trained on and scored ("all" for smoke
            tests on a handful of scenes only: it scores the training data).
        cache_dir: traj only: raster cache folder ("" = mapenc's default).
        probe_samples: test inputs the probes use.
        probe: probe settings.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: show progress bars.
    """

    task: Task = "mnist"
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    seeds: int = 3
    data: tuple[str, ...] = ()
    epochs: int = 10
    max_minutes: float | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    lr: float = 1e-3
    decoder: str | None = "seed_global"
    iw_k: int = 100
    raster_sizes: tuple[int, ...] = (64,)
    train_split: str = "train"
    eval_split: str = "test"
    cache_dir: str = ""
    probe_samples: int = 300
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.task not in STUDY_TASKS:
            raise ConfigError(f"task={self.task!r}: expected one of {STUDY_TASKS}")
        if not self.encoders or len(set(self.encoders)) != len(self.encoders):
            raise ConfigError(f"encoders={self.encoders}: give distinct names, at least one")
        for name in self.encoders:
            study_encoder(name, self.task)
        if self.seeds < 1 or self.probe_samples < 10 or self.iw_k < 1:
            raise ConfigError("CompareConfig: seeds >= 1, probe_samples >= 10, iw_k >= 1")
        if not self.raster_sizes or min(self.raster_sizes) < 8:
            raise ConfigError(f"raster_sizes={self.raster_sizes}: at least one size, each >= 8")
        if self.task == "traj" and not self.data:
            raise ConfigError("the traj study needs data paths (CommonRoad folders, synthetic:N)")
        if self.task == "mnist" and len(self.data) > 1:
            raise ConfigError(f"the mnist study reads one source, got {list(self.data)}")

    def train_config(self, seed: int) -> TrainConfig:
        """The budget and optimiser every run gets; only the seed differs."""
        return TrainConfig(
            epochs=self.epochs,
            max_minutes=self.max_minutes,
            max_steps=self.max_steps,
            batch_size=self.batch_size or DEFAULT_BATCH_SIZE[self.task],
            lr=self.lr,
            seed=seed,
            grad_clip_norm=5.0 if self.task == "traj" else None,
            device=self.device,
            progress=self.progress,
        )


@dataclass(frozen=True)
class Run:
    """One cell of the study: an encoder, a seed, and (traj) a raster size in pixels."""

    encoder: str
    seed: int
    raster_size: int | None = None

    def folder_name(self) -> str:
        """``<encoder>-s<seed>``, with ``-r<px>`` before the seed when raster sizes vary."""
        size = f"-r{self.raster_size}" if self.raster_size is not None else ""
        return f"{self.encoder}{size}-s{self.seed}"


def study_runs(config: CompareConfig) -> list[Run]:
    """Every run of the study, seeds innermost (so early stops leave whole encoders)."""
    sizes: Sequence[int | None] = (
        config.raster_sizes
        if config.task == "traj" and len(config.raster_sizes) > 1
        else [config.raster_sizes[0] if config.task == "traj" else None]
    )
    return [
        Run(name, seed, size if len(sizes) > 1 else None)
        for size in sizes
        for name in config.encoders
        for seed in range(config.seeds)
    ]


def _bottleneck(encoder: torch.nn.Module | None, input_shape: Sequence[int]) -> dict[str, Any]:
    """``bottleneck_shape`` (list of ``[C, h, w]``, for a vector encoder ``[tokens, width]``),
    ``bottleneck_elements``, ``encoder_params``; ``input_shape`` is ``(C, H, W)`` for a raster
    encoder, ``(polylines, points, history points)`` for a vector encoder."""
    if encoder is None:
        return {"bottleneck_shape": [], "bottleneck_elements": 0, "encoder_params": 0}
    description: Description | VectorDescription
    if isinstance(encoder, VectorMapEncoder):
        description = encoder.describe(*input_shape)
    else:
        description = describe(encoder, input_shape)
    return {
        "bottleneck_shape": [list(shape) for _, shape in description.bottleneck],
        "bottleneck_elements": description.bottleneck_elements or 0,
        "encoder_params": description.total_params,
    }


def _cached_probes(run_dir: Path, compute: Any) -> dict[str, float]:
    """Probes of a run, read from ``probes.json`` or computed by ``compute()`` and written there."""
    path = run_dir / PROBES_NAME
    if path.is_file():
        cached: dict[str, float] = read_json(path)
        return cached
    probes = {f"probe_{key}": value for key, value in compute().items()}
    write_json(path, probes)
    return probes


class MnistStudy:
    """Runs of the MNIST VAE study (``mapenc.experiments.mnist``)."""

    metrics_name = "metrics.json"

    def __init__(self, config: CompareConfig) -> None:
        self.config = config
        self._probe_images: torch.Tensor | None = None

    def experiment(self, run: Run) -> Any:
        """The ``MnistExperimentConfig`` of a run."""
        from mapenc.experiments.mnist import MnistExperimentConfig
        from mapenc.vae.image import ImageVAEConfig

        chosen = study_encoder(run.encoder, "mnist")
        assert chosen is not None
        model = ImageVAEConfig(encoder=chosen, decoder=self.config.decoder)
        return MnistExperimentConfig(
            model=model,
            train=self.config.train_config(run.seed),
            data=self.config.data[0] if self.config.data else None,
            eval_iw_k=self.config.iw_k,
        )

    def train(self, run: Run, run_dir: Path) -> None:
        """Train and evaluate; writes ``run_dir/metrics.json``."""
        from mapenc.experiments.mnist import train_and_evaluate

        train_and_evaluate(self.experiment(run), run_dir)

    def row(self, run: Run, run_dir: Path) -> dict[str, Any]:
        """The results row of a finished run (metrics, size, bottleneck, probes)."""
        from mapenc.experiments.mnist import load_run, test_split

        metrics = read_json(run_dir / self.metrics_name)
        experiment, model = load_run(run_dir, self.config.device)
        if self._probe_images is None:
            test = test_split(experiment)
            count = min(self.config.probe_samples, len(test))
            self._probe_images = torch.stack([test[i][0] for i in range(count)])
        images = self._probe_images.to(model.q_mean.weight.device)
        row = {
            key: metrics[key] for key in ("test_loss", "nll", "kl", "recon", "active_units", "iw_k")
        }
        row.update(
            params=metrics["params"],
            seconds=round(metrics["train_seconds"] + metrics["eval_seconds"], 1),
            steps=metrics["steps"],
            epochs=metrics["epochs"],
            **_bottleneck(model.encoder, images.shape[1:]),
        )
        probes = _cached_probes(
            run_dir,
            lambda: probe_encoder(lambda x: model.posterior(x)[0], images, self.config.probe),
        )
        return {**row, **probes}


class TrajStudy:
    """Runs of the trajectory CVAE study (``mapenc.experiments.trajectory``); checks every encoder can take
    its raster before the first run."""

    metrics_name = "results.json"

    def __init__(self, config: CompareConfig) -> None:
        from mapenc.vae.trajectory import build_map_encoder

        self.config = config
        self._probe_rasters: dict[int, torch.Tensor] = {}
        for run in study_runs(config):  # an encoder that cannot take the raster fails now
            model = self.experiment(run).model
            if model.use_map:
                build_map_encoder(model)

    def raster_size(self, run: Run) -> int:
        """Pixels per side of the run's raster."""
        return run.raster_size or self.config.raster_sizes[0]

    def experiment(self, run: Run) -> Any:
        """The ``TrajExperimentConfig`` of a run: NGSIM raster layers at the run's resolution."""
        from mapenc.experiments.trajectory import NGSIM_RASTER, make_experiment_config

        size = self.raster_size(run)
        raster = dataclasses.replace(
            NGSIM_RASTER, size_px=(size, size), pixel_size_m=TRAJ_EXTENT_M / size
        )
        chosen = study_encoder(run.encoder, "traj")
        config = make_experiment_config(
            self.config.data,
            encoder=chosen or "conv-spatial",
            use_map=chosen is not None,
            raster=raster,
            train=self.config.train_config(run.seed),
        )
        return dataclasses.replace(
            config, split=self.config.train_split, cache_dir=self.config.cache_dir
        )

    def train(self, run: Run, run_dir: Path) -> None:
        """Train and evaluate on ``eval_split``; writes ``run_dir/results.json``."""
        from mapenc.experiments.trajectory import train_and_evaluate

        train_and_evaluate(self.experiment(run), run_dir, self.config.eval_split)

    def probe_rasters(self, run: Run, experiment: Any) -> torch.Tensor:
        """``[M, C, H, W]`` rasters of evenly spaced samples of the scored split (cached per size)."""
        from mapenc.experiments.trajectory import load_split

        size = self.raster_size(run)
        if size not in self._probe_rasters:
            dataset = load_split(experiment, self.config.eval_split, progress=False).dataset
            count = min(self.config.probe_samples, len(dataset))
            index = np.linspace(0, len(dataset) - 1, count).round().astype(int)
            self._probe_rasters[size] = torch.stack([dataset.raster(int(i)) for i in index])
        return self._probe_rasters[size]

    @staticmethod
    def encoder_input_shape(experiment: Any) -> tuple[int, int, int]:
        """``(C, H, W)`` of the rasters, or for a vector encoder ``(polylines, points, history)``."""
        from mapenc.experiments.trajectory import polyline_spec

        spec = polyline_spec(experiment)
        if spec is not None:
            return spec.max_polylines, spec.points, experiment.task.history_steps + 1
        return experiment.raster.num_channels, *experiment.raster.size_px

    def row(self, run: Run, run_dir: Path) -> dict[str, Any]:
        """The results row of a finished run (metrics, size, bottleneck, map-latent probes)."""
        from mapenc.experiments.trajectory import load_run

        result = read_json(run_dir / self.metrics_name)
        experiment, model = load_run(run_dir)
        model.eval()
        raster = experiment.raster
        row: dict[str, Any] = {
            "raster_size": raster.size_px[0],
            "pixel_size_m": raster.pixel_size_m,
            **{key: result["model"][key] for key in HEADLINE_METRICS["traj"]},
            "miss_rate": result["model"]["miss_rate"],
            "cv_ADE": result["constant_velocity"]["ADE"],
            "cv_FDE": result["constant_velocity"]["FDE"],
            "k": result["k"],
            "n_test": result["n"],
            "params": result["params"],
            "seconds": result["seconds"],
            "steps": result["steps"],
            "epochs": result["epochs"],
            **_bottleneck(model.map_encoder, self.encoder_input_shape(experiment)),
        }
        encoder = model.map_encoder
        if encoder is None or isinstance(encoder, VectorMapEncoder):  # the probes move pixels
            return row
        rasters = self.probe_rasters(run, experiment)
        probes = _cached_probes(run_dir, lambda: probe_encoder(encoder, rasters, self.config.probe))
        return {**row, **probes}


def iterate_runs(config: CompareConfig, out_dir: Path) -> Iterator[dict[str, Any]]:
    """Train (or skip, when its metrics exist) every run; yield its results row."""
    study = MnistStudy(config) if config.task == "mnist" else TrajStudy(config)
    runs = study_runs(config)
    bar = tqdm(runs, desc=f"compare {config.task}", unit="run", disable=not config.progress)
    for run in bar:
        run_dir = out_dir / "runs" / run.folder_name()
        if (run_dir / study.metrics_name).is_file():
            tqdm.write(f"{run.folder_name()}: finished earlier, metrics read from {run_dir}")
        else:
            bar.set_postfix_str(run.folder_name())
            study.train(run, run_dir)
        yield {"encoder": run.encoder, "seed": run.seed, **study.row(run, run_dir)}


def group_key(row: dict[str, Any]) -> tuple[str, int | None]:
    """Rows of one encoder (and raster size) are the seeds of one summary entry."""
    return row["encoder"], row.get("raster_size")


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per encoder (and raster size): ``n`` seeds and ``{mean, std}`` of every numeric field.

    ``std`` is the sample standard deviation over seeds (0 for a single seed). Fields that are
    the same in every seed (``params``, ``bottleneck_elements``) keep std 0.
    """
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(group_key(row), []).append(row)
    summary = []
    for (encoder, raster_size), members in groups.items():
        entry: dict[str, Any] = {"encoder": encoder, "raster_size": raster_size, "n": len(members)}
        entry["bottleneck_shape"] = members[0].get("bottleneck_shape", [])
        numeric = [
            key
            for key, value in members[0].items()
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and key not in ("seed", "raster_size")
        ]
        for key in numeric:
            values = np.array([float(m[key]) for m in members if key in m])
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            entry[key] = {"mean": float(values.mean()), "std": std}
        summary.append(entry)
    return summary


def _cell(stat: dict[str, float] | None, digits: int) -> str:
    if stat is None or not math.isfinite(stat["mean"]):
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def format_table(summary: Sequence[dict[str, Any]], task: Task) -> str:
    """Aligned text table: one line per encoder, headline metrics and probes as mean ± std."""
    metrics = HEADLINE_METRICS[task]
    show_size = any(entry.get("raster_size") for entry in summary) and task == "traj"
    header = ["encoder", *(["raster"] if show_size else []), "n", *metrics]
    header += ["params", "bottleneck", *[c.removeprefix("probe_") for c in PROBE_COLUMNS]]
    lines = [header]
    for entry in summary:
        digits = 2 if task == "mnist" else 3
        cells = [entry["encoder"], *([str(entry["raster_size"])] if show_size else [])]
        cells.append(str(entry["n"]))
        cells += [_cell(entry.get(m), digits) for m in metrics]
        cells.append(f"{entry['params']['mean']:,.0f}")
        cells.append(f"{entry['bottleneck_elements']['mean']:,.0f}")
        cells += [_cell(entry.get(c), 2) for c in PROBE_COLUMNS]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def run_compare(config: CompareConfig, out_dir: PathType) -> list[dict[str, Any]]:
    """Run the study into ``out_dir``: ``results.json``, ``summary.json``, PNGs; returns the rows.

    Rows are rewritten to ``results.json`` after every run, so a partial study is readable.
    """
    from mapenc.study.plots import plot_study

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "compare_config.json", dataclasses.asdict(config))
    rows: list[dict[str, Any]] = []
    for row in iterate_runs(config, out):
        rows.append(row)
        write_json(out / RESULTS_NAME, rows)
    summary = summarise(rows)
    write_json(out / SUMMARY_NAME, summary)
    plot_study(summary, config.task, out)
    return rows
