"""What a latent keeps: sensitivity to input transforms, active units, and a linear "where" probe.

Every probe takes ``encode``, a function from inputs ``[N, C, H, W]`` to latents ``[N, D]`` (the
MNIST VAE's posterior mean, or a map encoder's output), and a few hundred inputs. The caller puts
the network in eval mode; probes run under ``torch.no_grad``. A vector map encoder is probed the
same way (``probe_polyline_encoder``): each transform moves its polylines' points as it moves the
pixels of the same samples' rasters, and the "where" probe's targets are those rasters.

- ``sensitivity``: ``mean ||mu(T x) - mu(x)|| / mean ||mu(x) - mu(x')||`` with ``x'`` another
  sample. Near 0: the latent ignores ``T``; near 1: ``T`` moves it as far as a different input.
- ``active_units``: latent dimensions whose variance over the inputs exceeds a threshold
  (for a VAE posterior mean this is Burda et al.'s ``Cov_x E_q[z] > 0.01``).
- ``linear_probe_r2``: held-out R² of a ridge regression from the latent to the input averaged
  down to a coarse ``grid x grid`` map per channel. Near 1: the latent knows where the ink (or the
  road, relative to the agent) is; near 0: it does not, linearly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F

from mapenc.errors import ConfigError, DataError
from mapenc.geometry.se2 import apply_matrices
from mapenc.raster import RasterSpec

Encode = Callable[..., torch.Tensor]
Transform = Callable[[torch.Tensor], torch.Tensor]
# A vector encoder's inputs: points (N, P, K, 2) m in the agent frame, mask (N, P, K),
# types (N, P), past (N, H, 2) m, past_heading (N, H) rad (``mapenc.encoders.vector``).
PolylineInputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
EPS = 1e-12


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of ``probe_encoder``.

    Attributes:
        shift_px: the ``shift`` transform moves the input this many pixels right and down.
        rotate_deg: the ``rotate`` transform turns the input by this angle about its centre.
        grid: the linear probe's target is the input averaged to ``grid x grid`` per channel.
        ridge: ridge penalty on the standardised latent.
        train_fraction: share of the inputs the probe is fitted on; it is scored on the rest.
        threshold: variance above which a latent unit counts as active.
        batch_size: inputs encoded at a time.
        seed: draws the partner samples ``x'`` and the probe's train/test split.
    """

    shift_px: int = 3
    rotate_deg: float = 15.0
    grid: int = 4
    ridge: float = 1.0
    train_fraction: float = 0.7
    threshold: float = 0.01
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.shift_px < 1 or self.grid < 1 or self.batch_size < 1:
            raise ConfigError("ProbeConfig: shift_px, grid and batch_size must be >= 1")
        if not 0.0 < self.train_fraction < 1.0 or self.ridge < 0 or self.threshold < 0:
            raise ConfigError("ProbeConfig: train_fraction in (0, 1), ridge and threshold >= 0")


