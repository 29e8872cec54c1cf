"""Map polylines around agents: frames, window, order, shared boundaries, rotation invariance."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon

from mapenc.errors import ConfigError
from mapenc.geometry import SE2
from mapenc.maps.polylines import (
    POLYLINE_TYPES,
    PolylineSpec,
    map_polylines,
    polylines_around,
)
from mapenc.maps.types import Lane, VectorMap
from mapenc.testing import l_junction, straight_road

SPEC = PolylineSpec(extent_m=(-10.0, -8.0, 30.0, 8.0), max_polylines=40, segments=4, spacing_m=2.0)


def moved(vector_map: VectorMap, city_SE2_old: SE2) -> VectorMap:
    """The same map with every point mapped by ``city_SE2_old``."""
    lanes = [
        Lane(
            lane.id,
            city_SE2_old.transform_from(lane.centerline),
            city_SE2_old.transform_from(lane.left_boundary),
            city_SE2_old.transform_from(lane.right_boundary),
        )
        for lane in vector_map.lanes
    ]
    crosswalks = [
        Polygon(city_SE2_old.transform_from(np.asarray(c.exterior.coords)))
        for c in vector_map.crosswalks
    ]
    return VectorMap(lanes, crosswalks=crosswalks)


def test_points_are_in_the_agent_frame_and_inside_the_window() -> None:
    road = straight_road(length_m=200.0, lane_width_m=4.0)
    # Agent at x=5 on the east lane (y = -2), heading +x: the east centerline lies on y = 0.
    seen = polylines_around(map_polylines(road, SPEC), [[5.0, -2.0, 0.0]], SPEC)
    types = seen.types[0]
    present = seen.mask[0].any(axis=1)
    centre = present & (types == POLYLINE_TYPES.index("centerline"))
    east = centre & (np.abs(seen.points[0, :, :, 1]).max(axis=1) < 1e-5)
    assert east.any()
    xs = seen.points[0][seen.mask[0]][:, 0]
    ys = seen.points[0][seen.mask[0]][:, 1]
    assert xs.min() >= -10.0 and xs.max() <= 30.0 and ys.min() >= -8.0 and ys.max() <= 8.0
    # The window is 40 m long and the road is straight: masked-in points cover it to the ends.
    assert xs.min() < -8.0 and xs.max() > 28.0
    # Lane boundaries at city y = -4, 0 (shared by the two lanes) and 4: for the agent at y = -2,
    # y = -2, 2 and 6.
    boundary = (types == POLYLINE_TYPES.index("lane_boundary"))[:, None] & seen.mask[0]
    offsets = np.unique(np.round(seen.points[0][boundary][:, 1], 3))
    assert offsets.tolist() == [-2.0, 2.0, 6.0]


def test_padding_is_zero_and_masked() -> None:
    roomy = PolylineSpec(**{**SPEC.__dict__, "max_polylines": 100})
    seen = polylines_around(map_polylines(straight_road(), roomy), [[0.0, 0.0, 0.0]], roomy)
    present = seen.mask[0].any(axis=1)
    assert 0 < present.sum() < roomy.max_polylines
    assert not present[present.sum() :].any(), "present polylines come first"
    assert (seen.points[0][~seen.mask[0]] == 0).all()


def test_nearest_polylines_first_and_the_cap_keeps_the_nearest() -> None:
    pieces = map_polylines(l_junction(), SPEC)
    pose = [[-20.0, 0.0, 0.0]]
    every = polylines_around(pieces, pose, SPEC)
    distance = np.where(every.mask[0], np.linalg.norm(every.points[0], axis=-1), np.inf).min(1)
    present = every.mask[0].any(axis=1)
    assert np.all(np.diff(distance[present]) >= 0)
    few = polylines_around(pieces, pose, PolylineSpec(**{**SPEC.__dict__, "max_polylines": 3}))
    np.testing.assert_array_equal(few.points[0], every.points[0, :3])


def test_shared_boundaries_are_kept_once() -> None:
    road = straight_road(length_m=40.0, lane_width_m=4.0)
    pieces = map_polylines(road, PolylineSpec(segments=100, spacing_m=100.0))
    kinds = [POLYLINE_TYPES[t] for t in pieces.types]
    # Two lanes: two centerlines, three boundaries (the middle one shared), one road-edge ring.
    assert kinds.count("centerline") == 2
    assert kinds.count("lane_boundary") == 3
    assert kinds.count("road_edge") == 1


def test_turning_the_world_and_the_agent_together_changes_nothing() -> None:
    junction = l_junction()
    # Poses whose window edges fall between resampled points (float noise decides points lying
    # exactly on an edge).
    poses = np.array([[-20.3, 0.1, 0.01], [10.2, 25.3, np.pi / 2], [5.1, 4.2, 0.9]])
    city_SE2_old = SE2(1.1, np.array([3000.0, -4200.0]))
    moved_poses = np.column_stack(
        [city_SE2_old.transform_from(poses[:, :2]), poses[:, 2] + city_SE2_old.rotation_rad]
    )
    before = polylines_around(map_polylines(junction, SPEC), poses, SPEC)
    after = polylines_around(map_polylines(moved(junction, city_SE2_old), SPEC), moved_poses, SPEC)
    np.testing.assert_array_equal(before.mask, after.mask)
    np.testing.assert_array_equal(before.types, after.types)
    np.testing.assert_allclose(before.points, after.points, atol=1e-4)


def test_an_agent_far_from_the_map_sees_nothing() -> None:
    seen = polylines_around(map_polylines(straight_road(), SPEC), [[0.0, 500.0, 0.0]], SPEC)
    assert not seen.mask.any()


def test_spec_rejects_a_window_without_the_agent() -> None:
    with pytest.raises(ConfigError, match="must contain the agent"):
        PolylineSpec(extent_m=(1.0, -5.0, 10.0, 5.0))
