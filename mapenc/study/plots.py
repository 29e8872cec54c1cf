"""PNGs of an encoder study, drawn from ``summary.json`` entries (``mapenc.study.compare.summarise``).

- ``metric_vs_params.png``: each headline metric against the encoder's parameter count (the
  rest of the model is the same for every encoder);
- ``metric_vs_bottleneck.png``: against the elements entering the encoder's fc (log scale; a run
  without a map has none and is drawn as a dashed line);
- ``metric_vs_raster.png``: trajectories with several raster sizes, against pixels per side;
- ``probes.png``: sensitivity to shift / rot90 / flip and the linear "where" probe's R².

Points are the mean over seeds with ± one standard deviation as error bars, one per encoder.
matplotlib (Agg) is imported only when a plot is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mapenc.safeio import save_figure
from mapenc.study.protocol import PROBE_COLUMNS
from mapenc.train.logs import EPOCH_LOG_NAME, read_log

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Summary = Sequence[dict[str, Any]]
Metrics = Sequence[str]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _metric_against(
    axes: Axes, summary: Summary, metric: str, x_field: str, label_sizes: bool
) -> None:
    """One point per entry: ``metric`` (mean ± std) against ``x_field``'s mean; 0 -> a line."""
    for entry in summary:
        if metric not in entry:
            continue
        y, err = entry[metric]["mean"], entry[metric]["std"]
        label = entry["encoder"] + (f" r{entry['raster_size']}" if label_sizes else "")
        x = entry[x_field]["mean"]
        if x <= 0:
            axes.axhline(y, linestyle="--", color="grey", linewidth=1)
            axes.annotate(label, (0.01, y), xycoords=("axes fraction", "data"), fontsize=7)
            continue
        axes.errorbar([x], [y], yerr=[err], fmt="o", capsize=3)
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    log_axis_ticks(axes)
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)


def compact_number(value: float, _position: object = None) -> str:
    """``1500 -> "1.5k"``, ``2e6 -> "2M"``: tick labels short enough not to run into each other."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def log_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Tick values for a log axis over ``[low, high]`` (both > 0): 1, 2 and 5 of each decade
    (every other one when there are more than ``most``), or, when fewer than two of those fall
    inside, three values evenly spaced in log, rounded to two significant digits."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    inside = [
        m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5) if low <= m * 10.0**e <= high
    ]
    while len(inside) > most:
        inside = inside[::2]
    if len(inside) >= 2:
        return inside
    return sorted({float(f"{v:.2g}") for v in np.geomspace(low, high, 5)[1:4]})


def log_axis_ticks(axes: Axes) -> None:
    """Make the x axis logarithmic with a few well-spaced ticks in compact numbers.

    (Over less than a decade matplotlib falls back to evenly spaced linear ticks, which crowd
    together at the right of a log axis until their labels overlap.)
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    axes.set_xscale("log")
    low, high = axes.get_xlim()
    axes.xaxis.set_major_locator(FixedLocator(log_ticks(low, high)))
    axes.xaxis.set_major_formatter(FuncFormatter(compact_number))
    axes.xaxis.set_minor_formatter(NullFormatter())


def _figure_against(
    summary: Summary, metrics: Metrics, title: str, x_field: str, x_label: str, path: Path
) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 4), squeeze=False)
    sizes = len({entry.get("raster_size") for entry in summary}) > 1
    for ax, metric in zip(axes[0], metrics, strict=True):
        _metric_against(ax, summary, metric, x_field, sizes)
        ax.set_xlabel(x_label)
    figure.suptitle(f"{title}: mean ± std over seeds")
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    plt.close(figure)
    return path


