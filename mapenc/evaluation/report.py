"""Score forecasts beside the baselines, with bootstrap intervals over whole scenes and breakdowns.

``score_table`` scores one set of forecasts per sample (best mode by final error, AV2
definitions, ``mapenc.metrics``) and ``paired_bootstrap`` gives 95 % intervals of the difference
of two methods' means by resampling whole scenes (every sample of a drawn scene comes along, so
samples of one scene never count as independent). ``evaluation_report`` assembles the eval-traj
JSON, with every score broken down by location, agent kind, motion and the Waymo trajectory type
of the true future (``mapenc.evaluation.trajectory_types``); ``write_predictions`` the
``--predictions`` file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mapenc.data.split import location_of
from mapenc.data.trajectory import TrajSamples
from mapenc.evaluation.trajectory_types import (
    TRAJECTORY_TYPES,
    group_masks,
    sample_trajectory_types,
)
from mapenc.geometry import transform_points
from mapenc.maps.types import Scenario
from mapenc.metrics import MISS_THRESHOLD_M, displacement_errors, offroad_mask

FloatArray = NDArray[np.float64]
BOOTSTRAP_DRAWS = 2000
METRICS = ("minADE", "minFDE", "miss_rate", "offroad_rate")
# A sample whose current speed is below this (m/s) counts as standing in ``by_motion``: about half
# of NGSIM's test samples wait at lights, and they are nearly free to forecast.
STANDING_SPEED_MPS = 0.5


@dataclass(frozen=True)
class PerSample:
    """Per-sample scores of one method: (N,) arrays (metres; miss and off-road as 0/1 shares)."""

    min_ade: FloatArray
    min_fde: FloatArray
    miss: FloatArray
    offroad: FloatArray

    def column(self, metric: str) -> FloatArray:
        """The (N,) values behind ``metric`` (one of ``METRICS``)."""
        return {
            "minADE": self.min_ade,
            "minFDE": self.min_fde,
            "miss_rate": self.miss,
            "offroad_rate": self.offroad,
        }[metric]

    def subset(self, rows: NDArray[np.bool_]) -> PerSample:
        """The scores of the samples where ``rows`` (N,) is True."""
        return PerSample(
            self.min_ade[rows], self.min_fde[rows], self.miss[rows], self.offroad[rows]
        )

    @classmethod
    def concat(cls, parts: Sequence[PerSample]) -> PerSample:
        """The scores of ``parts`` (at least one), one after another."""
        return cls(
            np.concatenate([p.min_ade for p in parts]),
            np.concatenate([p.min_fde for p in parts]),
            np.concatenate([p.miss for p in parts]),
            np.concatenate([p.offroad for p in parts]),
        )

    def means(self, rows: NDArray[np.bool_] | None = None) -> dict[str, float]:
        """Mean of every metric over ``rows`` (default all), rounded to 4 decimals."""
        pick = slice(None) if rows is None else rows
        return {m: round(float(np.mean(self.column(m)[pick])), 4) for m in METRICS}


def offroad_share(
    forecasts: FloatArray, samples: TrajSamples, scenarios: Sequence[Scenario]
) -> FloatArray:
    """(N,) share of each sample's forecast points (N, K, F, 2), agent frame, off the drivable area."""
    city = transform_points(samples.pose, forecasts)
    share = np.zeros(len(samples))
    for index in np.unique(samples.scenario_index):
        rows = samples.scenario_index == index
        outside = offroad_mask(city[rows], scenarios[int(index)].map.area)
        share[rows] = outside.reshape(int(rows.sum()), -1).mean(axis=1)
    return share


def score_per_sample(
    forecasts: FloatArray, samples: TrajSamples, scenarios: Sequence[Scenario]
) -> PerSample:
    """Per-sample minADE/minFDE (endpoint-best mode), miss and off-road share."""
    errors = displacement_errors(forecasts, samples.future.astype(np.float64))
    rows = np.arange(len(errors))
    best = np.argmin(errors[:, :, -1], axis=1)
    fde = errors[rows, best, -1]
    return PerSample(
        min_ade=errors[rows, best].mean(axis=1),
        min_fde=fde,
        miss=(fde > MISS_THRESHOLD_M).astype(np.float64),
        offroad=offroad_share(forecasts, samples, scenarios),
    )


