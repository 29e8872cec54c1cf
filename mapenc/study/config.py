"""The settings of one encoder study (``CompareConfig``) and the names it accepts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mapenc.encoders import list_encoders
from mapenc.errors import ConfigError
from mapenc.experiments.trajectory_data import NGSIM_RASTER
from mapenc.raster import list_layers
from mapenc.study.probes import ProbeConfig

STUDY_TASK_NAMES = ("mnist", "traj")
NO_MAP = "none"
# Anchors the trajectory study may give every run alike (never "auto": it differs with the map).
STUDY_ANCHORS = ("kinematic", "lane")
DEFAULT_ENCODERS = (
    "seed_global",
    "seed_spatial_conv",
    "conv-global",
    "conv-spatial",
    "conv-mixed",
    "resnet",
)


def study_encoder(name: str, task: str) -> str | None:
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

    Runs are compared at an equal number of optimiser steps (``max_steps``); their wall times
    stand beside the metrics, since a time budget would depend on the machine's load.

    Attributes:
        task: mnist (the image VAE) or traj (the trajectory CVAE).
        encoders: registered encoder names, or none (traj only: the model without its map).
        seeds: runs per encoder, with seeds 0 .. seeds - 1.
        data: MNIST source (empty: the embedded 5k) or trajectory data paths.
        epochs: epochs per run (None: the step budget alone decides).
        max_minutes: training minutes per run, a safety cap (None: no cap).
        max_steps: optimiser steps per run, the same for every run.
        batch_size: samples per step (None: the task's default, 128 images or 64 trajectories).
        lr: learning rate.
        decoder: mnist: one decoder for every encoder, so that only the encoder differs (None:
            each encoder's mirror decoder).
        iw_k: mnist: importance samples of the test NLL.
        eval_images: mnist: the first N test images every run is scored on (None, "all" on the
            command line: every one).
        raster_sizes: traj: raster sizes in pixels over a fixed 64 m extent (64 = 1 m/px); an
            encoder built for one input size only (``seed_spatial``: 100) gets its own size
            over the same extent.
        layers: traj: the raster layers (channels), the same for every encoder.
        train_split: traj: the split trained on.
        eval_split: traj: the split scored ("all" only for smoke tests: it scores the training data).
        cache_dir: traj: raster cache folder ("" = mapenc's default).
        probe_samples: test inputs the probes use.
        probe: probe settings.
        device: auto, cpu, cuda or cuda:N.
        progress: show progress bars.
        workers: runs trained at the same time, each in its own process on one thread.
        anchors: traj: the anchors every run's model decodes around, the same for every encoder
            and for none, so that only the map encoder differs: kinematic (the map reaches the
            model through the encoder alone) or lane (lane-following anchors drawn from the map).
        references: encoders every other method's difference is taken to, each with its
            interval (empty: none for traj, the first encoder for mnist).
    """

    task: str = "mnist"
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    seeds: int = 3
    data: tuple[str, ...] = ()
    epochs: int | None = None
    max_minutes: float | None = None
    max_steps: int = 1000
    batch_size: int | None = None
    lr: float = 1e-3
    decoder: str | None = "seed_global"
    iw_k: int = 100
    eval_images: int | None = 2000
    raster_sizes: tuple[int, ...] = (64,)
    layers: tuple[str, ...] = NGSIM_RASTER.layers
    train_split: str = "train"
    eval_split: str = "test"
    cache_dir: str = ""
    probe_samples: int = 300
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    device: str = "auto"
    progress: bool = True
    workers: int = 1
    anchors: str = "kinematic"
    references: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in STUDY_TASK_NAMES:
            raise ConfigError(f"task={self.task!r}: expected one of {STUDY_TASK_NAMES}")
        if not self.encoders or len(set(self.encoders)) != len(self.encoders):
            raise ConfigError(f"encoders={self.encoders}: give distinct names, at least one")
        for name in self.encoders:
            study_encoder(name, self.task)
        if self.seeds < 1 or self.probe_samples < 10 or self.iw_k < 1 or self.max_steps < 1:
            raise ConfigError(
                "CompareConfig: seeds >= 1, probe_samples >= 10, iw_k >= 1, max_steps >= 1"
            )
        unknown = [name for name in self.references if name not in self.encoders]
        if unknown:
            raise ConfigError(
                f"references={list(self.references)}: {', '.join(unknown)} not among the "
                f"encoders {list(self.encoders)}"
            )
        if self.anchors not in STUDY_ANCHORS:
            raise ConfigError(f"anchors={self.anchors!r}: expected one of {STUDY_ANCHORS}")
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers}: at least 1")
        if self.eval_images is not None and self.eval_images < 1:
            raise ConfigError(f"eval_images={self.eval_images}: at least 1, or None for all")
        if not self.raster_sizes or min(self.raster_sizes) < 8:
            raise ConfigError(f"raster_sizes={self.raster_sizes}: at least one size, each >= 8")
        unknown_layers = [name for name in self.layers if name not in list_layers()]
        if not self.layers or unknown_layers:
            raise ConfigError(
                f"layers={list(self.layers)}: give at least one of {', '.join(list_layers())}"
            )
        if self.task == "traj" and not self.data:
            raise ConfigError("the traj study needs data paths (CommonRoad folders, synthetic:N)")
        if self.task == "mnist" and len(self.data) > 1:
            raise ConfigError(f"the mnist study reads one source, got {list(self.data)}")

    def difference_references(self) -> tuple[str, ...]:
        """``references``, or by default ``none`` for traj and the first encoder for mnist."""
        if self.references:
            return self.references
        return (NO_MAP,) if self.task == "traj" else self.encoders[:1]