def plot_metric_vs_raster(summary: Summary, metrics: Metrics, path: Path) -> Path:
    """Each headline metric against raster pixels per side, one line per encoder."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 4), squeeze=False)
    encoders = list(dict.fromkeys(entry["encoder"] for entry in summary))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for encoder in encoders:
            points = sorted(
                (e["raster_size"], e[metric]["mean"], e[metric]["std"])
                for e in summary
                if e["encoder"] == encoder and metric in e
            )
            sizes, means, stds = zip(*points, strict=True)
            ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3, label=encoder)
        ax.set_xlabel("raster pixels per side (fixed 64 m extent)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    plt.close(figure)
    return path


def plot_probes(summary: Summary, path: Path) -> Path:
    """Grouped bars per entry: sensitivities (shift, rot90, flip) and the where-probe R²."""
    plt = _pyplot()
    columns = [c for c in PROBE_COLUMNS if c != "probe_active_units"]
    entries = [e for e in summary if any(c in e for c in columns)]
    figure, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(entries)), 4))
    width = 0.8 / len(columns)
    for k, column in enumerate(columns):
        xs = [i + (k - (len(columns) - 1) / 2) * width for i in range(len(entries))]
        means = [e[column]["mean"] if column in e else 0.0 for e in entries]
        stds = [e[column]["std"] if column in e else 0.0 for e in entries]
        ax.bar(xs, means, width, yerr=stds, capsize=2, label=column.removeprefix("probe_"))
    labels = [
        e["encoder"] + (f" r{e['raster_size']}" if e.get("raster_size") else "") for e in entries
    ]
    ax.set_xticks(range(len(entries)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("sensitivity ratio / R²")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    plt.close(figure)
    return path


def plot_study(summary: Summary, metrics: Metrics, title: str, out_dir: Path) -> list[Path]:
    """Every PNG of the study into ``out_dir`` (``metrics``: the task's headline metrics, ``title``:
    the task's name); returns their paths."""
    paths = [
        _figure_against(
            summary,
            metrics,
            title,
            "encoder_params",
            "encoder parameters",
            out_dir / "metric_vs_params.png",
        ),
        _figure_against(
            summary,
            metrics,
            title,
            "bottleneck_elements",
            "bottleneck elements (input to the fc)",
            out_dir / "metric_vs_bottleneck.png",
        ),
        plot_probes(summary, out_dir / "probes.png"),
    ]
    if len({entry.get("raster_size") for entry in summary}) > 1:
        paths.append(plot_metric_vs_raster(summary, metrics, out_dir / "metric_vs_raster.png"))
    return paths


def plot_learning_curves(logs: Mapping[str, Sequence[Path]], path: Path) -> Path:
    """Training loss against optimiser steps, one colour per encoder (``logs``: encoder name ->
    its runs' ``train_log.csv``), one line per run; beside it, when the runs scored a held-out
    split after every epoch (an ``eval_*`` column of the ``epochs.csv`` next to each log: val
    minFDE6 for trajectories, test loss for MNIST), that score per epoch. PNG at ``path``."""
    plt = _pyplot()
    held_out = {
        file: epoch_rows
        for files in logs.values()
        for file in files
        if (epoch_log := file.with_name(EPOCH_LOG_NAME)).is_file()
        and (epoch_rows := read_log(epoch_log)[1])
    }
    column = next(
        (key for rows in held_out.values() for key in rows[0] if key.startswith("eval_")), None
    )
    figure, axes = plt.subplots(1, 2 if column else 1, figsize=(12 if column else 7, 4))
    ax, ax_held_out = (axes[0], axes[1]) if column else (axes, None)
    for colour, (name, files) in enumerate(logs.items()):
        for number, file in enumerate(files):
            rows = read_log(file)[1]
            label = name if number == 0 else None
            style = {"color": f"C{colour}", "linewidth": 1.0, "alpha": 0.8, "label": label}
            ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], **style)
            epochs = held_out.get(file, [])
            if ax_held_out is not None and epochs and column in epochs[0]:
                scored = [r for r in epochs if r[column]]
                steps = [int(r["step"]) for r in scored]
                ax_held_out.plot(steps, [float(r[column]) for r in scored], marker=".", **style)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (mean of each logged window)")
    # Symmetric log: a Laplace likelihood's loss falls below zero once the scales shrink.
    ax.set_yscale("symlog", linthresh=1.0)
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
    ax.legend(fontsize=8)
    if ax_held_out is not None and column is not None:
        ax_held_out.set_xlabel("optimiser step (end of each epoch)")
        ax_held_out.set_ylabel(column.removeprefix("eval_").replace("_", " "))
        ax_held_out.set_title("held-out score after every epoch", fontsize=10)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    plt.close(figure)
    return path
