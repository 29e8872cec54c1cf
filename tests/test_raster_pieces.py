"""Map pieces: lines cut into runs of segments (``line_runs``), boxes found for rotated windows
(``Pieces.meeting``), and rasters drawn from pieces equal to rasters drawn from whole geometries,
the drivable area filled from its parts (the lane polygons) equal to the fill of their union."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from mapenc.maps.synthetic import TownConfig, make_town
from mapenc.maps.types import UnionOf, VectorMap
from mapenc.raster import Rasterizer, RasterSpec, mapgeom
from mapenc.raster.layers import LAYERS
from mapenc.raster.mapgeom import Pieces, line_runs, window_corners
from mapenc.raster.rasterizer import RASTER_MODES
from mapenc.raster.segments import Segments

SPEC = RasterSpec(
    size_px=(96, 96),
    pixel_size_m=0.5,
    layers=("drivable_area", "lane_boundaries", "centerlines", "crosswalks"),
)


def town_without_area() -> VectorMap:
    """A synthetic town's lanes and crosswalks, its drivable area left to the lanes."""
    town = make_town(TownConfig(seed=3, curvature=0.05))
    return VectorMap(lanes=town.lanes, crosswalks=town.crosswalks, road_edges=town.road_edges)


def poses_on_lanes(m: VectorMap, count: int) -> np.ndarray:
    """(count, 3) poses at random centerline points with random headings (city frame)."""
    rng = np.random.default_rng(0)
    lanes = [m.lanes[k] for k in rng.integers(0, len(m.lanes), count)]
    xy = np.stack([lane.centerline[rng.integers(0, len(lane.centerline))] for lane in lanes])
    return np.concatenate([xy, rng.uniform(-np.pi, np.pi, (count, 1))], axis=1)


@pytest.mark.parametrize("max_segments", [1, 3, 16])
def test_line_runs_keep_every_segment_in_order(max_segments: int) -> None:
    """The runs hold the segments shapely finds in the same lines, in order, at most
    ``max_segments`` each and each within one line; lines of 0 or 1 point add none."""
    rng = np.random.default_rng(max_segments)
    lines = [rng.uniform(-50, 50, (n, 2)) for n in (2, 3, 17, 40, 1, 0, 5)]
    runs = line_runs(lines, max_segments)
    drawn = [shapely.LineString(line) for line in lines if len(line) >= 2]
    whole = Segments.of(np.array(drawn, dtype=object))
    np.testing.assert_array_equal(runs.ends, whole.ends)  # starts and ends, x and y
    size = np.diff(runs.first)
    assert (size >= 1).all() and (size <= max_segments).all()
    starts, ends = runs.ends[0::2], runs.ends[1::2]  # (2, S) x, y of each segment's ends
    for first, last in zip(runs.first[:-1], runs.first[1:], strict=True):  # one line per run
        np.testing.assert_array_equal(starts[:, first + 1 : last], ends[:, first : last - 1])
    assert line_runs([], max_segments).ends.shape == (4, 0)
    assert len(line_runs([np.zeros((1, 2))], max_segments).first) == 1


