"""Forecasting metrics with the Argoverse 2 definitions, plus the off-road rate.

Definitions (as in the AV2 motion-forecasting evaluation, ``av2.datasets.motion_forecasting.eval``):
for one agent with K forecasts ``pred`` (K, T, 2) and the truth ``gt`` (T, 2), per mode k
``ADE_k = mean_t |pred[k, t] - gt[t]|`` and ``FDE_k = |pred[k, T-1] - gt[T-1]|`` (metres).
The *best* mode is ``k* = argmin_k FDE_k`` (smallest endpoint error), and

- ``minFDE_K = FDE_{k*}``;
- ``minADE_K = ADE_{k*}``: the ADE of the endpoint-best mode, not the smallest ADE over modes;
- miss: ``FDE_{k*} > 2.0 m``; the miss rate is the share of agents missed;
- ``brier-minFDE_K = FDE_{k*} + (1 - p_{k*})**2`` with ``p`` the forecast probabilities;
- off-road rate: the share of predicted points (all agents, modes and steps) outside the
  drivable area, tested in the city frame with shapely's vectorised ``contains_xy``.

Every function takes a batch: ``pred`` (N, K, T, 2), ``gt`` (N, T, 2), in any one metric frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry.base import BaseGeometry

from mapenc.errors import DataError

MISS_THRESHOLD_M = 2.0

FloatArray = NDArray[np.float64]


def _check_forecasts(pred: ArrayLike, gt: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``pred`` (N, K, T, 2) and ``gt`` (N, T, 2) as float64; DataError when they do not fit."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.ndim != 4 or p.shape[-1] != 2 or p.shape[1] < 1:
        raise DataError(f"forecasts must have shape (N, K, T, 2), got {p.shape}")
    if g.shape != (p.shape[0], p.shape[2], 2):
        raise DataError(
            f"ground truth must have shape (N, T, 2) = {(p.shape[0], p.shape[2], 2)}, got {g.shape}"
        )
    if p.shape[0] == 0:
        raise DataError("no forecasts to score (N = 0)")
    return p, g


def displacement_errors(pred: ArrayLike, gt: ArrayLike) -> FloatArray:
    """Per point errors ``|pred - gt|``: (N, K, T) metres."""
    p, g = _check_forecasts(pred, gt)
    errors: FloatArray = np.linalg.norm(p - g[:, None], axis=-1)
    return errors


def best_mode(pred: ArrayLike, gt: ArrayLike) -> NDArray[np.intp]:
    """(N,) index of the mode with the smallest final displacement error (AV2's "best")."""
    fde = displacement_errors(pred, gt)[:, :, -1]
    return np.argmin(fde, axis=1)


@dataclass(frozen=True)
class ForecastScores:
    """Mean scores over N agents (metres, except the rates which are in [0, 1]).

    Attributes:
        n: number of agents scored.
        k: forecasts per agent.
        min_ade, min_fde: minADE_K / minFDE_K (AV2: both of the endpoint-best mode).
        miss_rate: share of agents whose best final error exceeds 2.0 m.
        brier_min_fde: brier-minFDE_K, or None when no probabilities were given.
    """

    n: int
    k: int
    min_ade: float
    min_fde: float
    miss_rate: float
    brier_min_fde: float | None = None


def score_forecasts(
    pred: ArrayLike, gt: ArrayLike, probabilities: ArrayLike | None = None
) -> ForecastScores:
    """minADE_K, minFDE_K, miss rate and (with ``probabilities`` (N, K)) brier-minFDE_K.

    Args:
        pred: (N, K, T, 2) forecasts.
        gt: (N, T, 2) ground truth, same frame and steps.
        probabilities: (N, K) forecast probabilities (each row summing to 1), optional.
    """
    errors = displacement_errors(pred, gt)
    n, k = errors.shape[:2]
    rows = np.arange(n)
    best = np.argmin(errors[:, :, -1], axis=1)
    fde_best = errors[rows, best, -1]
    ade_best = errors[rows, best].mean(axis=1)
    brier = None
    if probabilities is not None:
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (n, k):
            raise DataError(f"probabilities must have shape (N, K) = {(n, k)}, got {probs.shape}")
        brier = float(np.mean(fde_best + (1.0 - probs[rows, best]) ** 2))
    return ForecastScores(
        n=n,
        k=k,
        min_ade=float(ade_best.mean()),
        min_fde=float(fde_best.mean()),
        miss_rate=float(np.mean(fde_best > MISS_THRESHOLD_M)),
        brier_min_fde=brier,
    )


def offroad_mask(points_city: ArrayLike, drivable_area: BaseGeometry) -> NDArray[np.bool_]:
    """True for each point (..., 2), city frame, that lies outside ``drivable_area``."""
    pts = np.asarray(points_city, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise DataError(f"points must end in an (x, y) axis, got shape {pts.shape}")
    inside = shapely.contains_xy(drivable_area, pts[..., 0], pts[..., 1])
    return ~np.asarray(inside, dtype=bool)


def offroad_rate(points_city: ArrayLike, drivable_area: BaseGeometry) -> float:
    """Share of the points (..., 2), city frame, outside the drivable area; DataError if none."""
    mask = offroad_mask(points_city, drivable_area)
    if mask.size == 0:
        raise DataError("no points to test for off-road")
    return float(mask.mean())
