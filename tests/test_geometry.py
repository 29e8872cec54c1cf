"""SE2 as identities: inverse, associativity, round trips, far from the origin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapenc.errors import PoseError
from mapenc.geometry import (
    SE2,
    apply_matrices,
    check_poses,
    inverse_matrices_from_poses,
    inverse_transform_points,
    matrices_from_poses,
    rotate_vectors,
    transform_points,
    wrap_angle,
)

angles = st.floats(-10.0, 10.0, allow_nan=False)
coords = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def transforms(draw: st.DrawFn) -> SE2:
    return SE2(draw(angles), np.array([draw(coords), draw(coords)]))


@st.composite
def point_sets(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(1, 8))
    return np.array([[draw(coords), draw(coords)] for _ in range(n)])


@settings(max_examples=200, deadline=None)
@given(transforms(), point_sets())
def test_inverse_composed_is_identity(city_SE2_agent: SE2, points: np.ndarray) -> None:
    identity = city_SE2_agent.compose(city_SE2_agent.inverse())
    np.testing.assert_allclose(identity.as_matrix(), np.eye(3), atol=1e-6)
    back = city_SE2_agent.inverse().transform_from(city_SE2_agent.transform_from(points))
    # Relative to 1e6 m coordinates, float64 keeps micrometres.
    np.testing.assert_allclose(back, points, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(transforms(), transforms(), transforms(), point_sets())
def test_composition_is_associative(a: SE2, b: SE2, c: SE2, points: np.ndarray) -> None:
    left = a.compose(b).compose(c).transform_from(points)
    right = a.compose(b.compose(c)).transform_from(points)
    np.testing.assert_allclose(left, right, atol=1e-5)


@settings(max_examples=200, deadline=None)
@given(transforms())
def test_matrix_round_trip(t: SE2) -> None:
    back = SE2.from_matrix(t.as_matrix())
    np.testing.assert_allclose(back.translation, t.translation, atol=1e-9)
    assert abs(float(wrap_angle(back.rotation_rad - t.rotation_rad))) < 1e-12


@settings(max_examples=100, deadline=None)
@given(transforms(), transforms(), point_sets())
def test_compose_equals_sequential_application(a: SE2, b: SE2, points: np.ndarray) -> None:
    np.testing.assert_allclose(
        a.compose(b).transform_from(points), a.transform_from(b.transform_from(points)), atol=1e-5
    )


def test_known_values_far_from_origin() -> None:
    # An agent at (1e6, 2e6) facing north: a point 1 m ahead is 1 m north in the city frame.
    city_SE2_agent = SE2.from_pose([1e6, 2e6, np.pi / 2])
    ahead_left = city_SE2_agent.transform_from(np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(ahead_left, [[1e6, 2e6 + 1.0], [1e6 - 1.0, 2e6]], atol=1e-9)
    assert city_SE2_agent.transform_heading_from(0.0) == pytest.approx(np.pi / 2)


def test_wrap_angle_range() -> None:
    wrapped = wrap_angle(np.linspace(-20, 20, 1001))
    assert wrapped.min() >= -np.pi and wrapped.max() < np.pi
    np.testing.assert_allclose(np.cos(wrapped), np.cos(np.linspace(-20, 20, 1001)), atol=1e-12)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 2)), np.array([[0.0, np.nan, 0.0]]), np.array([[np.inf, 0.0, 0.0]]), np.zeros(4)],
)
def test_check_poses_rejects_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(PoseError):
        check_poses(bad)


def test_check_poses_accepts_single_pose() -> None:
    assert check_poses([1.0, 2.0, 3.0]).shape == (1, 3)


def test_from_matrix_rejects_non_rotation() -> None:
    m = np.eye(3)
    m[0, 0] = 2.0
    with pytest.raises(PoseError):
        SE2.from_matrix(m)


def test_batched_transforms_agree_with_one_pose_at_a_time() -> None:
    rng = np.random.default_rng(0)
    poses = np.column_stack([rng.uniform(-1e6, 1e6, (5, 2)), rng.uniform(-np.pi, np.pi, 5)])
    points = rng.normal(size=(5, 7, 2)) * 50.0
    city = transform_points(poses, points)
    for pose, agent_points, city_points in zip(poses, points, city, strict=True):
        np.testing.assert_allclose(SE2.from_pose(pose).transform_from(agent_points), city_points)
    np.testing.assert_allclose(inverse_transform_points(poses, city), points, atol=1e-6)
    products = matrices_from_poses(poses) @ inverse_matrices_from_poses(poses)
    np.testing.assert_allclose(products, np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-9)


def test_batched_transforms_keep_extra_axes_and_take_one_matrix() -> None:
    poses = np.array([[1.0, 2.0, np.pi / 2], [0.0, 0.0, 0.0]])
    ahead = np.zeros((2, 3, 4, 2))
    ahead[..., 0] = 1.0  # one metre ahead of each agent
    city = transform_points(poses, ahead)
    assert city.shape == (2, 3, 4, 2)
    np.testing.assert_allclose(city[0], np.broadcast_to([1.0, 3.0], (3, 4, 2)), atol=1e-12)
    np.testing.assert_allclose(city[1], np.broadcast_to([1.0, 0.0], (3, 4, 2)), atol=1e-12)
    single = apply_matrices(matrices_from_poses(poses)[0], np.zeros((6, 2)))
    np.testing.assert_allclose(single, np.broadcast_to([1.0, 2.0], (6, 2)))
    with pytest.raises(PoseError):
        transform_points(poses, np.zeros((3, 4, 2)))


def test_rotate_vectors_turns_directions_without_moving_them() -> None:
    headings = np.array([np.pi / 2, np.pi, 0.0])
    ahead = np.tile([[2.0, 0.0]], (3, 1))
    np.testing.assert_allclose(
        rotate_vectors(headings, ahead), [[0.0, 2.0], [-2.0, 0.0], [2.0, 0.0]], atol=1e-12
    )
    back = rotate_vectors(-headings, rotate_vectors(headings, ahead))
    np.testing.assert_allclose(back, ahead, atol=1e-12)


def test_apply_matrices_to_no_points() -> None:
    from mapenc.geometry.se2 import apply_matrices

    assert apply_matrices(np.zeros((0, 3, 3)), np.zeros((0, 5, 2))).shape == (0, 5, 2)