@pytest.mark.parametrize("tests_per_block", [mapgeom.MEETING_TESTS, 500])
def test_pieces_meeting_a_window_are_those_whose_box_intersects_it(
    tests_per_block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mapgeom, "MEETING_TESTS", tests_per_block)  # 500: blocks of one agent
    rng = np.random.default_rng(0)
    low = rng.uniform(-100, 100, (300, 2))
    box = np.concatenate([low, low + rng.uniform(0.1, 30, (300, 2))], axis=1)
    starts, ends = box[:, :2], box[:, 2:]
    xy = np.stack([starts[:, 0], ends[:, 0], starts[:, 1], ends[:, 1]])
    pieces = Pieces.of(Segments(xy, np.arange(len(box) + 1)))
    np.testing.assert_array_equal(pieces.box, box)
    poses = np.concatenate([rng.uniform(-80, 80, (7, 2)), rng.uniform(-np.pi, np.pi, (7, 1))], 1)
    corners = window_corners(SPEC.raster_from_city(poses), SPEC.size_px)
    agent_idx, piece_idx = pieces.meeting(corners)
    windows = shapely.polygons(corners)
    expected = shapely.intersects(shapely.box(*box.T)[None, :], windows[:, None])
    got = np.zeros_like(expected)
    got[agent_idx, piece_idx] = True
    np.testing.assert_array_equal(got, expected)
    order = np.lexsort((agent_idx, piece_idx))
    np.testing.assert_array_equal(order, np.arange(len(order)))  # by piece, then agent
    assert 0 < got.sum() < got.size


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_rasters_from_line_runs_equal_rasters_from_whole_lines(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = town_without_area()
    poses = poses_on_lanes(m, 12)
    cut = Rasterizer(m, SPEC, mode=mode).rasterize(poses, np.uint8)  # type: ignore[arg-type]
    monkeypatch.setattr(mapgeom, "line_runs", lambda lines: line_runs(lines, 10**9))
    whole = Rasterizer(m, SPEC, mode=mode).rasterize(poses, np.uint8)  # type: ignore[arg-type]
    np.testing.assert_array_equal(cut, whole)
    assert cut[:, SPEC.layers.index("lane_boundaries")].any()


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_drivable_area_from_lane_polygons_equals_the_raster_of_their_union(mode: str) -> None:
    m = town_without_area()
    union = VectorMap(
        lanes=m.lanes,
        crosswalks=m.crosswalks,
        road_edges=m.road_edges,
        drivable_area=shapely.union_all(m.lane_polygons),
    )
    poses = poses_on_lanes(m, 12)
    parts = Rasterizer(m, SPEC, mode=mode).rasterize(poses, np.uint8)  # type: ignore[arg-type]
    assert "_drivable_area" not in vars(m) or m._drivable_area is None  # no union was built
    whole = Rasterizer(union, SPEC, mode=mode).rasterize(poses, np.uint8)  # type: ignore[arg-type]
    np.testing.assert_array_equal(parts, whole)
    assert 0 < parts[:, 0].mean() < 255


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_shared_boundaries_searched_or_not_draw_the_same_pixels(mode: str) -> None:
    """A town's neighbouring lanes share boundary arrays: they are drawn once, unless the map's
    boundaries are offset per lane (Waymo), where no search is made and a shared one is drawn
    twice, lighting the same pixels."""
    m = town_without_area()
    offset = VectorMap(
        lanes=m.lanes, crosswalks=m.crosswalks, road_edges=m.road_edges, boundaries_offset=True
    )
    layer = LAYERS["lane_boundaries"]
    assert layer.polylines is not None
    searched, kept = layer.polylines(m), layer.polylines(offset)
    assert len(searched) < len(kept) == 2 * len(m.lanes) + len(m.road_edges)
    poses = poses_on_lanes(m, 12)
    np.testing.assert_array_equal(
        Rasterizer(m, SPEC, mode=mode).rasterize(poses, np.uint8),  # type: ignore[arg-type]
        Rasterizer(offset, SPEC, mode=mode).rasterize(poses, np.uint8),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_area_given_as_parts_draws_their_union_without_building_it(mode: str) -> None:
    """A map given overlapping drivable polygons with a loader of their union (the AV2 reader's
    areas) fills the polygons: the same pixels as the union, which is built only when read."""
    m = town_without_area()
    lanes = m.lane_polygons
    parts = [shapely.union_all(lanes[i : i + 3]) for i in range(0, len(lanes), 2)]  # overlapping
    given = VectorMap(lanes=m.lanes, crosswalks=m.crosswalks, road_edges=m.road_edges)
    given.load_drivable_area_when_read(UnionOf(tuple(parts)), parts=parts)
    union = VectorMap(
        lanes=m.lanes,
        crosswalks=m.crosswalks,
        road_edges=m.road_edges,
        drivable_area=shapely.union_all(parts),
    )
    poses = poses_on_lanes(m, 12)
    drawn = Rasterizer(given, SPEC, mode=mode).rasterize(poses, np.uint8)  # type: ignore[arg-type]
    assert given._drivable_area is None  # no union was built
    whole = Rasterizer(union, SPEC, mode=mode).rasterize(poses, np.uint8)  # type: ignore[arg-type]
    np.testing.assert_array_equal(drawn, whole)
    assert 0 < drawn[:, 0].mean() < 255
    assert given.drivable_area.equals(union.drivable_area)
