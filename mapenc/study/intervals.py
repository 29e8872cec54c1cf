"""Bootstrap intervals of a study's means over whole scenes and over seeds.

A method scored on N test samples by S training seeds gives ``values`` (S, N); ``scenes`` (N,)
names each sample's scene. Every bootstrap draw resamples the scenes (as many as there are, with
replacement; a drawn scene brings all its samples) and, independently, the seeds (S of them, with
replacement), and takes the mean over the drawn seeds of the sample-weighted mean over the drawn
scenes — the point estimate's formula on the resampled data. The 2.5th and 97.5th percentiles of
the draws give the 95 % interval. So the interval holds both sources of doubt a reader has: which
scenes happened to be in test, and which seeds the training drew.

A paired difference (``encoder - none``) resamples the same scenes and seeds for both: pass the
(S, N) difference of the two methods' values, paired seed by seed.

Where only one number per seed exists (the MNIST study's test loss on a fixed set of images),
``seed_mean`` and ``seed_difference`` give Student-t intervals over the seeds instead (Welch's for
a difference: different encoders' runs are not paired).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from mapenc.errors import DataError

BOOTSTRAP_DRAWS = 2000


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap 95 % interval (``low``, ``high``), over ``scenes`` and ``seeds``."""

    mean: float
    low: float
    high: float
    scenes: int
    seeds: int

    @property
    def includes_zero(self) -> bool:
        """True when the interval does not exclude 0 (for a difference: no shown effect)."""
        return self.low <= 0.0 <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": round(self.mean, 4),
            "ci95": [round(self.low, 4), round(self.high, 4)],
            "scenes": self.scenes,
            "seeds": self.seeds,
        }


