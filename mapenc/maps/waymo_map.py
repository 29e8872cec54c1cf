"""The map of a Waymo Open Motion scenario: lanes with boundaries from their road lines and road
edges, road lines, polygons and stop signs (see ``mapenc.maps.waymo`` for what becomes what)."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np
import shapely

from mapenc.errors import MapencError
from mapenc.geometry.ragged import split_rows
from mapenc.maps.geojson import _MAX_MITER as MAX_MITER
from mapenc.maps.geojson import DEFAULT_LANE_WIDTH_M, offset_frame
from mapenc.maps.types import (
    FloatArray,
    Lane,
    LaneType,
    MarkType,
    RoadLine,
    StopSign,
    VectorMap,
    distinct_point_counts,
    made_with_fields,
    ring_polygons,
)
from mapenc.maps.waymo_wire import ScenarioBytes

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


# The field holding each map feature kind's points: polylines, or polygon rings.
POINT_FIELDS = {
    "lane": "polyline",
    "road_line": "polyline",
    "road_edge": "polyline",
    "crosswalk": "polygon",
    "driveway": "polygon",
    "speed_bump": "polygon",
}
POLYGON_KINDS = ("crosswalk", "driveway", "speed_bump")
_XY = attrgetter("x", "y")


@dataclass(frozen=True)
class _FeaturePoints:
    """The points of every map feature, copied out of the messages in one pass.

    Attributes:
        points: (K, 2) float64 [x, y] of each feature's polyline or polygon ring (z dropped;
            (0, 2) for features without points).
        distinct: (D, 2) per feature, its points that differ from the one before.
    """

    points: list[FloatArray]
    distinct: list[FloatArray]

    @classmethod
    def of(
        cls, features: Sequence[Any], kinds: Sequence[str | None], raw: ScenarioBytes
    ) -> _FeaturePoints:
        """The points of ``features`` of the given kinds, from the scenario's bytes ``raw``
        where their encoding allows (``mapenc.maps.waymo_wire``), else from the messages;
        MapencError naming the first feature with NaN or inf coordinates."""
        containers = [
            getattr(getattr(feature, kind), POINT_FIELDS[kind]) if kind in POINT_FIELDS else ()
            for feature, kind in zip(features, kinds, strict=True)
        ]
        sizes = np.fromiter(map(len, containers), dtype=np.intp, count=len(containers))
        flat = raw.points(sizes.tolist())
        if flat is None:
            flat = np.fromiter(
                chain.from_iterable(map(_XY, chain.from_iterable(containers))),
                dtype=np.float64,
                count=2 * int(sizes.sum()),
            ).reshape(-1, 2)
        ends = np.cumsum(sizes)
        x, y = flat.T  # 1-D rows: reducing along an axis of two is ~10x slower in numpy
        bad = ~(np.isfinite(x) & np.isfinite(y))
        if bad.any():
            feature = features[int(np.searchsorted(ends, np.argmax(bad), side="right"))]
            raise MapencError(f"map feature {feature.id}: NaN or inf map coordinates")
        new = np.ones(len(flat), dtype=bool)
        new[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
        new[(ends - sizes)[sizes > 0]] = True  # each feature's first point
        # One mask for every feature's distinct points (2-D masks per feature cost ~10x).
        owner = np.repeat(np.arange(len(sizes)), sizes)
        distinct_sizes = np.bincount(owner[new], minlength=len(sizes))
        distinct = np.column_stack([x[new], y[new]])
        return cls(split_rows(flat, sizes), split_rows(distinct, distinct_sizes))


def map_from_features(features: Sequence[Any], source: str, raw: ScenarioBytes) -> VectorMap:
    """VectorMap of the scenario's ``map_features`` (``raw``: the scenario's bytes, for its map
    points); degenerate features skipped with a warning.

    Lanes, lines and polygons come out as arrays; lane polygons and the drivable area are left
    to ``VectorMap`` to build when a caller needs them."""
    kinds = [feature.WhichOneof("feature_data") for feature in features]
    read = _FeaturePoints.of(features, kinds, raw)
    points, distinct = read.points, read.distinct
    lines: dict[int, FloatArray] = {}
    line_marks: dict[int, MarkType] = {}  # road line id -> its mark; road edges are curbs
    for feature, kind, feature_points in zip(features, kinds, points, strict=True):
        if kind in ("road_line", "road_edge"):
            lines[feature.id] = feature_points
            line_marks[feature.id] = (
                ROAD_LINE_MARKS.get(feature.road_line.type, MarkType.UNKNOWN)
                if kind == "road_line"
                else MarkType.CURB
            )
    lane_features = [f for f, kind in zip(features, kinds, strict=True) if kind == "lane"]
    lane_points = [p for p, kind in zip(points, kinds, strict=True) if kind == "lane"]
    lane_distinct = iter([d for d, kind in zip(distinct, kinds, strict=True) if kind == "lane"])
    boundaries = _boundary_distances(lane_features, lane_points, lines)
    skipped: Counter[str] = Counter()
    lane_parts: list[_LaneParts] = []
    road_lines: list[RoadLine] = []
    road_edges: list[FloatArray] = []
    rings: dict[str, list[FloatArray]] = {kind: [] for kind in POLYGON_KINDS}
    ring_names: dict[str, list[str]] = {kind: [] for kind in POLYGON_KINDS}
    stop_signs: list[StopSign] = []
    for feature, kind, feature_points, distinct_points in zip(
        features, kinds, points, distinct, strict=True
    ):
        if kind == "lane":
            parts = _lane_parts(feature, *next(boundaries), next(lane_distinct), line_marks)
            if parts is None:
                skipped["lane(s) with fewer than 2 distinct points"] += 1
            else:
                lane_parts.append(parts)
        elif kind in ("road_line", "road_edge"):
            if len(distinct_points) < 2:
                skipped[f"{kind}(s) with fewer than 2 distinct points"] += 1
            elif kind == "road_edge":
                road_edges.append(feature_points)
            else:
                mark = line_marks[feature.id]
                road_lines.append(RoadLine(id=str(feature.id), points=feature_points, mark=mark))
        elif kind in rings:
            rings[kind].append(feature_points)
            ring_names[kind].append(f"{kind} {feature.id}")
        elif kind == "stop_sign":
            sign = feature.stop_sign
            stop_signs.append(
                StopSign(
                    id=str(feature.id),
                    position=np.array([sign.position.x, sign.position.y], dtype=np.float64),
                    lanes=tuple(str(lane_id) for lane_id in sign.lane),
                )
            )
    polygons: dict[str, list[Any]] = {}
    for kind in POLYGON_KINDS:
        enough = distinct_point_counts(rings[kind]) >= 3
        if not enough.all():
            skipped[f"{kind}(s) with fewer than 3 distinct points"] += int((~enough).sum())
        kept = np.flatnonzero(enough)
        polygons[kind] = ring_polygons(
            [rings[kind][i] for i in kept], [ring_names[kind][i] for i in kept], source
        )
    if skipped:
        listed = ", ".join(f"{count} {what}" for what, count in skipped.items())
        warnings.warn(f"{source}: skipped degenerate map features: {listed}", stacklevel=2)
    return VectorMap(
        lanes=_lanes(lane_parts),
        crosswalks=polygons["crosswalk"],
        road_edges=road_edges,
        source=source,
        road_lines=road_lines,
        driveways=polygons["driveway"],
        speed_bumps=polygons["speed_bump"],
        stop_signs=stop_signs,
        boundaries_offset=True,
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
    jobs: list[tuple[int, int, Any, int, int]] = []  # lane, side (0 left, 1 right), segment, range
    for i, (feature, points) in enumerate(zip(lane_features, lane_points, strict=True)):
        for side, segments in enumerate(
            (feature.lane.left_boundaries, feature.lane.right_boundaries)
        ):
            for segment in segments:
                start = max(segment.lane_start_index, 0)
                stop = min(segment.lane_end_index + 1, len(points))
                line = lines.get(segment.boundary_feature_id)
                if line is not None and len(line) and start < stop:
                    jobs.append((i, side, segment, start, stop))
    sizes = [stop - start for *_, start, stop in jobs]
    distances: list[FloatArray] = []
    if jobs:  # geometry made only for the lines some segment names
        geometry = _line_geometries(
            {seg.boundary_feature_id: lines[seg.boundary_feature_id] for _, _, seg, _, _ in jobs}
        )
        queried = np.concatenate([lane_points[i][start:stop] for i, _, _, start, stop in jobs])
        targets = np.repeat(
            np.array([geometry[seg.boundary_feature_id] for _, _, seg, _, _ in jobs], dtype=object),
            sizes,
        )
        flat = shapely.distance(shapely.points(queried), targets)
        distances = split_rows(flat, sizes)
    covered: list[tuple[list[Covered], list[Covered]]] = [([], []) for _ in lane_features]
    for (i, side, segment, start, stop), distance in zip(jobs, distances, strict=True):
        covered[i][side].append((segment, start, stop, distance))
    return zip(lane_points, covered, strict=True)


def _line_geometries(lines: dict[int, FloatArray]) -> dict[int, Any]:
    """Each line with points as a shapely LineString (a Point for a line of one point), all
    made in one call per kind."""
    geometry: dict[int, Any] = {}
    for single in (False, True):
        ids = [i for i, line in lines.items() if len(line) and (len(line) == 1) == single]
        if not ids:
            continue
        points = np.concatenate([lines[i] for i in ids])
        if single:
            made = shapely.points(points)
        else:
            owner = np.repeat(np.arange(len(ids)), [len(lines[i]) for i in ids])
            made = shapely.linestrings(points, indices=owner)
        geometry.update(zip(ids, made, strict=True))
    return geometry


@dataclass(frozen=True)
class _LaneParts:
    """What a lane is made of before its boundaries are offset (all lanes together).

    Attributes:
        feature: the ``lane`` map feature.
        centerline: (K, 2) polyline without repeated points (metres, city frame).
        left_half, right_half: (K,) distances (metres) to the left / right boundary; None for a
            side no boundary segment covers (``DEFAULT_LANE_WIDTH_M`` / 2 everywhere).
        left_mark, right_mark: the boundaries' marks.
    """

    feature: Any
    centerline: FloatArray
    left_half: FloatArray | None
    right_half: FloatArray | None
    left_mark: MarkType
    right_mark: MarkType


def _lane_parts(
    feature: Any,
    points: FloatArray,
    sides: tuple[list[Covered], list[Covered]],
    distinct: FloatArray,
    line_marks: dict[int, MarkType],
) -> _LaneParts | None:
    """The parts of a ``lane`` map feature with polyline ``points`` (``distinct``: the points
    that differ from the one before) and its boundary segments' distances per side, or None when
    the polyline has < 2 distinct points."""
    if len(distinct) < 2:
        return None
    halves: list[FloatArray | None] = [None, None]
    marks = [MarkType.NONE, MarkType.NONE]
    if sides[0] or sides[1]:  # half widths are per stored point: keep those ``distinct`` holds
        keep = np.ones(len(points), dtype=bool)
        keep[1:] = (points[1:, 0] != points[:-1, 0]) | (points[1:, 1] != points[:-1, 1])
        for side, covered in enumerate(sides):
            if covered:
                half, marks[side] = _half_widths(len(points), covered, line_marks)
                halves[side] = half[keep]
    return _LaneParts(feature, distinct, halves[0], halves[1], marks[0], marks[1])


def _joined_halves(sizes: list[int], halves: list[FloatArray | None]) -> FloatArray:
    """(sum(sizes),) the lanes' half widths of one side end to end (``_LaneParts``: None is
    ``DEFAULT_LANE_WIDTH_M`` / 2 for each of that lane's ``sizes[i]`` points)."""
    joined = np.full(sum(sizes), DEFAULT_LANE_WIDTH_M / 2)
    start = 0
    for size, half in zip(sizes, halves, strict=True):
        if half is not None:
            joined[start : start + size] = half
        start += size
    return joined