class SceneResampling:
    """The bootstrap draws over the scenes of N samples, made once and shared by every
    difference taken on those samples (each draw picks as many scenes as there are, with
    replacement; a drawn scene brings all its samples).

    Args:
        scenes: (N,) scene label of each sample.
        seed: seed of the draws (the same seed gives the same draws).
    """

    def __init__(self, scenes: NDArray[np.int64], seed: int = 0) -> None:
        labels, self.scene_of = np.unique(scenes, return_inverse=True)
        self.scenes = len(labels)
        draws = np.random.default_rng(seed).integers(0, self.scenes, (BOOTSTRAP_DRAWS, self.scenes))
        # (draws, scenes): how often each draw takes each scene (one bincount over all draws).
        flat = (np.arange(BOOTSTRAP_DRAWS)[:, None] * self.scenes + draws).ravel()
        self.weights = np.bincount(flat, minlength=draws.size).reshape(draws.shape).astype(float)
        self.drawn_samples = self.weights @ np.bincount(self.scene_of, minlength=self.scenes)

    def difference(self, first: FloatArray, second: FloatArray) -> dict[str, Any]:
        """Mean of ``first - second`` (N,) and its 95 % interval: per draw, the mean difference
        over all samples of the drawn scenes (sample-weighted, like the point estimate)."""
        diff = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
        sums = np.bincount(self.scene_of, weights=diff, minlength=self.scenes)
        means = (self.weights @ sums) / np.maximum(self.drawn_samples, 1.0)
        low, high = np.percentile(means, [2.5, 97.5])
        return {
            "mean": round(float(diff.mean()), 4),
            "ci95": [round(float(low), 4), round(float(high), 4)],
            "scenes": self.scenes,
        }


def paired_bootstrap(
    first: FloatArray, second: FloatArray, scenes: NDArray[np.int64], seed: int = 0
) -> dict[str, Any]:
    """Mean of ``first - second`` (N,) and its 95 % interval, resampling whole scenes
    (``SceneResampling``)."""
    return SceneResampling(scenes, seed).difference(first, second)