def bootstrap_mean(
    values: ArrayLike,
    scenes: ArrayLike,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> Interval:
    """Mean of ``values`` (S, N) (or (N,) for one seed) and its 95 % interval over scenes and seeds.

    ``scenes`` (N,) labels each sample's scene (any hashable values numpy can sort).
    Raises DataError when the shapes do not match or there is nothing to resample.
    """
    table, estimates, groups = _bootstrap_estimates(values, scenes, draws, seed)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return Interval(float(table.mean()), float(low), float(high), groups, table.shape[0])


def bootstrap_p_value(
    values: ArrayLike, scenes: ArrayLike, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> float:
    """Two-sided bootstrap p-value of "the mean of ``values`` (S, N) is 0" over scenes and seeds:
    twice the smaller share of draws on either side of 0, at least ``1 / draws`` (the
    resolution), at most 1. A 95 % interval of ``bootstrap_mean`` excludes 0 when this is
    below 0.05 (the same draws)."""
    _, estimates, _ = _bootstrap_estimates(values, scenes, draws, seed)
    side = min(float((estimates <= 0.0).mean()), float((estimates >= 0.0).mean()))
    return min(1.0, max(2.0 * side, 1.0 / draws))


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error): sorted ascending, the i-th of m
    is ``max_{j <= i} min(1, (m - j + 1) p_(j))``; returned in the input order. A test is
    significant at family-wise level alpha when its adjusted value is below alpha."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _bootstrap_estimates(
    values: ArrayLike, scenes: ArrayLike, draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The (S, N) table, the ``draws`` bootstrap estimates of its mean (scenes and seeds
    resampled, see the module docstring) and the number of scenes; DataError on bad input."""
    table = np.asarray(values, dtype=np.float64)
    table = table[None] if table.ndim == 1 else table
    labels = np.asarray(scenes)
    if table.ndim != 2 or labels.shape != (table.shape[1],) or table.size == 0:
        raise DataError(
            f"bootstrap needs values (S, N) and scenes (N,), got {table.shape} and {labels.shape}"
        )
    if not np.isfinite(table).all():
        raise DataError("bootstrap values hold NaN or inf")
    names, scene_of = np.unique(labels, return_inverse=True)
    seeds, groups = table.shape[0], len(names)
    # (S, G) sums per seed and scene, (G,) samples per scene.
    sums = np.stack([np.bincount(scene_of, weights=row, minlength=groups) for row in table])
    counts = np.bincount(scene_of, minlength=groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    weights = np.zeros((draws, groups))
    np.add.at(weights, (np.arange(draws)[:, None], rng.integers(0, groups, (draws, groups))), 1.0)
    drawn_seeds = rng.integers(0, seeds, (draws, seeds))
    per_seed = (weights @ sums.T) / (weights @ counts)[:, None]  # (draws, S)
    estimates = np.take_along_axis(per_seed, drawn_seeds, axis=1).mean(axis=1)
    return table, estimates, groups


def paired_difference(
    first: ArrayLike, second: ArrayLike, scenes: ArrayLike, seed: int = 0
) -> Interval:
    """``first - second`` (each (S, N) or (N,); a single row is paired with every seed of the
    other) with its interval over the same resampled scenes and seeds."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    a, b = (a[None] if a.ndim == 1 else a), (b[None] if b.ndim == 1 else b)
    if a.shape[1:] != b.shape[1:] or (len(a) != len(b) and 1 not in (len(a), len(b))):
        raise DataError(f"paired difference of values {a.shape} and {b.shape}: seeds or N differ")
    return bootstrap_mean(a - b, scenes, seed=seed)


def _seed_values(values: ArrayLike) -> np.ndarray:
    """Finite per-seed values as a float64 vector of at least two seeds, else DataError."""
    table = np.asarray(values, dtype=np.float64).ravel()
    if len(table) < 2 or not np.isfinite(table).all():
        raise DataError(f"an interval over seeds needs two or more finite values, got {table}")
    return table


def seed_mean(values: ArrayLike) -> Interval:
    """Mean of one value per seed (S >= 2) and its Student-t 95 % interval (S - 1 degrees)."""
    table = _seed_values(values)
    half = stats.t.ppf(0.975, len(table) - 1) * table.std(ddof=1) / np.sqrt(len(table))
    mean = float(table.mean())
    return Interval(mean, mean - half, mean + half, 0, len(table))


def seed_difference(first: ArrayLike, second: ArrayLike) -> Interval:
    """``mean(first) - mean(second)`` over their seeds with Welch's 95 % interval (unpaired, the
    two variances not assumed equal; Welch-Satterthwaite degrees of freedom)."""
    a, b = _seed_values(first), _seed_values(second)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    spread = np.sqrt(va + vb)
    mean = float(a.mean() - b.mean())
    if spread == 0.0:
        return Interval(mean, mean, mean, 0, min(len(a), len(b)))
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, dof) * spread)
    return Interval(mean, mean - half, mean + half, 0, min(len(a), len(b)))


def seed_interval_entries(
    rows: Sequence[dict[str, Any]], metrics: Sequence[str], references: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per encoder of study ``rows`` (one per run): each metric's ``seed_mean`` and, for each of
    the ``references`` but itself, its ``seed_difference`` to it under ``minus_<reference>`` (the
    shape of ``mapenc.study.traj_scores.interval_entries``)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        runs.setdefault(row["encoder"], []).append(row)

    def values(name: str, metric: str) -> list[float]:
        return [float(row[metric]) for row in runs[name]]

    out: dict[str, dict[str, Any]] = {}
    for name, members in runs.items():
        if len(members) < 2:
            continue
        entry: dict[str, Any] = {
            "seeds": len(members),
            "metrics": {m: seed_mean(values(name, m)).to_dict() for m in metrics},
        }
        for reference in references:
            if name != reference and len(runs.get(reference, [])) >= 2:
                entry[f"minus_{reference}"] = {
                    m: seed_difference(values(name, m), values(reference, m)).to_dict()
                    for m in metrics
                }
        out[name] = entry
    return out
