"""What the study asks of a task: the ``StudyTask`` protocol, one run of it, and the row helpers.

A task (``mapenc.study.tasks``: the MNIST VAE, the trajectory CVAE) trains one ``Run`` (an
encoder, a seed, and for trajectories a raster size) into a folder and turns the finished folder
into one row of ``results.json``; the study loops over tasks x encoders x seeds and never looks
inside a task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from mapenc.encoders import describe
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


def bottleneck_facts(encoder: torch.nn.Module | None, input_shape: Sequence[int]) -> dict[str, Any]:
    """``bottleneck_shape`` (list of ``[C, h, w]``), ``bottleneck_elements``, ``encoder_params``."""
    if encoder is None:
        return {"bottleneck_shape": [], "bottleneck_elements": 0, "encoder_params": 0}
    description = describe(encoder, input_shape)
    return {
        "bottleneck_shape": [list(shape) for _, shape in description.bottleneck],
        "bottleneck_elements": description.bottleneck_elements or 0,
        "encoder_params": description.total_params,
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
