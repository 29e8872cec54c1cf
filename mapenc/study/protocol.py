"""What the study asks of a task: the ``StudyTask`` protocol, one run of it, and the row helpers.

A task (``mapenc.study.tasks``: the MNIST VAE, the trajectory CVAE) trains one ``Run`` (an
encoder, a seed, and for trajectories a raster size) into a folder and turns the finished folder
into one row of ``results.json``; the study loops over tasks x encoders x seeds and never looks
inside a task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from mapenc.encoders import Description, VectorDescription, VectorMapEncoder, describe
from mapenc.train.checkpoint import read_json, write_json

PROBES_NAME = "probes.json"
PROBE_COLUMNS = (
    "probe_sensitivity_shift",
    "probe_sensitivity_rot90",
    "probe_sensitivity_flip",
    "probe_active_units",
    "probe_where_r2",
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


class StudyTask(Protocol):
    """A task the study can run: train a run into a folder, read a finished folder as a row.

    Attributes:
        headline_metrics: the metrics tables and plots lead with (lower is better for all).
        table_digits: decimals of the headline metrics in the printed table.
        metrics_name: the file a finished run's folder holds (a run without it is trained).
    """

    headline_metrics: tuple[str, ...]
    table_digits: int
    metrics_name: str

    def runs(self) -> list[Run]:
        """Every run of the study, seeds innermost (so an early stop leaves whole encoders)."""
        ...

    def train(self, run: Run, run_dir: Path) -> None:
        """Train and evaluate ``run`` into ``run_dir``, leaving ``run_dir / metrics_name``."""
        ...

    def row(self, run: Run, run_dir: Path) -> dict[str, Any]:
        """The results row of a finished run: metrics, sizes, wall times, probes."""
        ...

    def seconds_per_step(self, run: Run) -> float:
        """Wall seconds of one training step of ``run``'s model, timed on a small batch of the
        task's data (for the study's estimate of its duration)."""
        ...

    def summary_extras(self, out_dir: Path, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """What the task adds to ``summary.json`` once every run is finished (``rows``: one per
        run): ``intervals`` (encoder or baseline name -> its intervals), ``reference`` (the
        method differences are taken to) and any other field (empty: nothing)."""
        ...


def bottleneck_facts(encoder: torch.nn.Module | None, input_shape: Sequence[int]) -> dict[str, Any]:
    """``bottleneck_shape`` (list of ``[C, h, w]``, for a vector encoder ``[tokens, width]``),
    ``bottleneck_elements``, ``encoder_params``, ``encoder_macs`` (per sample); ``input_shape`` is
    ``(C, H, W)`` for a raster encoder, ``(polylines, points, history points)`` for a vector one."""
    if encoder is None:
        return {
            "bottleneck_shape": [],
            "bottleneck_elements": 0,
            "encoder_params": 0,
            "encoder_macs": 0,
        }
    description: Description | VectorDescription
    if isinstance(encoder, VectorMapEncoder):
        description = encoder.describe(*input_shape)
        macs = description.macs
    else:
        description = describe(encoder, input_shape)
        macs = description.total_macs
    return {
        "bottleneck_shape": [list(shape) for _, shape in description.bottleneck],
        "bottleneck_elements": description.bottleneck_elements or 0,
        "encoder_params": description.total_params,
        "encoder_macs": macs,
    }


def cached_probes(run_dir: Path, compute: Callable[[], Mapping[str, float]]) -> dict[str, float]:
    """Probes of a run, read from ``probes.json`` or computed by ``compute()`` and written there."""
    path = run_dir / PROBES_NAME
    if path.is_file():
        cached: dict[str, float] = read_json(path)
        return cached
    probes = {f"probe_{key}": value for key, value in compute().items()}
    write_json(path, probes)
    return probes


def seconds_per_training_step(model: torch.nn.Module, batch: Any, steps: int = 3) -> float:
    """Mean wall seconds of ``steps`` Adam steps of ``model.loss(batch)`` (after one untimed)."""
    optimiser = torch.optim.Adam(model.parameters())
    model.train()
    timings = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        optimiser.zero_grad()
        loss, _ = model.loss(batch)  # type: ignore[operator]
        loss.backward()
        optimiser.step()
        timings.append(time.perf_counter() - started)
    return sum(timings[1:]) / steps
