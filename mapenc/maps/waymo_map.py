"""The map of a Waymo Open Motion scenario: lanes with boundaries from their road lines and road
edges, road lines, polygons and stop signs (see ``mapenc.maps.waymo`` for what becomes what)."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from mapenc.errors import MapencError
from mapenc.maps.geojson import DEFAULT_LANE_WIDTH_M, offset_polyline
from mapenc.maps.jsonparse import ring_polygon
from mapenc.maps.types import (
    FloatArray,
    Lane,
    LaneType,
    MarkType,
    RoadLine,
    StopSign,
    VectorMap,
)

# LaneCenter.LaneType: undefined, freeway, surface street, bike lane.
LANE_TYPES = {0: LaneType.UNKNOWN, 1: LaneType.VEHICLE, 2: LaneType.VEHICLE, 3: LaneType.BIKE}
# RoadLine.RoadLineType, colour dropped; "passing double yellow" is one solid and one broken line.
ROAD_LINE_MARKS = {
    1: MarkType.DASHED,
    2: MarkType.SOLID,
    3: MarkType.DOUBLE_SOLID,
    4: MarkType.DASHED,
    5: MarkType.DOUBLE_DASHED,
    6: MarkType.SOLID,
    7: MarkType.DOUBLE_SOLID,
    8: MarkType.SOLID_DASHED,
}
# Half lane widths (metres) outside this range come from a boundary feature that is not the
# lane's own edge (e.g. the far side of a parking strip): clip them.
HALF_WIDTH_RANGE_M = (0.5, 5.0)


def _points(map_points: Sequence[Any]) -> FloatArray:
    """(K, 2) float64 [x, y] of repeated ``MapPoint`` (z dropped); MapencError if not finite."""
    points = np.array([(p.x, p.y) for p in map_points], dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise MapencError("NaN or inf map coordinates")
    return points


def _distinct(points: FloatArray) -> NDArray[np.bool_]:
    """(K,) mask keeping each point that differs from the one before."""
    return np.concatenate([[True], (np.diff(points, axis=0) != 0).any(axis=1)])[: len(points)]


def map_from_features(features: Sequence[Any], source: str) -> VectorMap:
    """VectorMap of the scenario's ``map_features``; degenerate features skipped with a warning."""
    lines: dict[int, FloatArray] = {}
    line_marks: dict[int, MarkType] = {}  # road line id -> its mark; road edges are curbs
    for feature in features:
        kind = feature.WhichOneof("feature_data")
        if kind in ("road_line", "road_edge"):
            lines[feature.id] = _points(getattr(feature, kind).polyline)
            line_marks[feature.id] = (
                ROAD_LINE_MARKS.get(feature.road_line.type, MarkType.UNKNOWN)
                if kind == "road_line"
                else MarkType.CURB
            )
    lane_features = [f for f in features if f.WhichOneof("feature_data") == "lane"]
    lane_points = [_points(f.lane.polyline) for f in lane_features]
    boundaries = iter(_boundary_distances(lane_features, lane_points, lines))
    skipped: Counter[str] = Counter()
    lanes: list[Lane] = []
    road_lines: list[RoadLine] = []
    road_edges: list[FloatArray] = []
    polygons: dict[str, list[Any]] = {"crosswalk": [], "driveway": [], "speed_bump": []}
    stop_signs: list[StopSign] = []
    for feature in features:
        kind = feature.WhichOneof("feature_data")
        what = f"{kind} {feature.id}"
        if kind == "lane":
            points, (left, right) = next(boundaries)
            lane = _lane(feature, points, left, right, line_marks)
            if lane is None:
                skipped["lane(s) with fewer than 2 distinct points"] += 1
            else:
                lanes.append(lane)
        elif kind in ("road_line", "road_edge"):
            points = lines[feature.id]
            if _distinct(points).sum() < 2:
                skipped[f"{kind}(s) with fewer than 2 distinct points"] += 1
            elif kind == "road_edge":
                road_edges.append(points)
            else:
                mark = line_marks[feature.id]
                road_lines.append(RoadLine(id=str(feature.id), points=points, mark=mark))
        elif kind in polygons:
            ring = _points(getattr(feature, kind).polygon)
            if len(np.unique(ring, axis=0)) < 3:
                skipped[f"{kind}(s) with fewer than 3 distinct points"] += 1
            else:
                polygons[kind].append(ring_polygon(ring, what))
        elif kind == "stop_sign":
            sign = feature.stop_sign
            stop_signs.append(
                StopSign(
                    id=str(feature.id),
                    position=np.array([sign.position.x, sign.position.y], dtype=np.float64),
                    lanes=tuple(str(lane_id) for lane_id in sign.lane),
                )
            )
    with warnings.catch_warnings():
        # Offset boundaries fold on the inside of turns tighter than the lane's half width: an
        # artefact of the offset, not of the data, so the polygons are mended here without the
        # warning repair_polygon gives for broken source polygons (and cached on each Lane).
        warnings.simplefilter("ignore")
        for lane in lanes:
            _ = lane.polygon
    if skipped:
        listed = ", ".join(f"{count} {what}" for what, count in skipped.items())
        warnings.warn(f"{source}: skipped degenerate map features: {listed}", stacklevel=2)
    return VectorMap(
        lanes=lanes,
        crosswalks=polygons["crosswalk"],
        road_edges=road_edges,
        source=source,
        road_lines=road_lines,
        driveways=polygons["driveway"],
        speed_bumps=polygons["speed_bump"],
        stop_signs=stop_signs,
    )


