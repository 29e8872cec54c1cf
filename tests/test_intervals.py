"""Bootstrap intervals over scenes and seeds: collapse without doubt, widen with it, pair."""

from __future__ import annotations

import numpy as np
import pytest

from mapenc.errors import DataError
from mapenc.study.intervals import (
    bootstrap_mean,
    paired_difference,
    seed_difference,
    seed_interval_entries,
    seed_mean,
)

SCENES = np.repeat(np.arange(8), 25)


def test_no_spread_gives_a_point_interval() -> None:
    interval = bootstrap_mean(np.full((3, len(SCENES)), 1.25), SCENES)
    assert (interval.mean, interval.low, interval.high) == pytest.approx((1.25, 1.25, 1.25))
    assert (interval.scenes, interval.seeds) == (8, 3)


def test_more_samples_per_scene_do_not_shrink_an_interval_set_by_scene_differences() -> None:
    scene_means = np.random.default_rng(0).normal(2.0, 0.5, 8)
    few = bootstrap_mean(scene_means[SCENES], SCENES)
    many = bootstrap_mean(np.repeat(scene_means[SCENES], 10), np.repeat(SCENES, 10))
    assert (many.low, many.high) == pytest.approx((few.low, few.high), abs=1e-9)
    assert few.high - few.low > 0.3  # eight scenes with a 0.5 spread: the mean is not known well
    assert few.low < scene_means.mean() < few.high


def test_seeds_that_disagree_widen_the_interval() -> None:
    values = np.ones((3, len(SCENES)))
    one_seed = bootstrap_mean(values[:1], SCENES)
    disagreeing = bootstrap_mean(values * np.array([[0.8], [1.0], [1.2]]), SCENES)
    assert one_seed.high - one_seed.low == pytest.approx(0.0)
    assert disagreeing.low < 0.95 and disagreeing.high > 1.05
    assert disagreeing.mean == pytest.approx(1.0)


def test_a_paired_difference_removes_what_both_methods_share() -> None:
    rng = np.random.default_rng(1)
    shared = rng.normal(2.0, 1.0, (3, len(SCENES)))  # hard and easy scenes, alike for both
    better = shared - 0.1
    difference = paired_difference(better, shared, SCENES)
    assert difference.mean == pytest.approx(-0.1)
    assert difference.high < 0 and not difference.includes_zero
    unpaired_width = bootstrap_mean(better, SCENES)
    assert unpaired_width.high - unpaired_width.low > 0.1
    noise = paired_difference(shared + rng.normal(0, 0.5, shared.shape), shared, SCENES)
    assert noise.includes_zero


def test_a_single_row_pairs_with_every_seed() -> None:
    baseline = np.full(len(SCENES), 3.0)
    model = np.full((3, len(SCENES)), 2.0)
    assert paired_difference(baseline, model, SCENES).mean == pytest.approx(1.0)


def test_bad_shapes_are_data_errors() -> None:
    with pytest.raises(DataError, match="scenes"):
        bootstrap_mean(np.ones((2, 5)), np.arange(4))
    with pytest.raises(DataError, match="seeds or N differ"):
        paired_difference(np.ones((2, 5)), np.ones((3, 5)), np.arange(5))
    with pytest.raises(DataError, match="NaN"):
        bootstrap_mean([1.0, np.nan], [0, 1])


def test_seed_intervals_follow_student_t_and_welch() -> None:
    interval = seed_mean([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.303
    assert interval.mean == 2.0 and interval.seeds == 3
    assert (interval.low, interval.high) == pytest.approx(
        (2 - 4.303 / 3**0.5, 2 + 4.303 / 3**0.5), abs=1e-3
    )
    # Equal variances and sizes: Welch's degrees of freedom are 2 (n - 1) = 4, t = 2.776.
    difference = seed_difference([4.0, 5.0, 6.0], [1.0, 2.0, 3.0])
    half = 2.776 * (2 / 3) ** 0.5
    assert (difference.mean, difference.low, difference.high) == pytest.approx(
        (3, 3 - half, 3 + half), abs=1e-3
    )
    assert not difference.includes_zero and seed_difference([1, 2], [2, 1]).includes_zero
    with pytest.raises(DataError, match="two or more finite values"):
        seed_mean([1.0])


def test_seed_interval_entries_take_differences_to_the_reference() -> None:
    rows = [
        {"encoder": name, "loss": value}
        for name, values in (("a", [1, 2, 3]), ("b", [3, 4, 5]))
        for value in values
    ]
    entries = seed_interval_entries(rows, ["loss"], references=["a"])
    assert entries["a"]["seeds"] == 3 and "minus_a" not in entries["a"]
    assert entries["b"]["metrics"]["loss"]["mean"] == 4.0
    assert entries["b"]["minus_a"]["loss"]["mean"] == 2.0
