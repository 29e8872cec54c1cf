"""Rasters drawn from map pieces equal rasters drawn from whole geometries: lines cut into runs of
segments (``split_lines``), and the drivable area filled from its parts (the lane polygons)
instead of their union."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from mapenc.maps.synthetic import TownConfig, make_town
from mapenc.maps.types import VectorMap
from mapenc.raster import Rasterizer, RasterSpec, mapgeom
from mapenc.raster.mapgeom import split_lines
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
def test_split_lines_keeps_every_segment_in_order(max_segments: int) -> None:
    rng = np.random.default_rng(max_segments)
    lines = [shapely.LineString(rng.uniform(-50, 50, (n, 2))) for n in (2, 3, 17, 40)]
    lines.append(shapely.MultiLineString([rng.uniform(0, 9, (5, 2)), rng.uniform(0, 9, (2, 2))]))
    pieces = split_lines(lines, max_segments)
    whole = Segments.of(np.array(lines, dtype=object))
    cut = Segments.of(np.array(pieces, dtype=object))
    np.testing.assert_array_equal(cut.start, whole.start)
    np.testing.assert_array_equal(cut.end, whole.end)
    assert (np.diff(cut.first) <= max_segments).all() and (np.diff(cut.first) >= 1).all()
    assert split_lines([shapely.LineString()], max_segments) == []


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_rasters_from_line_runs_equal_rasters_from_whole_lines(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = town_without_area()
    poses = poses_on_lanes(m, 12)
    cut = Rasterizer(m, SPEC, mode=mode).rasterize(poses, np.uint8)  # type: ignore[arg-type]
    monkeypatch.setattr(mapgeom, "split_lines", lambda lines: lines)
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