def _lanes(parts: list[_LaneParts]) -> list[Lane]:
    """The Lanes, both boundaries of every lane offset from the centerlines in one call."""
    centerlines = [p.centerline for p in parts]
    sizes = [len(line) for line in centerlines]
    lefts, rights = offset_polylines(
        centerlines,
        [
            _joined_halves(sizes, [p.left_half for p in parts]),
            -_joined_halves(sizes, [p.right_half for p in parts]),
        ],
    )
    lanes = []
    for p, left, right in zip(parts, lefts, rights, strict=True):
        center = p.feature.lane
        lanes.append(
            made_with_fields(
                Lane,
                id=str(p.feature.id),
                centerline=p.centerline,
                left_boundary=left,
                right_boundary=right,
                left_mark=p.left_mark,
                right_mark=p.right_mark,
                lane_type=LANE_TYPES.get(center.type, LaneType.UNKNOWN),
                predecessors=tuple(map(str, center.entry_lanes)),
                successors=tuple(map(str, center.exit_lanes)),
                left_neighbor=(
                    str(center.left_neighbors[0].feature_id) if center.left_neighbors else None
                ),
                right_neighbor=(
                    str(center.right_neighbors[0].feature_id) if center.right_neighbors else None
                ),
                is_intersection=bool(center.interpolating),
            )
        )
    return lanes


