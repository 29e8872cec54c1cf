"""The fast Waymo reader against the straightforward one it replaced, on the real files: the same
lanes (boundaries offset lane by lane from point-by-point distances), polygons, drivable area
(built only when read) and rasters."""

from __future__ import annotations

import warnings
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely

from mapenc.maps import Scenario, VectorMap, iter_scenarios
from mapenc.maps.geojson import DEFAULT_LANE_WIDTH_M, offset_polyline
from mapenc.maps.types import repair_polygon

pytest.importorskip("google.protobuf", reason="the waymo extra is not installed")
pytest.importorskip("google_crc32c", reason="the waymo extra is not installed")

from mapenc.maps.tfrecord import iter_records
from mapenc.maps.waymo_map import HALF_WIDTH_RANGE_M
from mapenc.maps.waymo_proto import scenario_pb2
from mapenc.raster import Rasterizer, RasterSpec

SPEC = RasterSpec(
    size_px=(128, 128),
    pixel_size_m=0.5,
    layers=("drivable_area", "lane_boundaries", "centerlines", "crosswalks", "lane_heading_cos"),
)


def _xy(points: Any) -> np.ndarray:
    return np.array([(p.x, p.y) for p in points], dtype=np.float64).reshape(-1, 2)


def reference_lanes(message: Any) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Lane id -> (centerline, left, right) built lane by lane, one point at a time."""
    lines = {}
    for f in message.map_features:
        kind = f.WhichOneof("feature_data")
        if kind in ("road_line", "road_edge"):
            points = _xy(getattr(f, kind).polyline)
            if len(points):
                lines[f.id] = (
                    shapely.LineString(points) if len(points) > 1 else shapely.Point(points[0])
                )
    lanes = {}
    for f in message.map_features:
        if f.WhichOneof("feature_data") != "lane":
            continue
        points = _xy(f.lane.polyline)
        keep = np.concatenate([[True], (np.diff(points, axis=0) != 0).any(axis=1)])[: len(points)]
        if keep.sum() < 2:
            continue
        halves = []
        for segments in (f.lane.left_boundaries, f.lane.right_boundaries):
            half = np.full(len(points), np.nan)
            for seg in segments:
                start, stop = max(seg.lane_start_index, 0), min(seg.lane_end_index + 1, len(points))
                if seg.boundary_feature_id in lines:
                    for k in range(start, stop):
                        half[k] = lines[seg.boundary_feature_id].distance(shapely.Point(points[k]))
            known = np.flatnonzero(np.isfinite(half))
            if len(known):
                half = np.clip(
                    np.interp(np.arange(len(points)), known, half[known]), *HALF_WIDTH_RANGE_M
                )
            else:
                half = np.full(len(points), DEFAULT_LANE_WIDTH_M / 2)
            halves.append(half[keep])
        center = points[keep]
        lanes[str(f.id)] = (
            center,
            offset_polyline(center, halves[0]),
            offset_polyline(center, -halves[1]),
        )
    return lanes


def _real_messages(real_data: Path) -> list[tuple[Scenario, Any]]:
    """(scenario read by mapenc, parsed message) for 2 scenarios of a womd_210 shard and the
    single-scenario files."""
    paths = sorted((real_data / "waymo").glob("*.tfrecord"))
    shard = sorted((real_data / "waymo" / "womd_210").glob("*.gz"))[0]
    pairs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path, count in [(shard, 2), *((p, 1) for p in paths)]:
            read = islice(iter_scenarios(path), count)
            records = islice(iter_records(path), count)
            for scenario, payload in zip(read, records, strict=True):
                pairs.append((scenario, scenario_pb2.Scenario.FromString(payload)))
    return pairs


@pytest.mark.real_data
def test_real_waymo_maps_and_rasters_match_the_lane_by_lane_reader(real_data: Path) -> None:
    for scenario, message in _real_messages(real_data):
        m = scenario.map
        assert all("polygon" not in lane.__dict__ for lane in m.lanes)  # nothing built yet
        expected = reference_lanes(message)
        assert [lane.id for lane in m.lanes] == list(expected)
        for lane in m.lanes:
            center, left, right = expected[lane.id]
            np.testing.assert_array_equal(lane.centerline, center)
            np.testing.assert_allclose(lane.left_boundary, left, rtol=0, atol=1e-9)
            np.testing.assert_allclose(lane.right_boundary, right, rtol=0, atol=1e-9)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # folded offsets are mended quietly
            assert len(m.lane_polygons) == len(m.lanes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            polygons = [
                repair_polygon(shapely.Polygon(np.concatenate([left, right[::-1]])), "lane")
                for _, left, right in expected.values()
            ]
            crosswalks = [
                repair_polygon(shapely.Polygon(_xy(f.crosswalk.polygon)), "crosswalk")
                for f in message.map_features
                if f.WhichOneof("feature_data") == "crosswalk"
                and len(np.unique(_xy(f.crosswalk.polygon), axis=0)) >= 3
            ]
        for got, want in zip(m.lane_polygons, polygons, strict=True):
            assert shapely.equals_exact(got, want, tolerance=1e-9)
        union = shapely.union_all(polygons)
        assert m.drivable_area.equals(union)
        assert shapely.union_all(m.drivable_parts).equals(union)
        assert len(m.crosswalks) == len(crosswalks)
        for got, want in zip(m.crosswalks, crosswalks, strict=True):
            assert shapely.equals_exact(got, want, tolerance=0.0)
        reference = VectorMap(
            lanes=m.lanes, crosswalks=crosswalks, drivable_area=union, road_edges=m.road_edges
        )
        t = scenario.current_step or 0
        agents = [scenario.track(i) for i in scenario.tracks_to_predict] or scenario.tracks[:4]
        poses = np.array([[*a.xy[t], a.heading[t]] for a in agents if a.valid[t]]).reshape(-1, 3)
        for mode in ("exact", "fast"):
            np.testing.assert_array_equal(
                Rasterizer(m, SPEC, mode=mode).rasterize(poses, dtype=np.uint8),
                Rasterizer(reference, SPEC, mode=mode).rasterize(poses, dtype=np.uint8),
            )