def compare(
    first: PerSample,
    second: PerSample,
    scenes: NDArray[np.int64],
    seed: int = 0,
    resampling: SceneResampling | None = None,
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap of ``first - second`` for minADE, minFDE and miss rate (over
    ``resampling``'s draws when given, which must be those of ``scenes``)."""
    draws = resampling or SceneResampling(scenes, seed)
    return {
        m: draws.difference(first.column(m), second.column(m))
        for m in ("minADE", "minFDE", "miss_rate")
    }


def breakdown(methods: Mapping[str, PerSample], groups: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every method's means per group label (N,), with the group's sample count."""
    labels = np.asarray(groups)
    out: dict[str, dict[str, Any]] = {}
    for label in sorted(set(groups)):
        rows = labels == label
        out[label or "(none)"] = {"n": int(rows.sum())} | {
            name: scores.means(rows) for name, scores in methods.items()
        }
    return out


def motion_labels(velocity: NDArray[np.floating]) -> list[str]:
    """``"standing"`` or ``"moving"`` per sample from its current velocity (N, 2) m/s."""
    speed = np.linalg.norm(np.asarray(velocity, dtype=np.float64), axis=-1)
    return ["standing" if s < STANDING_SPEED_MPS else "moving" for s in speed]


def scores_and_differences(
    model: PerSample,
    baselines: Mapping[str, PerSample],
    scenes: NDArray[np.int64],
    *,
    versus: PerSample | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every method's means and the model's paired differences, samples of ``scenes`` (N,).

    ``{"model": means, "baselines": {name: means}, "model_minus_baseline": {name: bootstrap},
    "versus": means, "model_minus_versus": bootstrap}`` (the last two only with ``versus``).
    """
    draws = SceneResampling(scenes, seed)
    section: dict[str, Any] = {
        "model": model.means(),
        "baselines": {name: scores.means() for name, scores in baselines.items()},
        "model_minus_baseline": {
            name: compare(model, scores, scenes, resampling=draws)
            for name, scores in baselines.items()
        },
    }
    if versus is not None:
        section["versus"] = versus.means()
        section["model_minus_versus"] = compare(model, versus, scenes, resampling=draws)
    return section


def by_trajectory_type(
    model: PerSample,
    baselines: Mapping[str, PerSample],
    scenes: NDArray[np.int64],
    types: Sequence[str] | NDArray[np.str_],
    *,
    versus: PerSample | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """``scores_and_differences`` within every group of ``TYPE_GROUPS`` (``moving``,
    ``turning``, then the eight Waymo types) of the samples' true trajectory types (N,),
    each with its sample count ``n`` and ``scenes``; a group without samples has only
    ``{"n": 0, "scenes": 0}``."""
    return {
        group: scores_within(model, baselines, scenes, rows, versus=versus, seed=seed)
        for group, rows in group_masks(types).items()
    }


def scores_within(
    model: PerSample,
    baselines: Mapping[str, PerSample],
    scenes: NDArray[np.int64],
    rows: NDArray[np.bool_],
    *,
    versus: PerSample | None = None,
    types: NDArray[np.str_] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The samples where ``rows`` (N,) is True: their count ``n``, their ``scenes`` and, when
    there are any, ``scores_and_differences``; with ``types`` (N,), also their
    ``by_trajectory_type``."""
    entry: dict[str, Any] = {"n": int(rows.sum()), "scenes": len(np.unique(scenes[rows]))}
    if not rows.any():
        return entry
    mine = model.subset(rows)
    theirs = {name: scores.subset(rows) for name, scores in baselines.items()}
    other = None if versus is None else versus.subset(rows)
    entry |= scores_and_differences(mine, theirs, scenes[rows], versus=other, seed=seed)
    if types is not None:
        entry["by_trajectory_type"] = by_trajectory_type(
            mine, theirs, scenes[rows], types[rows], versus=other, seed=seed
        )
    return entry


# The baseline beside which ``format_by_type`` prints the model: the kinematic modes (the
# strongest training-free forecast on standing agents, and the one targets are set against).
TABLE_BASELINE = "kinematic"


def format_by_type(report: Mapping[str, Any], metric: str = "minFDE") -> str:
    """Aligned text table of ``metric`` from an eval-traj report: all agents, then ``moving``,
    ``turning`` and every type with samples; per row ``n``, the model's mean, the kinematic
    baseline's, their difference [95 % interval] and, with a versus run, its mean and the
    difference to it."""
    versus = "versus" in report
    header = ["agents", "n", "model", TABLE_BASELINE, f"model - {TABLE_BASELINE}"]
    header += ["versus", "model - versus"] if versus else []
    total = sum(report["by_trajectory_type"][t]["n"] for t in TRAJECTORY_TYPES)
    rows = [("all", {"n": total, **report})]
    rows += [(group, entry) for group, entry in report["by_trajectory_type"].items() if entry["n"]]
    lines = [header]
    for name, entry in rows:
        line = [name, str(entry["n"]), f"{entry['model'][metric]:.3f}"]
        line.append(f"{entry['baselines'][TABLE_BASELINE][metric]:.3f}")
        line.append(_interval_text(entry["model_minus_baseline"][TABLE_BASELINE][metric]))
        if versus:
            line += [
                f"{entry['versus'][metric]:.3f}",
                _interval_text(entry["model_minus_versus"][metric]),
            ]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    # Names left, numbers right.
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def _interval_text(interval: Mapping[str, Any]) -> str:
    low, high = interval["ci95"]
    return f"{interval['mean']:+.3f} [{low:+.3f}, {high:+.3f}]"


def evaluation_report(
    model: PerSample,
    baselines: Mapping[str, PerSample],
    samples: TrajSamples,
    scene_names: Sequence[str],
    *,
    dt: float,
    versus: PerSample | None = None,
    scene_sources: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The scores part of the eval-traj JSON; ``dt`` is the samples' seconds per step.

    ``scores_and_differences`` over all samples, then ``"by_location"``, ``"by_kind"``,
    ``"by_motion"`` (standing below ``STANDING_SPEED_MPS``, or moving: every method's means) and
    ``"by_trajectory_type"`` (``by_trajectory_type`` of the true futures' Waymo types). With
    ``scene_sources`` (the data set of each scene), ``"by_source"`` holds, per data set, its
    own ``scores_and_differences`` and ``by_trajectory_type`` with ``n`` and ``scenes``.
    """
    scenes = samples.scenario_index
    report = scores_and_differences(model, baselines, scenes, versus=versus, seed=seed)
    methods = {"model": model, **baselines}
    if versus is not None:
        methods["versus"] = versus
    locations = [location_of(scene_names[int(i)]) for i in scenes]
    report["by_location"] = breakdown(methods, locations)
    report["by_kind"] = breakdown(methods, list(samples.kinds))
    report["by_motion"] = breakdown(methods, motion_labels(samples.velocity))
    types = np.asarray(sample_trajectory_types(samples, dt))
    report["by_trajectory_type"] = by_trajectory_type(
        model, baselines, scenes, types, versus=versus, seed=seed
    )
    if scene_sources is not None:
        sources = np.array([scene_sources[int(i)] for i in scenes])
        report["by_source"] = {
            source: scores_within(
                model, baselines, scenes, sources == source, versus=versus, types=types, seed=seed
            )
            for source in sorted(set(sources.tolist()))
        }
    return report


def write_predictions(
    path: str | os.PathLike[str],
    forecasts: FloatArray,
    probabilities: FloatArray,
    samples: TrajSamples,
    scene_names: Sequence[str],
    scene_first_steps: Sequence[int] | None = None,
) -> None:
    """Save forecasts for rescoring: ``scene`` (N,) str, ``track_id`` (N,) str, ``t_obs`` (N,)
    int (the last observed step, in the file's own numbering: plus each scene's
    ``scene_first_steps``, e.g. an INTERACTION ``frame_id``), ``pred`` (N, K, T, 2) metres in
    the source file's frame, ``prob`` (N, K)."""
    first = np.zeros(len(scene_names), dtype=np.int64)
    if scene_first_steps is not None:
        first = np.asarray(scene_first_steps, dtype=np.int64)
    np.savez_compressed(
        path,
        scene=np.array([scene_names[int(i)] for i in samples.scenario_index], dtype=str),
        track_id=np.array(samples.track_ids, dtype=str),
        t_obs=samples.time_step.astype(np.int64) + first[samples.scenario_index],
        pred=transform_points(samples.pose, forecasts),
        prob=np.asarray(probabilities, dtype=np.float64),
    )
