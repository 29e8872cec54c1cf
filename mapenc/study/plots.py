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

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mapenc.study.protocol import HEADLINE_METRICS, PROBE_COLUMNS, Task

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Summary = Sequence[dict[str, Any]]


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
    axes.set_xscale("log")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)


def _figure_against(summary: Summary, task: Task, x_field: str, x_label: str, path: Path) -> Path:
    plt = _pyplot()
    metrics = HEADLINE_METRICS[task]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 4), squeeze=False)
    sizes = len({entry.get("raster_size") for entry in summary}) > 1
    for ax, metric in zip(axes[0], metrics, strict=True):
        _metric_against(ax, summary, metric, x_field, sizes)
        ax.set_xlabel(x_label)
    figure.suptitle(f"{task}: mean ± std over seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_metric_vs_raster(summary: Summary, task: Task, path: Path) -> Path:
    """Each headline metric against raster pixels per side, one line per encoder."""
    plt = _pyplot()
    metrics = HEADLINE_METRICS[task]
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
    figure.savefig(path, dpi=100)
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
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_study(summary: Summary, task: Task, out_dir: Path) -> list[Path]:
    """Every PNG of the study into ``out_dir``; returns their paths."""
    paths = [
        _figure_against(
            summary, task, "encoder_params", "encoder parameters", out_dir / "metric_vs_params.png"
        ),
        _figure_against(
            summary,
            task,
            "bottleneck_elements",
            "bottleneck elements (input to the fc)",
            out_dir / "metric_vs_bottleneck.png",
        ),
        plot_probes(summary, out_dir / "probes.png"),
    ]
    if task == "traj" and len({entry.get("raster_size") for entry in summary}) > 1:
        paths.append(plot_metric_vs_raster(summary, task, out_dir / "metric_vs_raster.png"))
    return paths
