"""Waymo Open Motion scenarios from TFRecord files, without TensorFlow.

A file (``*.tfrecord``, a shard ``*.tfrecord-00000-of-01000``) holds one serialized
``Scenario`` protocol buffer per TFRecord record (``mapenc.maps.tfrecord``). The messages are
parsed with the modules generated from the dataset's own ``.proto`` files
(``mapenc.maps.waymo_proto``); this needs ``pip install mapenc[waymo]`` (protobuf, google-crc32c).

What a record becomes (city frame = Waymo's global frame, metres):

- tracks: ``center_x/center_y``, ``heading`` (rad), ``velocity_x/velocity_y`` (m/s) and
  ``valid`` per step, NaN where not valid; box ``length/width`` = median over valid steps; kind
  from ``object_type`` (vehicle, pedestrian, cyclist, other; unset -> unknown); ids as strings.
  ``dt`` is the median step of ``timestamps_seconds``, rounded to the millisecond (the recorded
  stamps jitter by tens of microseconds around 0.1 s).
- scenario metadata: ``scenario_id``, ``current_step`` (``current_time_index``),
  ``ego_track_id`` (``sdc_track_index``) and ``tracks_to_predict``, as track ids.
- lanes: the ``polyline`` is the centerline; successors / predecessors are ``exit_lanes`` /
  ``entry_lanes``, neighbours the first left / right neighbour, ``is_intersection`` the
  ``interpolating`` flag. Each boundary is the centerline offset by the distance, point by point,
  to the road line or road edge that the lane's boundary segments name; points no segment covers
  take the distance interpolated from the covered ones, and a side without segments takes half of
  ``DEFAULT_LANE_WIDTH_M``. Half widths are clipped to ``HALF_WIDTH_RANGE_M``. The boundary's mark
  is the type of the segments covering most points (a road edge is a curb), ``none`` without
  segments. On turns tighter than the half width the offset folds: the lane polygon is mended
  with ``make_valid``.
- road lines (``VectorMap.road_lines`` with their mark types), road edges, crosswalks, driveways
  and speed bumps (polygons), stop signs.

Degenerate features (a lane or edge with fewer than 2 distinct points, a polygon with fewer than
3) occur in real maps: they are skipped with one warning per scenario. A broken file raises
MapFormatError naming the file, the record and what failed (CRC, length, protobuf decoding,
inconsistent content).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from mapenc.errors import MapencError, MapFormatError
from mapenc.maps.geojson import DEFAULT_LANE_WIDTH_M, offset_polyline
from mapenc.maps.jsonparse import ring_polygon
from mapenc.maps.tfrecord import iter_records, write_records
from mapenc.maps.tracks import default_box_size
from mapenc.maps.types import (
    FloatArray,
    Lane,
    LaneType,
    MarkType,
    RoadLine,
    Scenario,
    StopSign,
    Track,
    VectorMap,
)

KINDS = {1: "vehicle", 2: "pedestrian", 3: "cyclist", 4: "other"}
UNKNOWN_KIND = "unknown"
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


def read_waymo_scenario(path: Path, index: int | None = None) -> Scenario:
    """The scenario in record ``index`` of a TFRecord file (source ``FILE#index``), or with
    ``index=None`` the one scenario of a file that holds exactly one (source ``FILE``).

    MapFormatError for an empty file, a shard of many without ``index`` (stream those with
    ``iter_waymo_scenarios``), an index past the last record, and any broken record on the way.
    """
    proto = _scenario_proto(path)
    records = iter_records(path)
    if index is not None:
        count = 0
        for count, payload in enumerate(records, start=1):
            if count - 1 == index:
                return scenario_from_record(proto, payload, path, index, source=f"{path}#{index}")
        raise MapFormatError(path, f"no record {index}: the file holds {count}")
    first = next(records, None)
    if first is None:
        raise MapFormatError(path, "empty: no TFRecord record, so no scenario")
    if next(records, None) is not None:
        raise MapFormatError(
            path,
            "holds more than one scenario (a shard): name one as FILE#i (from 0) or stream them "
            "with mapenc.maps.iter_scenarios",
        )
    return scenario_from_record(proto, first, path, 0, source=str(path))


def iter_waymo_scenarios(path: Path) -> Iterator[Scenario]:
    """Every scenario of a TFRecord file, in order, one in memory at a time.

    ``Scenario.source`` is the file for a file of one scenario, else ``FILE#i`` for record i.
    MapFormatError for an empty file and for any broken record (when it is reached).
    """
    proto = _scenario_proto(path)
    records = iter_records(path)
    current = next(records, None)
    if current is None:
        raise MapFormatError(path, "empty: no TFRecord record, so no scenario")
    index = 0
    while current is not None:
        # Read one record ahead, to know whether the file holds a single scenario; a broken next
        # record is reported after this good one has been handed out.
        broken: MapFormatError | None = None
        try:
            following = next(records, None)
        except MapFormatError as err:
            broken, following = err, None
        single = index == 0 and following is None and broken is None
        source = str(path) if single else f"{path}#{index}"
        yield scenario_from_record(proto, current, path, index, source=source)
        if broken is not None:
            raise broken
        current, index = following, index + 1


def _scenario_proto(path: Path) -> ModuleType:
    """The generated ``scenario_pb2`` module; MapencError naming ``path`` without protobuf."""
    try:
        from google.protobuf import runtime_version

        from mapenc.maps.waymo_proto import scenario_pb2
    except ImportError as err:
        raise MapencError(
            f"{path}: reading Waymo scenarios needs protobuf>=7.35.1 ({err}); "
            "install it with `pip install mapenc[waymo]`"
        ) from None
    except runtime_version.VersionError as err:
        raise MapencError(
            f"{path}: the installed protobuf is too old for the Waymo reader ({err}); "
            "install a newer one with `pip install -U mapenc[waymo]`"
        ) from None
    return scenario_pb2


def scenario_from_record(
    proto: ModuleType, payload: bytes, path: Path, index: int, source: str
) -> Scenario:
    """The Scenario in one record's payload; MapFormatError naming ``path`` and record ``index``."""
    from google.protobuf.message import DecodeError

    where = f"record {index}"
    try:
        message = proto.Scenario.FromString(payload)
    except DecodeError as err:
        raise MapFormatError(
            path, f"{where}: not a Waymo Scenario protocol buffer ({err})"
        ) from None
    try:
        return _scenario(message, source)
    except MapencError as err:
        raise MapFormatError(path, f"{where}: {err}") from None


def _scenario(message: Any, source: str) -> Scenario:
    """Scenario from a parsed ``Scenario`` message (see the module docstring)."""
    stamps = np.asarray(message.timestamps_seconds, dtype=np.float64)
    dt = _step_seconds(stamps)
    tracks = [_track(track, len(stamps)) for track in message.tracks]
    ids = [track.id for track in tracks]
    if len(set(ids)) != len(ids):
        repeated = next(i for i, count in Counter(ids).items() if count > 1)
        raise MapencError(f"track id {repeated} appears twice")

    def track_id(index: int, what: str) -> str:
        if not 0 <= index < len(tracks):
            raise MapencError(f"{what} {index} is not a track index (0..{len(tracks) - 1})")
        return ids[index]

    current = message.current_time_index if message.HasField("current_time_index") else None
    if current is not None and not 0 <= current < len(stamps):
        raise MapencError(f"current_time_index {current} outside 0..{len(stamps) - 1}")
    return Scenario(
        map=_vector_map(message.map_features, source),
        dt=dt,
        tracks=tracks,
        source=source,
        scenario_id=message.scenario_id or None,
        current_step=current,
        ego_track_id=(
            track_id(message.sdc_track_index, "sdc_track_index")
            if message.HasField("sdc_track_index")
            else None
        ),
        tracks_to_predict=tuple(
            track_id(required.track_index, "tracks_to_predict index")
            for required in message.tracks_to_predict
        ),
    )


def _step_seconds(stamps: FloatArray) -> float:
    """Seconds per step from (T,) timestamps: the median step, rounded to the millisecond."""
    if len(stamps) < 2:
        raise MapencError(f"{len(stamps)} timestamps, at least 2 are needed for a time step")
    steps = np.diff(stamps)
    if not np.isfinite(stamps).all() or (steps <= 0).any():
        raise MapencError("timestamps_seconds are not finite and increasing")
    dt = round(float(np.median(steps)), 3)
    if np.abs(steps - dt).max() > 0.5 * dt:
        raise MapencError(f"timestamps_seconds are not evenly spaced (median step {dt} s)")
    return dt


def _track(track: Any, num_steps: int) -> Track:
    """Track from a ``Track`` message with ``num_steps`` states (see the module docstring)."""
    if len(track.states) != num_steps:
        raise MapencError(
            f"track {track.id} has {len(track.states)} states for {num_steps} timestamps"
        )
    values = np.array(
        [
            (s.center_x, s.center_y, s.heading, s.velocity_x, s.velocity_y, s.length, s.width)
            for s in track.states
        ],
        dtype=np.float64,
    ).reshape(num_steps, 7)
    valid = np.array([state.valid for state in track.states], dtype=bool)
    if not np.isfinite(values[valid]).all():
        raise MapencError(f"track {track.id}: NaN or inf values in a valid state")
    values[~valid] = np.nan
    kind = KINDS.get(track.object_type, UNKNOWN_KIND)
    if valid.any():
        length, width = (float(v) for v in np.median(values[valid, 5:7], axis=0))
    else:
        length, width = default_box_size(kind)
    return Track(
        id=str(track.id),
        kind=kind,
        xy=values[:, 0:2].copy(),
        heading=values[:, 2].copy(),
        valid=valid,
        length=length,
        width=width,
        velocity=values[:, 3:5].copy(),
    )


def _points(map_points: Sequence[Any]) -> FloatArray:
    """(K, 2) float64 [x, y] of repeated ``MapPoint`` (z dropped); MapencError if not finite."""
    points = np.array([(p.x, p.y) for p in map_points], dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise MapencError("NaN or inf map coordinates")
    return points


def _distinct(points: FloatArray) -> NDArray[np.bool_]:
    """(K,) mask keeping each point that differs from the one before."""
    return np.concatenate([[True], (np.diff(points, axis=0) != 0).any(axis=1)])[: len(points)]


def _vector_map(features: Sequence[Any], source: str) -> VectorMap:
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
_OBJECT_TYPES = {kind: code for code, kind in KINDS.items()}
_ROAD_LINE_TYPES = {
    MarkType.DASHED: 1,  # broken single white
    MarkType.SOLID: 2,  # solid single white
    MarkType.DOUBLE_SOLID: 7,  # solid double yellow
    MarkType.DOUBLE_DASHED: 5,  # broken double yellow
    MarkType.SOLID_DASHED: 8,  # passing double yellow
    MarkType.DASHED_SOLID: 8,
}


def scenario_to_proto(scenario: Scenario) -> Any:
    """A Waymo ``Scenario`` message holding ``scenario`` (the reader's inverse, up to ids).

    Waymo ids are integers: tracks get their index in ``scenario.tracks`` (kept when every id is
    an integer), map features consecutive numbers. Lane boundaries become road lines (road edges
    for curbs) named by boundary segments over the whole lane; kinds without a Waymo type are
    "other". Needs protobuf (``pip install mapenc[waymo]``).
    """
    proto = _scenario_proto(Path(scenario.source or "scenario"))
    message = proto.Scenario(scenario_id=scenario.scenario_id or "")
    message.timestamps_seconds.extend(scenario.dt * np.arange(scenario.num_steps))
    if scenario.current_step is not None:
        message.current_time_index = scenario.current_step
    numeric = all(track.id.lstrip("-").isdigit() for track in scenario.tracks)
    for index, track in enumerate(scenario.tracks):
        out = message.tracks.add(
            id=int(track.id) if numeric else index,
            object_type=_OBJECT_TYPES.get(track.kind, 4),
        )
        velocity = track.velocity if track.velocity is not None else np.zeros_like(track.xy)
        for t, valid in enumerate(track.valid):
            state = out.states.add(length=track.length, width=track.width, valid=bool(valid))
            if valid:
                state.center_x, state.center_y = track.xy[t]
                state.heading = track.heading[t]
                state.velocity_x, state.velocity_y = velocity[t]
    track_index = {track.id: i for i, track in enumerate(scenario.tracks)}
    if scenario.ego_track_id is not None:
        message.sdc_track_index = track_index[scenario.ego_track_id]
    for track_id in scenario.tracks_to_predict:
        message.tracks_to_predict.add(track_index=track_index[track_id])
    _add_map_features(message, scenario.map)
    return message


def _add_map_features(message: Any, vector_map: VectorMap) -> None:
    """Append ``vector_map``'s elements to ``message.map_features`` (ids 0, 1, ...)."""
    lane_ids = {lane.id: i for i, lane in enumerate(vector_map.lanes)}
    next_id = len(lane_ids)

    def add_feature() -> Any:
        nonlocal next_id
        next_id += 1
        return message.map_features.add(id=next_id - 1)

    def add_points(points: Any, xy: FloatArray) -> None:
        for x, y in xy:
            points.add(x=x, y=y, z=0.0)

    lanes = [message.map_features.add(id=i) for i in range(len(lane_ids))]
    for feature, lane in zip(lanes, vector_map.lanes, strict=True):
        center = feature.lane
        add_points(center.polyline, lane.centerline)
        center.entry_lanes.extend(lane_ids[i] for i in lane.predecessors if i in lane_ids)
        center.exit_lanes.extend(lane_ids[i] for i in lane.successors if i in lane_ids)
        center.interpolating = lane.is_intersection
        center.type = 3 if lane.lane_type == LaneType.BIKE else 2
        for boundaries, line, mark in (
            (center.left_boundaries, lane.left_boundary, lane.left_mark),
            (center.right_boundaries, lane.right_boundary, lane.right_mark),
        ):
            boundary = add_feature()
            if mark == MarkType.CURB:
                add_points(boundary.road_edge.polyline, line)
            else:
                boundary.road_line.type = _ROAD_LINE_TYPES.get(mark, 0)
                add_points(boundary.road_line.polyline, line)
            boundaries.add(
                lane_start_index=0,
                lane_end_index=len(lane.centerline) - 1,
                boundary_feature_id=boundary.id,
                boundary_type=boundary.road_line.type,
            )
    for crosswalk in vector_map.crosswalks:
        add_points(add_feature().crosswalk.polygon, np.asarray(crosswalk.exterior.coords)[:-1])
    for edge in vector_map.road_edges:
        add_points(add_feature().road_edge.polyline, edge)


def write_waymo_shard(path: Path, scenarios: Iterable[Scenario]) -> Path:
    """Write ``scenarios`` as a TFRecord file of Waymo ``Scenario`` records; return the path."""
    return write_records(path, (scenario_to_proto(sc).SerializeToString() for sc in scenarios))
