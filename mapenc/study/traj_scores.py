"""Per-sample scores of the trajectory study: every run and every baseline on the same test
samples, and the intervals of ``summary.json`` built from them.

A run's scores are saved beside it as ``per_sample.npz`` (``scene`` (N,) str, the scene each
sample comes from, ``trajectory_type`` (N,) str, the Waymo Open Dataset type of its true future
(``mapenc.evaluation.trajectory_types``), and one (N,) float array per metric of ``METRICS``), so
the intervals can be rebuilt, or redrawn another way or per type, without scoring again. The scores are those of
``mapenc.evaluation.report.score_per_sample`` (best mode by final error, AV2 definitions):
``minADE``, ``minFDE`` (metres), ``miss_rate`` (0/1 per sample) and ``offroad_rate`` (the share
of the sample's K x F forecast points off the drivable area).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mapenc.errors import DataError
from mapenc.evaluation.report import METRICS, PerSample
from mapenc.evaluation.trajectory_types import group_masks
from mapenc.safeio import write_atomic
from mapenc.study.intervals import (
    bootstrap_mean,
    bootstrap_p_value,
    holm_adjusted,
    paired_difference,
)

PER_SAMPLE_NAME = "per_sample.npz"
# The scored samples' identities, once per study (every run scores the same samples in the same
# order), prefixed with the scored split: ``test_samples.npz``.
SAMPLES_NAME = "samples.npz"
TYPE_KEY = "trajectory_type"
# The family of tests corrected for multiple comparisons: every encoder's minFDE difference to
# each reference (each pair once), over all, moving and turning agents, at family-wise error 5 %.
FAMILY_METRIC = "minFDE"
FAMILY_GROUPS = ("all", "moving", "turning")
FAMILY_ALPHA = 0.05
# Draws of the family's p-values: Holm's smallest threshold is 0.05 / m, so 1 / draws (the
# resolution of a bootstrap p-value) must lie well below it.
FAMILY_DRAWS = 20_000
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SampleScores:
    """One method's scores on N test samples.

    Attributes:
        scenes: (N,) str, the scene of each sample.
        values: metric name (``METRICS``) -> (N,) float64.
        types: (N,) str, the trajectory type of each sample's true future; None in files
            written before types were saved.
    """

    scenes: NDArray[np.str_]
    values: dict[str, FloatArray]
    types: NDArray[np.str_] | None = None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``scene``, the types and the metric arrays to an ``.npz`` file."""
        arrays: dict[str, Any] = {"scene": self.scenes, **self.values}
        if self.types is not None:
            arrays[TYPE_KEY] = self.types
        write_atomic(path, lambda handle: np.savez_compressed(handle, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SampleScores:
        """Read what ``save`` wrote; DataError naming the file when it is damaged or a metric is
        missing."""
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [m for m in ("scene", *METRICS) if m not in data.files]
                if missing:
                    raise DataError(f"{path}: no {', '.join(missing)} in the per-sample scores")
                types = data[TYPE_KEY] if TYPE_KEY in data.files else None
                return cls(data["scene"], {m: data[m].astype(np.float64) for m in METRICS}, types)
        except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as err:
            raise DataError(f"{path}: not a readable .npz file ({err})") from None

    def subset(self, rows: NDArray[np.bool_]) -> SampleScores:
        """The scores of the samples where ``rows`` (N,) is True."""
        return SampleScores(
            self.scenes[rows],
            {m: v[rows] for m, v in self.values.items()},
            None if self.types is None else self.types[rows],
        )


def sample_scores(
    scored: PerSample, scene_of_sample: Sequence[str], types: Sequence[str] | NDArray[np.str_]
) -> SampleScores:
    """``mapenc.evaluation.report.score_per_sample``'s scores with each sample's scene and
    trajectory type (``mapenc.evaluation.trajectory_types.sample_trajectory_types``)."""
    return SampleScores(
        scenes=np.asarray(scene_of_sample, dtype=str),
        values={m: np.asarray(scored.column(m), dtype=np.float64) for m in METRICS},
        types=np.asarray(types, dtype=str),
    )


def _table(scores: Sequence[SampleScores], metric: str) -> FloatArray:
    """(S, N) values of ``metric`` over seeds; DataError unless every run scored the same samples."""
    first = scores[0].scenes
    if any(s.scenes.shape != first.shape or (s.scenes != first).any() for s in scores[1:]):
        raise DataError("the runs of one study scored different test samples; rerun the study")
    return np.stack([s.values[metric] for s in scores])


def interval_entries(
    runs: Mapping[str, Sequence[SampleScores]],
    baselines: Mapping[str, SampleScores],
    references: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Per method (encoders, then baselines): every metric's mean and 95 % interval over scenes
    and seeds, and the paired difference to each of the ``references`` among the runs.

    Returns ``{name: {"seeds": S, "metrics": {metric: interval}, "minus_<reference>": {...}}}``
    with intervals as ``mapenc.study.intervals.Interval.to_dict()``.
    """
    methods: dict[str, Sequence[SampleScores]] = {
        **runs,
        **{name: [s] for name, s in baselines.items()},
    }
    every = [s for scores in methods.values() for s in scores]
    if not every:
        return {}
    _table(every, METRICS[0])  # one sample set for all
    scenes = every[0].scenes
    out: dict[str, dict[str, Any]] = {}
    for name, scores in methods.items():
        entry: dict[str, Any] = {
            "seeds": len(scores) if name in runs else 0,
            "metrics": {m: bootstrap_mean(_table(scores, m), scenes).to_dict() for m in METRICS},
        }
        for reference in references:
            if reference in runs and name != reference:
                entry[f"minus_{reference}"] = {
                    m: paired_difference(
                        _table(scores, m), _table(runs[reference], m), scenes
                    ).to_dict()
                    for m in METRICS
                }
        out[name] = entry
    return out


def interval_entries_by_type(
    runs: Mapping[str, Sequence[SampleScores]],
    baselines: Mapping[str, SampleScores],
    references: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """``interval_entries`` within every group of ``TYPE_GROUPS`` (``moving``, ``turning``, the
    eight Waymo types): ``{group: {"n": samples, "scenes": scenes, "intervals": {...}}}``, a
    group without samples as ``{"n": 0, "scenes": 0}``.

    Raises DataError when a method's scores hold no trajectory types or the methods disagree on
    them (they scored different samples).
    """
    every = [s for scores in runs.values() for s in scores] + list(baselines.values())
    if not every:
        return {}
    types = every[0].types
    if types is None or any(s.types is None or not np.array_equal(s.types, types) for s in every):
        raise DataError("the per-sample scores of the study hold no or different trajectory types")
    return interval_entries_by_group(runs, baselines, references, group_masks(types))


def interval_entries_by_source(
    runs: Mapping[str, Sequence[SampleScores]],
    baselines: Mapping[str, SampleScores],
    references: Sequence[str],
    source_of_sample: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Per data set of ``source_of_sample`` (N,): ``interval_entries`` of its samples, and under
    ``by_trajectory_type`` the same within every trajectory-type group of that data set."""
    sources = np.asarray(source_of_sample, dtype=str)
    masks = {name: sources == name for name in sorted(set(sources.tolist()))}
    out = interval_entries_by_group(runs, baselines, references, masks)
    for name, rows in masks.items():
        out[name]["by_trajectory_type"] = interval_entries_by_type(
            {method: [s.subset(rows) for s in scores] for method, scores in runs.items()},
            {method: s.subset(rows) for method, s in baselines.items()},
            references,
        )
    return out


def interval_entries_by_group(
    runs: Mapping[str, Sequence[SampleScores]],
    baselines: Mapping[str, SampleScores],
    references: Sequence[str],
    masks: Mapping[str, NDArray[np.bool_]],
) -> dict[str, dict[str, Any]]:
    """``interval_entries`` within every group of samples ``masks`` (name -> (N,) bool):
    ``{group: {"n": samples, "scenes": scenes, "intervals": {...}}}``, an empty group as
    ``{"n": 0, "scenes": 0}``."""
    every = [s for scores in runs.values() for s in scores] + list(baselines.values())
    if not every:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for group, rows in masks.items():
        entry: dict[str, Any] = {
            "n": int(rows.sum()),
            "scenes": len(np.unique(every[0].scenes[rows])),
        }
        if rows.any():
            entry["intervals"] = interval_entries(
                {name: [s.subset(rows) for s in scores] for name, scores in runs.items()},
                {name: s.subset(rows) for name, s in baselines.items()},
                references,
            )
        out[group] = entry
    return out


def corrected_differences(
    runs: Mapping[str, Sequence[SampleScores]],
    references: Sequence[str],
    draws: int = FAMILY_DRAWS,
) -> dict[str, Any]:
    """The study's family of paired minFDE differences (``FAMILY_GROUPS`` x each encoder and
    reference, each unordered pair once) with two-sided bootstrap p-values over scenes and
    seeds and Holm-adjusted ones: ``{"method", "metric", "alpha", "draws", "comparisons": [
    {"group", "encoder", "reference", "n", "mean", "p", "p_holm", "shown"}]}``, ``shown`` when
    the adjusted p-value is below ``FAMILY_ALPHA``. Raises DataError without trajectory types."""
    every = [s for scores in runs.values() for s in scores]
    if not every:
        return {}
    types = every[0].types
    if types is None:
        raise DataError("the per-sample scores of the study hold no trajectory types")
    masks = {"all": np.ones(len(types), dtype=bool), **group_masks(types)}
    comparisons: list[dict[str, Any]] = []
    done: set[frozenset[str]] = set()
    for reference in references:
        for name in runs:
            pair = frozenset((name, reference))
            if reference not in runs or name == reference or pair in done:
                continue
            done.add(pair)
            for group in FAMILY_GROUPS:
                rows = masks[group]
                if not rows.any():
                    continue
                difference = _table([s.subset(rows) for s in runs[name]], FAMILY_METRIC) - _table(
                    [s.subset(rows) for s in runs[reference]], FAMILY_METRIC
                )
                scenes = every[0].scenes[rows]
                comparisons.append(
                    {
                        "group": group,
                        "encoder": name,
                        "reference": reference,
                        "n": int(rows.sum()),
                        "mean": round(float(difference.mean()), 4),
                        "p": bootstrap_p_value(difference, scenes, draws),
                    }
                )
    for comparison, adjusted in zip(
        comparisons, holm_adjusted([c["p"] for c in comparisons]), strict=True
    ):
        comparison["p_holm"] = round(adjusted, 5)
        comparison["shown"] = adjusted < FAMILY_ALPHA
        comparison["p"] = round(comparison["p"], 5)
    return {
        "method": f"Holm step-down over the {len(comparisons)} comparisons below, two-sided "
        "bootstrap p-values over scenes and seeds (at least 1 / draws)",
        "metric": FAMILY_METRIC,
        "alpha": FAMILY_ALPHA,
        "draws": draws,
        "comparisons": comparisons,
    }


def save_sample_identities(
    path: Path,
    *,
    scenes: Sequence[str],
    sources: Sequence[str],
    track_ids: Sequence[str],
    last_observed_steps: NDArray[np.int64],
    types: NDArray[np.str_] | None,
) -> None:
    """What each row of the runs' ``per_sample.npz`` files is: ``scene``, ``source`` (the data
    set), ``track_id`` and ``t_obs`` (the last observed step in the file's own numbering, as in
    ``eval-traj --predictions``), each (N,), and ``trajectory_type`` when known; enough to find
    every sample in the raw files and rescore it."""
    arrays: dict[str, Any] = {
        "scene": np.asarray(scenes, dtype=str),
        "source": np.asarray(sources, dtype=str),
        "track_id": np.asarray(track_ids, dtype=str),
        "t_obs": np.asarray(last_observed_steps, dtype=np.int64),
    }
    if types is not None:
        arrays[TYPE_KEY] = types
    write_atomic(path, lambda handle: np.savez_compressed(handle, **arrays))


def read_or_score(run_dir: Path, score: Any) -> SampleScores:
    """The run's ``per_sample.npz``, or ``score()`` (a SampleScores) saved there first; a file
    written before trajectory types were saved is scored again."""
    path = run_dir / PER_SAMPLE_NAME
    if path.is_file():
        saved = SampleScores.load(path)
        if saved.types is not None:
            return saved
    scores: SampleScores = score()
    scores.save(path)
    return scores
