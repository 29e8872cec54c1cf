"""The encoder study: train every encoder under one protocol with several seeds, probe, summarise.

``run_compare(CompareConfig(...), out_dir)`` trains run ``<encoder>-s<seed>`` (with ``-r<px>`` when
several raster sizes are compared) of the task (``mapenc.study.tasks``) into ``out_dir/runs/``,
skipping runs whose metrics file exists, so an interrupted study resumes. Every run takes the same
number of optimiser steps. Each run gives one row of ``out_dir/results.json``:

- ``encoder``, ``seed`` (and for ``traj`` ``raster_size``, ``pixel_size_m``);
- the task's metrics: MNIST ``test_loss``, ``nll``, ``kl``, ``recon`` (nats per image),
  ``active_units``; trajectories ``minADE``, ``minFDE``, ``miss_rate``, ``offroad_rate`` (metres,
  rates; best of ``k`` = 6) and the constant-velocity baseline's ``cv_ADE``, ``cv_FDE``;
- ``params`` (the whole model), ``encoder_params``, ``steps``, ``train_seconds``,
  ``eval_seconds`` and ``seconds`` (their sum); MNIST ``test_images`` (the fixed test subset),
  trajectories ``n_test``;
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
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mapenc.progress import progress_bar
from mapenc.study.config import CompareConfig
from mapenc.study.protocol import PROBE_COLUMNS, StudyTask
from mapenc.study.tasks import study_task
from mapenc.train.checkpoint import write_json

PathType = str | PathLike[str]
RESULTS_NAME = "results.json"
SUMMARY_NAME = "summary.json"


def iterate_runs(
    study: StudyTask, out_dir: Path, progress: bool = True
) -> Iterator[dict[str, Any]]:
    """Train (or skip, when its metrics exist) every run of ``study``; yield its results row."""
    runs = study.runs()
    bar = progress_bar(runs, desc="compare", unit="run", enabled=progress)
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


def format_table(summary: Sequence[dict[str, Any]], metrics: Sequence[str], digits: int = 3) -> str:
    """Aligned text table: one line per encoder, ``metrics`` (with ``digits`` decimals) and probes
    as mean ± std."""
    show_size = any(entry.get("raster_size") for entry in summary)
    header = ["encoder", *(["raster"] if show_size else []), "n", *metrics]
    header += ["params", "bottleneck", *[c.removeprefix("probe_") for c in PROBE_COLUMNS]]
    lines = [header]
    for entry in summary:
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
    study = study_task(config)
    rows: list[dict[str, Any]] = []
    for row in iterate_runs(study, out, config.progress):
        rows.append(row)
        write_json(out / RESULTS_NAME, rows)
    summary = summarise(rows)
    write_json(out / SUMMARY_NAME, summary)
    plot_study(summary, study.headline_metrics, config.task, out)
    return rows