# One boundary segment with its distances: (segment message, first index, stop index, (n,) m).
Covered = tuple[Any, int, int, FloatArray]


def _boundary_distances(
    lane_features: Sequence[Any], lane_points: Sequence[FloatArray], lines: dict[int, FloatArray]
) -> Iterator[tuple[FloatArray, tuple[list[Covered], list[Covered]]]]:
    """For each lane in order: its polyline and, for its left and right side, each boundary
    segment with the distances (metres) from the centerline points it covers to the line it names.

    Segments naming a line outside the map's extent, or covering no point, are left out. All
    distances come from one vectorised shapely call.
    """
    geometry = {
        line_id: shapely.linestrings(line) if len(line) > 1 else shapely.points(line[0])
        for line_id, line in lines.items()
        if len(line)
    }
    jobs: list[tuple[int, int, Any, int, int]] = []  # lane, side (0 left, 1 right), segment, range
    for i, (feature, points) in enumerate(zip(lane_features, lane_points, strict=True)):
        for side, segments in enumerate(
            (feature.lane.left_boundaries, feature.lane.right_boundaries)
        ):
            for segment in segments:
                start = max(segment.lane_start_index, 0)
                stop = min(segment.lane_end_index + 1, len(points))
                if segment.boundary_feature_id in geometry and start < stop:
                    jobs.append((i, side, segment, start, stop))
    sizes = [stop - start for *_, start, stop in jobs]
    distances: list[FloatArray] = []
    if jobs:
        queried = np.concatenate([lane_points[i][start:stop] for i, _, _, start, stop in jobs])
        targets = np.repeat(
            np.array([geometry[seg.boundary_feature_id] for _, _, seg, _, _ in jobs], dtype=object),
            sizes,
        )
        flat = shapely.distance(shapely.points(queried), targets)
        distances = np.split(flat, np.cumsum(sizes)[:-1])
    covered: list[tuple[list[Covered], list[Covered]]] = [([], []) for _ in lane_features]
    for (i, side, segment, start, stop), distance in zip(jobs, distances, strict=True):
        covered[i][side].append((segment, start, stop, distance))
    return zip(lane_points, covered, strict=True)


def _lane(
    feature: Any,
    points: FloatArray,
    left: list[Covered],
    right: list[Covered],
    line_marks: dict[int, MarkType],
) -> Lane | None:
    """Lane of a ``lane`` map feature with polyline ``points`` and its boundary segments' distances
    per side, or None when the polyline has < 2 distinct points."""
    center = feature.lane
    keep = _distinct(points)
    if keep.sum() < 2:
        return None
    centerline = points[keep]
    left_half, left_mark = _half_widths(len(points), left, line_marks)
    right_half, right_mark = _half_widths(len(points), right, line_marks)
    return Lane(
        id=str(feature.id),
        centerline=centerline,
        left_boundary=offset_polyline(centerline, left_half[keep]),
        right_boundary=offset_polyline(centerline, -right_half[keep]),
        left_mark=left_mark,
        right_mark=right_mark,
        lane_type=LANE_TYPES.get(center.type, LaneType.UNKNOWN),
        predecessors=tuple(str(i) for i in center.entry_lanes),
        successors=tuple(str(i) for i in center.exit_lanes),
        left_neighbor=str(center.left_neighbors[0].feature_id) if center.left_neighbors else None,
        right_neighbor=(
            str(center.right_neighbors[0].feature_id) if center.right_neighbors else None
        ),
        is_intersection=bool(center.interpolating),
    )


def _half_widths(
    num_points: int, covered: list[Covered], line_marks: dict[int, MarkType]
) -> tuple[FloatArray, MarkType]:
    """(K,) distance (metres) from each of a lane's ``num_points`` polyline points (as stored,
    before repeated points are dropped) to one side's boundary, and that boundary's mark.

    Points no segment covers take the distance interpolated from the covered ones. A segment's
    mark is its ``boundary_type``, else that of the line it names; the side's mark is the one
    covering most points.
    """
    if not covered:
        return np.full(num_points, DEFAULT_LANE_WIDTH_M / 2), MarkType.NONE
    half = np.full(num_points, np.nan)
    coverage: Counter[MarkType] = Counter()
    for segment, start, stop, distance in covered:
        half[start:stop] = distance
        line_mark = line_marks[segment.boundary_feature_id]
        mark = ROAD_LINE_MARKS.get(segment.boundary_type, line_mark)
        coverage[MarkType.CURB if line_mark == MarkType.CURB else mark] += stop - start
    known = np.flatnonzero(np.isfinite(half))
    filled = np.interp(np.arange(num_points), known, half[known])
    return np.clip(filled, *HALF_WIDTH_RANGE_M), coverage.most_common(1)[0][0]


# Writing: the inverse mapping, for tests, benchmarks and pictures made without Waymo data.