def shift(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """``[N, C, H, W]`` moved ``pixels`` right (+W) and down (+H); vacated pixels are 0."""
    out = torch.zeros_like(x)
    out[..., pixels:, pixels:] = x[..., : x.shape[-2] - pixels, : x.shape[-1] - pixels]
    return out


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """``[N, C, H, W]`` turned counter-clockwise (as displayed) by ``degrees`` about the centre;
    bilinear, zeros outside."""
    # affine_grid maps output to input coordinates (x right, y down, each scaled to [-1, 1]):
    # R(-angle) in a y-up pixel frame, conjugated by the scaling so a non-square input turns rigidly.
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    aspect = x.shape[-2] / x.shape[-1]  # H / W
    theta = torch.tensor(
        [[c, -s * aspect, 0.0], [s / aspect, c, 0.0]], dtype=x.dtype, device=x.device
    )
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate90(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` turned a quarter counter-clockwise; needs ``H == W``."""
    return torch.rot90(x, 1, dims=(-2, -1))


def flip(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` mirrored left to right (columns reversed)."""
    return torch.flip(x, dims=(-1,))


def point_transforms(config: ProbeConfig, spec: RasterSpec) -> dict[str, NDArray[np.float64]]:
    """``transforms`` as (3, 3) agent-frame matrices: each moves map points (metres) as its pixel
    twin moves the pixels of a raster drawn with ``spec`` (DESIGN.md's pixel convention: +x is
    right, +y up; the turns are about the raster's centre, the mirror about its middle column)."""
    h, w = spec.size_px
    size = spec.pixel_size_m
    centre_x = (0.5 - spec.agent_at[0]) * w * size
    centre_y = (spec.agent_at[1] - 0.5) * h * size

    def turn(degrees: float) -> NDArray[np.float64]:
        c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        shift_x = centre_x - (c * centre_x - s * centre_y)
        shift_y = centre_y - (s * centre_x + c * centre_y)
        return np.array([[c, -s, shift_x], [s, c, shift_y], [0.0, 0.0, 1.0]])

    moved = config.shift_px * size
    chosen = {
        "shift": np.array([[1.0, 0.0, moved], [0.0, 1.0, -moved], [0.0, 0.0, 1.0]]),
        "rotate": turn(config.rotate_deg),
        "flip": np.array([[-1.0, 0.0, 2 * centre_x], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
    }
    if h == w:
        chosen["rot90"] = turn(90.0)
    return chosen


def transforms(config: ProbeConfig, square: bool) -> dict[str, Transform]:
    """The probed transforms by name; ``rot90`` only for square inputs."""
    chosen: dict[str, Transform] = {
        "shift": lambda x: shift(x, config.shift_px),
        "rotate": lambda x: rotate(x, config.rotate_deg),
        "flip": flip,
    }
    if square:
        chosen["rot90"] = rotate90
    return chosen


@torch.no_grad()
def encode_all(
    encode: Encode, inputs: torch.Tensor | Sequence[torch.Tensor], batch_size: int
) -> torch.Tensor:
    """Latents ``[N, D]`` (float64, CPU) of ``inputs`` ``[N, C, H, W]`` (or of several tensors
    of N rows each, passed to ``encode`` together), ``batch_size`` rows at a time."""
    parts_of = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    n = len(parts_of[0])
    parts = [
        encode(*(part[i : i + batch_size] for part in parts_of)) for i in range(0, n, batch_size)
    ]
    latents = torch.cat(parts).double().cpu()
    if latents.ndim != 2 or len(latents) != n:
        raise DataError(f"encoder gave latents of shape {tuple(latents.shape)}, expected [N, D]")
    return latents


def sensitivity(
    latents: torch.Tensor, transformed: torch.Tensor, generator: torch.Generator
) -> float:
    """``mean ||mu(T x) - mu(x)|| / mean ||mu(x) - mu(x')||`` from latents ``[N, D]`` of ``x`` and
    of ``T x``; ``x'`` pairs each sample with another one (a random cycle). 0 when neither moves."""
    order = torch.randperm(len(latents), generator=generator)
    partner = torch.empty_like(order)
    partner[order] = order.roll(-1)
    change = float((transformed - latents).norm(dim=1).mean())
    between = float((latents[partner] - latents).norm(dim=1).mean())
    if between <= EPS:
        return 0.0 if change <= EPS else math.inf
    return change / between


def active_units(latents: torch.Tensor, threshold: float = 0.01) -> int:
    """Dimensions of latents ``[N, D]`` whose variance over the ``N`` samples exceeds ``threshold``."""
    return int((latents.var(dim=0, unbiased=False) > threshold).sum())


def coarse_targets(inputs: torch.Tensor, grid: int) -> torch.Tensor:
    """Inputs ``[N, C, H, W]`` averaged to ``[N, C * grid * grid]`` (float64): where things are."""
    return F.adaptive_avg_pool2d(inputs.double(), grid).flatten(start_dim=1).cpu()


def linear_probe_r2(
    latents: torch.Tensor,
    targets: torch.Tensor,
    ridge: float = 1.0,
    train_fraction: float = 0.7,
    generator: torch.Generator | None = None,
) -> float:
    """Held-out R² of ridge regression ``targets [N, T] ~ latents [N, D]``.

    The latent is standardised with the training part's statistics, a bias is fitted unpenalised,
    and R² pools every target: ``1 - SSE / SST`` with SST about the training mean. 1 means the
    targets are a linear function of the latent; 0 means no better than their mean.
    """
    n = len(latents)
    n_train = round(n * train_fraction)
    if n_train < 2 or n - n_train < 2:
        raise DataError(f"linear probe needs more samples than {n} (train {n_train})")
    order = torch.randperm(n, generator=generator)
    train, test = order[:n_train], order[n_train:]
    mean, std = latents[train].mean(0), latents[train].std(0).clamp_min(1e-8)
    z_train, z_test = (latents[train] - mean) / std, (latents[test] - mean) / std
    y_mean = targets[train].mean(0)
    gram = z_train.T @ z_train + ridge * torch.eye(z_train.shape[1], dtype=z_train.dtype)
    weights = torch.linalg.lstsq(gram, z_train.T @ (targets[train] - y_mean)).solution
    predicted = z_test @ weights + y_mean
    total = float(((targets[test] - y_mean) ** 2).sum())
    if total <= EPS:
        raise DataError("linear probe: the held-out targets do not vary")
    return 1.0 - float(((targets[test] - predicted) ** 2).sum()) / total


def probes_of_latents(
    latents: torch.Tensor,
    moved: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    config: ProbeConfig,
) -> dict[str, float]:
    """Every probe from the latents ``[N, D]`` of the inputs, those of each transform's moved
    inputs (by name) and the rasters ``inputs`` ``[N, C, H, W]`` the "where" targets come from."""
    generator = torch.Generator().manual_seed(config.seed)
    result: dict[str, float] = {
        f"sensitivity_{name}": sensitivity(latents, latents_moved, generator)
        for name, latents_moved in moved.items()
    }
    result["active_units"] = active_units(latents, config.threshold)
    result["latent_dims"] = latents.shape[1]
    result["where_r2"] = linear_probe_r2(
        latents,
        coarse_targets(inputs, config.grid),
        config.ridge,
        config.train_fraction,
        generator,
    )
    return result


def check_probe_rasters(inputs: torch.Tensor) -> None:
    """DataError unless ``inputs`` is ``[N >= 4, C, H, W]``."""
    if inputs.ndim != 4 or len(inputs) < 4:
        raise DataError(f"probes need inputs [N>=4, C, H, W], got {tuple(inputs.shape)}")


def probe_encoder(
    encode: Encode, inputs: torch.Tensor, config: ProbeConfig | None = None
) -> dict[str, float]:
    """Every probe on ``inputs`` ``[N, C, H, W]`` (on the encoder's device).

    Returns ``sensitivity_<transform>`` for ``shift``, ``rotate``, ``flip`` (and ``rot90`` for
    square inputs), ``active_units``, ``latent_dims`` and ``where_r2`` (the linear probe).
    """
    config = config or ProbeConfig()
    check_probe_rasters(inputs)
    latents = encode_all(encode, inputs, config.batch_size)
    moved = {
        name: encode_all(encode, transform(inputs), config.batch_size)
        for name, transform in transforms(config, inputs.shape[-1] == inputs.shape[-2]).items()
    }
    return probes_of_latents(latents, moved, inputs, config)


def probe_polyline_encoder(
    encode: Encode,
    polylines: PolylineInputs,
    rasters: torch.Tensor,
    spec: RasterSpec,
    config: ProbeConfig | None = None,
) -> dict[str, float]:
    """``probe_encoder``'s probes for a vector map encoder, comparable with a raster encoder's.

    ``polylines`` are N samples' encoder inputs (``PolylineInputs``) and ``rasters``
    ``[N, C, H, W]`` the same samples drawn with ``spec``. Each transform moves the map points as
    its pixel twin moves the raster (``point_transforms``); the agent's past stays, as it does
    under the raster transforms. Unlike pixels, points moved past the window's edge are kept.
    The "where" probe predicts the coarse rasters from the latent.
    """
    config = config or ProbeConfig()
    check_probe_rasters(rasters)
    points, *rest = polylines
    if len(points) != len(rasters):
        raise DataError(f"{len(points)} samples of polylines but {len(rasters)} rasters")
    latents = encode_all(encode, polylines, config.batch_size)
    moved = {}
    for name, matrix in point_transforms(config, spec).items():
        moved_points = torch.from_numpy(apply_matrices(matrix, points.cpu().numpy())).to(points)
        moved[name] = encode_all(encode, (moved_points, *rest), config.batch_size)
    return probes_of_latents(latents, moved, rasters, config)