def offset_polylines(
    lines: list[FloatArray], distances: Sequence[FloatArray]
) -> list[list[FloatArray]]:
    """``offset_polyline`` of each (K_i, 2) polyline by its K_i distances (metres, to the left),
    for each array of ``distances`` (every polyline's, end to end), in one call over all of
    them: per array, the (K_i, 2) offset polylines.

    The polylines are joined end to start, and their frame (normals and miter factors) is found
    once for every distance. Inner points come out as ``offset_polyline`` moves them; the first
    and last point of each polyline, whose normals the joins bend, move as ``offset_polyline``
    moves end points: along their own segment's normal, the last one with its miter factor.
    """
    if not lines:
        return [[] for _ in distances]
    sizes = np.array([len(line) for line in lines])
    with np.errstate(divide="ignore", invalid="ignore"):  # a join may repeat a point
        frame = offset_frame(np.concatenate(lines))
    last = np.cumsum(sizes) - 1
    first = last - sizes + 1
    x, y = frame.x, frame.y
    for ends, segment_start, is_last in ((first, first, False), (last, last - 1, True)):
        seg_x = x[segment_start + 1] - x[segment_start]
        seg_y = y[segment_start + 1] - y[segment_start]
        seg_length = np.sqrt(seg_x * seg_x + seg_y * seg_y)
        normal_x, normal_y = -(seg_y / seg_length), seg_x / seg_length
        length = np.sqrt(normal_x * normal_x + normal_y * normal_y)
        frame.normal[0, ends], frame.normal[1, ends] = normal_x / length, normal_y / length
        if is_last:
            cos_half = (normal_x / length) * normal_x + (normal_y / length) * normal_y
            frame.miter[ends] = 1.0 / np.maximum(cos_half, 1.0 / MAX_MITER)
        else:
            frame.miter[ends] = 1.0
    return [split_rows(frame.moved(distance), sizes) for distance in distances]


def _half_widths(
    num_points: int, covered: list[Covered], line_marks: dict[int, MarkType]
) -> tuple[FloatArray, MarkType]:
    """(K,) distance (metres) from each of a lane's ``num_points`` polyline points (as stored,
    before repeated points are dropped) to one side's boundary, and that boundary's mark.

    Points no segment covers take the distance interpolated from the covered ones. A segment's
    mark is its ``boundary_type``, else that of the line it names; the side's mark is the one
    covering most points.
    """
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
