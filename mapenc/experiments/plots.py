"""Pictures of forecasts: each case's raster with the past, the true future and the K predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mapenc.data.traj_dataset import TrajectoryDataset
from mapenc.raster import RasterSpec, to_rgb


def agent_to_pixels(spec: RasterSpec, points_agent: NDArray[np.floating]) -> NDArray[np.float64]:
    """(..., 2) agent-frame metres -> (..., 2) image coordinates for ``imshow`` (column, row).

    ``imshow`` puts pixel (i, j)'s centre at (j, i); RasterSpec's (u, v) put it at (j + 0.5, i + 0.5).
    """
    m = spec.raster_from_agent()
    pts = np.asarray(points_agent, dtype=np.float64)
    uv = pts @ m[:2, :2].T + m[:2, 2]
    return uv - 0.5


def plot_forecast_cases(
    dataset: TrajectoryDataset,
    forecasts: NDArray[np.floating],
    constant_velocity: NDArray[np.floating],
    indices: Sequence[int],
    folder: str | Path,
) -> list[str]:
    """One PNG per sample index: raster, past (white), truth (green), CV (grey dashed), K forecasts.

    Args:
        dataset: the samples and their cached rasters.
        forecasts: (N, K, F, 2) agent-frame forecasts of every sample of ``dataset``.
        constant_velocity: (N, F, 2) the constant-velocity baseline.
        indices: which samples to draw.
        folder: output folder (created); files are ``case_<index>.png``.
    Returns: the written paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    spec, samples = dataset.spec, dataset.samples
    paths = []
    for index in indices:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.imshow(to_rgb(np.asarray(dataset.rasters[index]), spec.layers))
        past = agent_to_pixels(spec, samples.past[index])
        truth = agent_to_pixels(spec, samples.future[index])
        cv = agent_to_pixels(spec, constant_velocity[index])
        for k, mode in enumerate(agent_to_pixels(spec, forecasts[index])):
            ax.plot(
                mode[:, 0],
                mode[:, 1],
                color="tab:orange",
                lw=1.2,
                label="forecasts" if k == 0 else None,
            )
        ax.plot(cv[:, 0], cv[:, 1], color="0.7", ls="--", lw=1, label="constant velocity")
        ax.plot(truth[:, 0], truth[:, 1], color="tab:green", lw=2, label="truth")
        ax.plot(past[:, 0], past[:, 1], color="white", lw=2, label="past")
        ax.set_xlim(-0.5, spec.width - 0.5)
        ax.set_ylim(spec.height - 0.5, -0.5)
        ax.set_title(
            f"sample {index}: {samples.kinds[index]} {samples.track_ids[index]}", fontsize=9
        )
        ax.legend(loc="lower right", fontsize=7)
        ax.set_axis_off()
        path = out / f"case_{index}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(str(path))
    return paths
