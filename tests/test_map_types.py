"""VectorMap / Scenario containers and format detection, independent of any reader."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from mapenc.errors import MapencError, MapFormatError, PoseError
from mapenc.maps.io import detect_format, read_bytes
from mapenc.maps.tracks import TrackRows, build_tracks
from mapenc.maps.types import (
    Lane,
    MarkType,
    Scenario,
    Track,
    VectorMap,
    as_polyline,
    centerline_from_boundaries,
    resample_polylines,
)


def straight_lane(lane_id: str, x0: float, x1: float, y: float, width: float = 4.0) -> Lane:
    xs = np.array([x0, x1])
    return Lane(
        id=lane_id,
        centerline=np.stack([xs, [y, y]], axis=1),
        left_boundary=np.stack([xs, [y + width / 2] * 2], axis=1),
        right_boundary=np.stack([xs, [y - width / 2] * 2], axis=1),
    )


def test_drivable_area_defaults_to_union_of_lanes() -> None:
    m = VectorMap([straight_lane("a", 0, 10, 0), straight_lane("b", 5, 20, 0)])
    assert m.area.area == pytest.approx(20 * 4)
    assert m.bounds == pytest.approx((0, -2, 20, 2))


def test_query_returns_lanes_touching_window() -> None:
    m = VectorMap([straight_lane("a", 0, 10, 0), straight_lane("b", 100, 110, 0)])
    hit = m.query((95.0, -1.0, 96.0, 1.0))
    assert [m.lanes[i].id for i in hit.lanes] == []
    hit = m.query((99.0, -1.0, 101.0, 1.0))
    assert [m.lanes[i].id for i in hit.lanes] == ["b"]
    assert hit.crosswalks.size == 0


def test_empty_map_has_zero_bounds_and_empty_queries() -> None:
    m = VectorMap([])
    assert m.bounds == (0.0, 0.0, 0.0, 0.0)
    assert m.area.is_empty
    assert m.query((0, 0, 1, 1)).lanes.size == 0


def test_duplicate_lane_ids_and_unknown_lane_raise() -> None:
    with pytest.raises(MapencError, match="duplicate"):
        VectorMap([straight_lane("a", 0, 1, 0), straight_lane("a", 2, 3, 0)])
    with pytest.raises(MapencError, match="no lane"):
        VectorMap([straight_lane("a", 0, 1, 0)]).lane("zzz")


def test_centerline_between_boundaries() -> None:
    left = np.array([[0.0, 2.0], [10.0, 2.0]])
    right = np.array([[0.0, -2.0], [5.0, -2.0], [10.0, -2.0]])
    centre = centerline_from_boundaries(left, right)
    np.testing.assert_allclose(centre[:, 1], 0.0)
    np.testing.assert_allclose(centre[[0, -1], 0], [0.0, 10.0])


@pytest.mark.parametrize("bad", [[[0.0, 0.0]], [[0.0, np.nan], [1.0, 1.0]], [1.0, 2.0]])
def test_as_polyline_rejects_bad_points(bad: list[object]) -> None:
    with pytest.raises(MapencError):
        as_polyline(bad, "lane 7 left boundary")


def test_mark_type_classes() -> None:
    assert MarkType.DOUBLE_SOLID.is_solid and not MarkType.DOUBLE_SOLID.is_dashed
    assert MarkType.DASHED.is_dashed and not MarkType.NONE.is_solid


def test_poses_at_returns_valid_agents_only() -> None:
    t = 3
    valid = np.array([True, True, False])
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [np.nan, np.nan]])
    tracks = [
        Track("car", "vehicle", xy, np.array([0.0, 0.1, np.nan]), valid),
        Track("ped", "pedestrian", np.full((t, 2), 5.0), np.ones(t), np.ones(t, bool)),
    ]
    sc = Scenario(VectorMap([]), 0.1, tracks)
    ids, poses = sc.poses_at(2)
    assert ids == ["ped"]
    np.testing.assert_allclose(poses, [[5.0, 5.0, 1.0]])
    with pytest.raises(PoseError):
        sc.poses_at(3)


def test_read_bytes_and_detect_format(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    fake_gz = tmp_path / "map.xml.gz"
    fake_gz.write_text("<commonRoad/>")
    truncated = tmp_path / "cut.xml.gz"
    truncated.write_bytes(gzip.compress(b"<commonRoad>" * 100)[:30])
    other_json = tmp_path / "other.json"
    other_json.write_text('{"hello": 1}')
    for path, message in [
        (empty, "empty"),
        (fake_gz, "not gzip"),
        (truncated, "gzip"),
        (tmp_path / "missing.json", "no such file"),
    ]:
        with pytest.raises(MapFormatError, match=message) as info:
            read_bytes(path)
        assert str(path) in str(info.value)
    with pytest.raises(MapFormatError, match="neither"):
        detect_format(other_json)
    real_gz = tmp_path / "ok.xml.gz"
    real_gz.write_bytes(gzip.compress(b'<?xml version="1.0"?>\n<commonRoad timeStepSize="0.1">'))
    assert detect_format(real_gz) == "commonroad"


def numpy_resample(points: np.ndarray, num: int) -> np.ndarray:
    """One polyline resampled with numpy's own linspace and interp (the reference)."""
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    if cum[-1] == 0.0:
        return np.repeat(points[:1], num, axis=0)
    s = np.linspace(0.0, cum[-1], num)
    return np.stack([np.interp(s, cum, points[:, 0]), np.interp(s, cum, points[:, 1])], axis=1)


def test_polylines_resampled_together_equal_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    polylines = []
    for i in range(400):
        size = int(rng.integers(1, 60)) if i % 40 else int(rng.integers(500, 3000))
        points = rng.normal(size=(size, 2)).cumsum(axis=0) * rng.uniform(0.01, 100.0)
        if i % 7 == 0 and size > 3:
            points[1], points[-1] = points[0], points[-2]  # zero-length segments
        if i % 11 == 0:
            points[:] = points[0]  # no length at all
        polylines.append(points)
    nums = rng.integers(2, 400, len(polylines))
    for points, num, got in zip(polylines, nums, resample_polylines(polylines, nums), strict=True):
        np.testing.assert_array_equal(got, numpy_resample(points, int(num)))


def test_tracks_from_rows_take_each_tracks_rows_and_median_size() -> None:
    rng = np.random.default_rng(1)
    ids = np.array(["b", "a", "c"])[rng.integers(0, 3, 200)]
    steps = np.zeros(200, dtype=np.int64)
    for track_id in "abc":  # distinct steps per track
        mine = ids == track_id
        steps[mine] = rng.permutation(100)[: mine.sum()]
    rows = TrackRows(
        track_id=ids,
        step=steps,
        xy=rng.normal(size=(200, 2)),
        heading=rng.normal(size=200),
        kind=np.array(["car"] * 200),
        size=rng.uniform(1, 5, (200, 2)),
    )
    tracks = build_tracks(rows, 100)
    assert [t.id for t in tracks] == list(dict.fromkeys(ids))  # order of first appearance
    for track in tracks:
        mine = ids == track.id
        np.testing.assert_array_equal(track.xy[steps[mine]], rows.xy[mine])
        np.testing.assert_array_equal(np.flatnonzero(track.valid), np.sort(steps[mine]))
        assert np.isnan(track.heading[~track.valid]).all()
        assert (track.length, track.width) == tuple(np.median(rows.size[mine], axis=0))
