"""AV2-style forecasting metrics and the off-road rate, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import box

from mapenc.errors import DataError
from mapenc.metrics import best_mode, offroad_mask, offroad_rate, score_forecasts


def _two_agents() -> tuple[np.ndarray, np.ndarray]:
    """Agent 0: truth along +x; mode 0 ends 3 m off but is close early, mode 1 ends 1 m off.
    Agent 1: one mode exactly right, one 5 m off everywhere."""
    gt = np.zeros((2, 2, 2))
    gt[0] = [[1.0, 0.0], [2.0, 0.0]]
    gt[1] = [[0.0, 1.0], [0.0, 2.0]]
    pred = np.zeros((2, 2, 2, 2))
    pred[0, 0] = [[1.0, 0.0], [2.0, 3.0]]  # errors 0, 3 -> ADE 1.5, FDE 3
    pred[0, 1] = [[1.0, 2.0], [2.0, 1.0]]  # errors 2, 1 -> ADE 1.5, FDE 1
    pred[1, 0] = gt[1] + [5.0, 0.0]  # ADE 5, FDE 5
    pred[1, 1] = gt[1]  # ADE 0, FDE 0
    return pred, gt


def test_min_fde_picks_the_endpoint_best_mode_and_min_ade_follows_it() -> None:
    pred, gt = _two_agents()
    assert best_mode(pred, gt).tolist() == [1, 1]
    scores = score_forecasts(pred, gt)
    assert scores.n == 2 and scores.k == 2
    assert scores.min_fde == pytest.approx((1.0 + 0.0) / 2)
    assert scores.min_ade == pytest.approx((1.5 + 0.0) / 2)
    assert scores.miss_rate == pytest.approx(0.0)
    assert scores.brier_min_fde is None


def test_min_ade_is_that_of_the_min_fde_mode_not_the_smallest_ade() -> None:
    gt = np.array([[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]])
    pred = np.zeros((1, 2, 3, 2))
    pred[0, 0] = gt[0] + [[0.0, 0.0], [0.0, 0.0], [0.0, 1.5]]  # ADE 0.5, FDE 1.5
    pred[0, 1] = gt[0] + [[0.0, 3.0], [0.0, 3.0], [0.0, 1.0]]  # ADE 7/3, FDE 1.0
    scores = score_forecasts(pred, gt)
    assert scores.min_fde == pytest.approx(1.0)
    assert scores.min_ade == pytest.approx(7.0 / 3.0)


def test_miss_rate_counts_best_final_errors_above_two_metres() -> None:
    gt = np.zeros((3, 1, 2))
    pred = np.zeros((3, 2, 1, 2))
    pred[0, :, 0] = [[2.5, 0.0], [0.0, 2.1]]  # best 2.1 > 2 -> miss
    pred[1, :, 0] = [[2.0, 0.0], [0.0, 9.0]]  # best exactly 2.0 -> not a miss
    pred[2, :, 0] = [[0.5, 0.0], [3.0, 0.0]]  # best 0.5 -> hit
    assert score_forecasts(pred, gt).miss_rate == pytest.approx(1.0 / 3.0)


def test_brier_min_fde_adds_the_squared_missing_probability_of_the_best_mode() -> None:
    pred, gt = _two_agents()
    probs = np.array([[0.6, 0.4], [0.1, 0.9]])
    scores = score_forecasts(pred, gt, probs)
    expected = ((1.0 + (1 - 0.4) ** 2) + (0.0 + (1 - 0.9) ** 2)) / 2
    assert scores.brier_min_fde == pytest.approx(expected)


def test_bad_shapes_raise_data_error() -> None:
    pred, gt = _two_agents()
    with pytest.raises(DataError, match=r"\(N, T, 2\)"):
        score_forecasts(pred, gt[:, :1])
    with pytest.raises(DataError, match="N, K, T, 2"):
        score_forecasts(pred[0], gt)
    with pytest.raises(DataError, match="probabilities"):
        score_forecasts(pred, gt, np.ones((2, 3)) / 3)
    with pytest.raises(DataError, match="N = 0"):
        score_forecasts(np.zeros((0, 1, 2, 2)), np.zeros((0, 2, 2)))


def test_offroad_rate_counts_points_outside_the_drivable_area() -> None:
    road = box(0.0, 0.0, 10.0, 4.0)
    points = np.array([[[1.0, 1.0], [5.0, 3.9], [11.0, 1.0], [5.0, -0.5]]])  # 2 of 4 outside
    assert offroad_mask(points, road).tolist() == [[False, False, True, True]]
    assert offroad_rate(points, road) == pytest.approx(0.5)
    with pytest.raises(DataError):
        offroad_rate(np.zeros((0, 2)), road)
