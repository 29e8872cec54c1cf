"""Pictures of the experiments: PNGs written with matplotlib (Agg backend, imported lazily).

Trajectories: each case's raster with the past, the true future and the K predictions.
MNIST: reconstructions, prior samples, the 2-D latent by digit, and a run folder's loss curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from mapenc.data.traj_dataset import TrajectoryDataset
from mapenc.errors import DataError
from mapenc.geometry import apply_matrices
from mapenc.raster import RasterSpec, to_rgb
from mapenc.safeio import save_figure
from mapenc.train.logs import EPOCH_LOG_NAME, TRAIN_LOG_NAME, read_log
from mapenc.vae.image import ImageVAE, image_batches

PathType = str | PathLike[str]
GAP_GREY = 0.2


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def agent_to_pixels(spec: RasterSpec, points_agent: NDArray[np.floating]) -> NDArray[np.float64]:
    """(..., 2) agent-frame metres -> (..., 2) image coordinates for ``imshow`` (column, row).

    ``imshow`` puts pixel (i, j)'s centre at (j, i); RasterSpec's (u, v) put it at (j + 0.5, i + 0.5).
    """
    return apply_matrices(spec.raster_from_agent(), points_agent) - 0.5


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
    plt = _pyplot()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    spec, samples = dataset.spec, dataset.samples
    paths = []
    for index in indices:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.imshow(to_rgb(dataset.uint8_raster(index), spec.layers))
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
        save_figure(fig, path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(str(path))
    return paths


def tile_images(images: torch.Tensor, columns: int) -> torch.Tensor:
    """``[N, 1, H, W]`` images as one ``[rows * (H + 1) - 1, columns * (W + 1) - 1]`` mosaic
    (one-pixel light-grey gaps, rows filled left to right)."""
    n, _, h, w = images.shape
    rows = -(-n // columns)
    mosaic = torch.full((rows * (h + 1) - 1, columns * (w + 1) - 1), GAP_GREY)
    for index in range(n):
        r, c = divmod(index, columns)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = images[index, 0]
    return mosaic


def _save_mosaic(mosaic: torch.Tensor, path: PathType, title: str) -> Path:
    plt = _pyplot()
    height, width = mosaic.shape
    fig, ax = plt.subplots(figsize=(width / 40 + 0.4, height / 40 + 0.6))
    ax.imshow(mosaic.cpu().numpy(), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return Path(path)


@torch.no_grad()
def save_reconstructions(
    model: ImageVAE, dataset: Dataset[Any], path: PathType, columns: int = 10
) -> Path:
    """Rows alternate: ``columns`` inputs (spread evenly over ``dataset``), then their
    reconstructions from ``E_q[z]`` (seeded draws for an autoregressive decoder); four pairs of rows."""
    device = model.q_mean.weight.device
    picks = torch.linspace(0, len(dataset) - 1, 4 * columns).long().tolist()  # type: ignore[arg-type]
    images = torch.stack([dataset[i][0] for i in picks]).to(device)
    recon = model.reconstruct(images, torch.Generator().manual_seed(0))
    pairs = []
    for start in range(0, len(images), columns):
        pairs += [images[start : start + columns], recon[start : start + columns]]
    mosaic = tile_images(torch.cat(pairs), columns)
    return _save_mosaic(mosaic, path, "inputs (odd rows) and reconstructions (even rows)")


@torch.no_grad()
def save_samples(model: ImageVAE, path: PathType, count: int = 64, seed: int = 0) -> Path:
    """``count`` images decoded from prior draws ``z ~ N(0, I)`` (seeded; ``ImageVAE.sample``)."""
    samples = model.sample(count, generator=torch.Generator().manual_seed(seed))
    return _save_mosaic(tile_images(samples, 8), path, "samples from the prior")


@torch.no_grad()
def save_latent_scatter(model: ImageVAE, dataset: Dataset[Any], path: PathType) -> Path:
    """Posterior means ``E_q[z]`` of every image of ``dataset``, coloured by digit (``D = 2``)."""
    if model.latent_dim != 2:
        raise DataError(f"latent scatter needs latent_dim = 2, the model has {model.latent_dim}")
    device = model.q_mean.weight.device
    means = torch.cat([model.posterior(x)[0] for x in image_batches(dataset, 500, device)]).cpu()
    labels = torch.as_tensor([dataset[i][1] for i in range(len(means))])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    points = ax.scatter(means[:, 0], means[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("$z_1$ (posterior mean)")
    ax.set_ylabel("$z_2$ (posterior mean)")
    ax.set_title("test images in the latent space")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return Path(path)


def _columns(path: Path, x: str, y: str) -> tuple[list[float], list[float]]:
    if not path.is_file():
        return [], []
    rows = [row for row in read_log(path)[1] if row.get(y)]
    return [float(r[x]) for r in rows], [float(r[y]) for r in rows]


def save_loss_curves(run_dir: PathType, path: PathType) -> Path:
    """Training loss per logged step and, per epoch, training and test loss (nats per image)."""
    run = Path(run_dir)
    steps, losses = _columns(run / TRAIN_LOG_NAME, "step", "loss")
    if not steps:
        raise DataError(f"{run / TRAIN_LOG_NAME}: no logged steps to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses, lw=1, alpha=0.6, label="train (logged steps)")
    for column, label in (
        ("loss", "train (epoch mean)"),
        ("eval_test_loss", "test (end of epoch)"),
    ):
        epoch_steps, values = _columns(run / EPOCH_LOG_NAME, "step", column)
        if epoch_steps:
            ax.plot(epoch_steps, values, marker="o", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("negative ELBO (nats per image)")
    ax.set_ylim(top=min(max(losses), 2 * min(losses) + 50))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return Path(path)


def save_mnist_run_pictures(
    run_dir: PathType, data: PathType | None = None, device: str = "auto"
) -> list[Path]:
    """``reconstructions.png``, ``samples.png``, ``loss_curves.png`` and, for a 2-D latent,
    ``latent_scatter.png`` of a train-mnist run, into its folder; its test split or ``data``'s."""
    from mapenc.experiments import mnist

    folder = Path(run_dir)
    experiment, model = mnist.load_run(folder, device)
    test_set = mnist.test_split(experiment, data)
    paths = [
        save_reconstructions(model, test_set, folder / "reconstructions.png"),
        save_samples(model, folder / "samples.png"),
        save_loss_curves(folder, folder / "loss_curves.png"),
    ]
    if model.latent_dim == 2:
        paths.append(save_latent_scatter(model, test_set, folder / "latent_scatter.png"))
    return paths
