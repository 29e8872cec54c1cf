"""Argoverse 2 readers: ``log_map_archive_*.json`` maps and scenario / sensor-log track parquets.

Maps (city frame, metres; z dropped): lane segments with boundaries and mark types (colour
dropped, ``DOUBLE_SOLID_YELLOW`` -> ``MarkType.DOUBLE_SOLID``), drivable areas (union of the
``area_boundary`` rings, closed implicitly, built when first read; the raster fills the rings'
polygons) and pedestrian crossings (``edge1`` + reversed ``edge2``). Sensor-log maps have no
``centerline``: it is derived midway between the boundaries.
A lane segment's ``id`` that is missing or ``null`` counts as no id: the segment takes the key it
is filed under in ``lane_segments`` (the id successors name), the same rule as the GeoJSON reader's
fall-back from ``properties.id`` to the feature's ``id``.

Tracks need pyarrow (``pip install mapenc[av2]``), imported only when a parquet is read:
- motion-forecasting ``scenario_*.parquet``: steps 0..109 at 10 Hz, ``object_type`` as the kind,
  ``object_category`` as the category, the focal track kept; AV2 gives no box sizes, so
  ``mapenc.maps.tracks.DEFAULT_BOX_SIZE_M`` supplies them per kind;
- sensor-log ``DERIVED_tracks_city_frame.parquet``: one step per lidar sweep, sizes from the
  annotations, the map in the log's ``map/`` folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mapenc.errors import MapencError, ScenarioFormatError
from mapenc.geometry.ragged import split_rows
from mapenc.maps.io import SENSOR_LOG_TRACKS, find_map_in_folder
from mapenc.maps.jsonparse import (
    format_errors,
    optional_ids,
    parse_json,
    polyline,
    require,
    require_dict,
    require_list,
)
from mapenc.maps.tracks import Factorized, TrackRows, as_time_steps, build_tracks, factorize
from mapenc.maps.types import (
    FloatArray,
    Lane,
    LaneType,
    MarkType,
    Scenario,
    UnionOf,
    VectorMap,
    distinct_point_counts,
    made_with_fields,
    ring_polygons,
)
from mapenc.maps.types import centerline_from_boundaries as derive_centerline
from mapenc.maps.types import centerlines_from_boundaries as derive_centerlines

AV2_DT_S = 0.1

# AV2 mark types are "<PATTERN>_<COLOUR>" (or NONE / UNKNOWN); mapenc keeps the pattern only.
_MARK_COLOURS = ("_WHITE", "_YELLOW", "_BLUE")
_MARK_PATTERNS: dict[str, MarkType] = {
    "SOLID": MarkType.SOLID,
    "DASHED": MarkType.DASHED,
    "DOUBLE_SOLID": MarkType.DOUBLE_SOLID,
    "DOUBLE_DASH": MarkType.DOUBLE_DASHED,
    "SOLID_DASH": MarkType.SOLID_DASHED,
    "DASH_SOLID": MarkType.DASHED_SOLID,
    "NONE": MarkType.NONE,
    "UNKNOWN": MarkType.UNKNOWN,
}
_LANE_TYPES = {"VEHICLE": LaneType.VEHICLE, "BIKE": LaneType.BIKE, "BUS": LaneType.BUS}

# Sensor-log annotation categories -> the forecasting dataset's object types; others lower-cased.
_SENSOR_CATEGORY_KINDS: dict[str, str] = {
    **dict.fromkeys(
        [
            "REGULAR_VEHICLE",
            "LARGE_VEHICLE",
            "BOX_TRUCK",
            "TRUCK",
            "TRUCK_CAB",
            "VEHICULAR_TRAILER",
            "EGO_VEHICLE",
        ],
        "vehicle",
    ),
    **dict.fromkeys(["BUS", "SCHOOL_BUS", "ARTICULATED_BUS"], "bus"),
    **dict.fromkeys(["PEDESTRIAN", "STROLLER", "WHEELCHAIR", "OFFICIAL_SIGNALER"], "pedestrian"),
    **dict.fromkeys(["BICYCLIST", "WHEELED_RIDER"], "cyclist"),
    "MOTORCYCLIST": "motorcyclist",
    "BICYCLE": "riderless_bicycle",
    **dict.fromkeys(
        ["BOLLARD", "CONSTRUCTION_CONE", "CONSTRUCTION_BARREL", "MESSAGE_BOARD_TRAILER"],
        "construction",
    ),
}


def av2_mark_type(value: Any) -> MarkType:
    """MarkType of an AV2 mark-type string such as ``DASHED_YELLOW``; MapencError if unknown."""
    if isinstance(value, str) and value in _MARKS_SEEN:
        return _MARKS_SEEN[value]
    pattern = str(value)
    for colour in _MARK_COLOURS:
        pattern = pattern.removesuffix(colour)
    if pattern not in _MARK_PATTERNS:
        raise MapencError(f"unknown lane mark type {value!r}")
    if isinstance(value, str):
        _MARKS_SEEN[value] = _MARK_PATTERNS[pattern]
    return _MARK_PATTERNS[pattern]


# Mark-type strings already read (a map names a few kinds, thousands of times).
_MARKS_SEEN: dict[str, MarkType] = {}


def _points(record: Mapping[str, Any], key: str, what: str) -> FloatArray:
    """(K, 2) polyline from a list of ``{x, y, z}`` under ``record[key]``."""
    raw = require_list(record, key, what)
    try:
        xy = [(p["x"], p["y"]) for p in raw]
    except (KeyError, TypeError):
        raise MapencError(f"{what}: {key!r} must be a list of {{x, y, z}} points") from None
    return polyline(xy, f"{what} {key}")


def _optional_id(value: Any) -> str | None:
    return None if value is None else str(value)


# A lane segment's point lists: left boundary, right boundary, centerline (may be absent).
_LANE_LINES = ("left_lane_boundary", "right_lane_boundary", "centerline")
LanePolylines = tuple[FloatArray, FloatArray, FloatArray | None]


def _lane_polylines(segments: Mapping[str, Any]) -> list[LanePolylines] | None:
    """Each lane segment's (left, right, centerline or None when absent) as (K, 2) arrays,
    converted in one pass over every segment (one array for all points). None when any point
    list is malformed: each segment is then read on its own, for the error that names it."""
    lists: list[list[Any] | None] = []
    try:
        for record in segments.values():
            if not all(name in record for name in _LANE_LINES[:2]):
                return None  # a boundary is missing
            given = [record[name] for name in _LANE_LINES if name in record]
            if not all(isinstance(value, list) for value in given):
                return None
            lists += given if len(given) == len(_LANE_LINES) else [*given, None]
        present = [value for value in lists if value is not None]
        flat = np.asarray(
            [(p["x"], p["y"]) for value in present for p in value], dtype=np.float64
        ).reshape(-1, 2)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    sizes = [len(value) for value in present]
    if min(sizes, default=2) < 2 or not np.isfinite(flat).all():
        return None
    arrays = iter(split_rows(flat, sizes))
    converted = [None if value is None else next(arrays) for value in lists]
    return [
        (converted[i], converted[i + 1], converted[i + 2])  # type: ignore[misc]
        for i in range(0, len(converted), len(_LANE_LINES))
    ]


def _with_centerlines(lanes: list[LanePolylines] | None) -> list[LanePolylines] | None:
    """``lanes`` with the centerlines that are absent derived from the boundaries, all at once."""
    if lanes is None:
        return None
    missing = [i for i, (_, _, given) in enumerate(lanes) if given is None]
    derived = derive_centerlines([lanes[i][0] for i in missing], [lanes[i][1] for i in missing])
    for i, centerline in zip(missing, derived, strict=True):
        lanes[i] = (lanes[i][0], lanes[i][1], centerline)
    return lanes


def _lane(
    record: Mapping[str, Any], key: str, what: str, polylines: LanePolylines | None = None
) -> Lane:
    """One lane segment filed under ``key``; its id is ``record["id"]``, else (missing or null)
    ``key``. The centerline is derived from the boundaries when absent. ``polylines``: its
    points already converted (``_lane_polylines``), else they are read here."""
    if polylines is None:
        left = _points(record, "left_lane_boundary", what)
        right = _points(record, "right_lane_boundary", what)
        given = _points(record, "centerline", what) if "centerline" in record else None
    else:
        left, right, given = polylines
    centerline = derive_centerline(left, right) if given is None else given
    lane_type = str(require(record, "lane_type", what))
    if lane_type not in _LANE_TYPES:
        raise MapencError(f"{what}: unknown lane_type {lane_type!r}")
    return made_with_fields(
        Lane,
        id=_optional_id(record.get("id")) or key,
        centerline=centerline,
        left_boundary=left,
        right_boundary=right,
        left_mark=av2_mark_type(require(record, "left_lane_mark_type", what)),
        right_mark=av2_mark_type(require(record, "right_lane_mark_type", what)),
        lane_type=_LANE_TYPES[lane_type],
        predecessors=optional_ids(record, "predecessors", what),
        successors=optional_ids(record, "successors", what),
        left_neighbor=_optional_id(record.get("left_neighbor_id")),
        right_neighbor=_optional_id(record.get("right_neighbor_id")),
        is_intersection=bool(require(record, "is_intersection", what)),
    )


def read_av2_map(path: Path) -> VectorMap:
    """Read an AV2 ``log_map_archive_*.json`` into a VectorMap (city frame, metres).

    Raises MapFormatError naming the file and the element for malformed JSON, missing keys,
    unknown mark or lane types, NaN/inf coordinates and polylines of fewer than 2 points.
    Self-intersecting drivable-area or crossing polygons are repaired with a warning.
    """
    doc = parse_json(path)
    with format_errors(path):
        segments = require_dict(doc, "lane_segments", "map")
        converted: list[LanePolylines | None] = [None] * len(segments)
        converted = list(_with_centerlines(_lane_polylines(segments)) or converted)
        lanes = [
            _lane(seg, key, f"lane segment {key}", polylines)
            for (key, seg), polylines in zip(segments.items(), converted, strict=True)
        ]
        area_names = [f"drivable area {key}" for key in require_dict(doc, "drivable_areas", "map")]
        area_rings = [
            _points(area, "area_boundary", name)
            for name, area in zip(area_names, doc["drivable_areas"].values(), strict=True)
        ]
        crossings = require_dict(doc, "pedestrian_crossings", "map")
        crossing_names = [f"pedestrian crossing {key}" for key in crossings]
        crossing_rings = [
            _crossing_ring(crossing, name)
            for name, crossing in zip(crossing_names, crossings.values(), strict=True)
        ]
        areas = _polygons(area_rings, area_names, path)
        crosswalks = _polygons(crossing_rings, crossing_names, path)
        vector_map = VectorMap(lanes=lanes, crosswalks=crosswalks, source=str(path))
        if areas:  # their union is built when the area is read: a raster fills the areas
            vector_map.load_drivable_area_when_read(UnionOf(tuple(areas)), parts=areas)
        return vector_map


def _crossing_ring(record: Mapping[str, Any], what: str) -> FloatArray:
    """Crossing ring: ``edge1`` followed by ``edge2`` reversed (both edges run alike)."""
    edge1 = _points(record, "edge1", what)
    edge2 = _points(record, "edge2", what)
    return np.concatenate([edge1, edge2[::-1]])


def _polygons(rings: list[FloatArray], names: list[str], path: Path) -> list[Any]:
    """Polygons of the rings, built and checked together (invalid ones repaired, one warning);
    MapencError naming the first ring with fewer than 3 distinct points."""
    few = np.flatnonzero(distinct_point_counts(rings) < 3)
    if len(few):
        raise MapencError(f"{names[few[0]]}: a polygon ring needs at least 3 distinct points")
    return ring_polygons(rings, names, str(path))


def read_av2_scenario(path: Path) -> Scenario:
    """Read an AV2 scenario parquet (or its folder) and the map JSON beside it.

    ``path`` is a ``scenario_*.parquet`` of the motion-forecasting dataset, a sensor log's
    ``DERIVED_tracks_city_frame.parquet``, or a folder holding exactly one of them. Raises
    ScenarioFormatError for missing columns, null or non-finite values and repeated
    (track, step) rows; MapencError when pyarrow is not installed.
    """
    parquet = _scenario_parquet(Path(path))
    columns = _read_parquet(parquet)
    with format_errors(parquet, ScenarioFormatError):
        if "track_uuid" in columns:
            rows, num_steps, dt = _sensor_log_rows(columns)
            focal = None
        else:
            rows, num_steps, dt = _forecasting_rows(columns)
            focal = str(columns["focal_track_id"][0])
        tracks = build_tracks(rows, num_steps)
    folder = parquet.parent
    if not any(folder.glob("log_map_archive_*.json")) and (folder / "map").is_dir():
        folder = folder / "map"
    vector_map = read_av2_map(find_map_in_folder(folder))
    if focal is not None and focal not in {t.id for t in tracks}:
        raise ScenarioFormatError(parquet, f"focal track {focal!r} has no rows")
    return Scenario(vector_map, dt, tracks, focal_track_id=focal, source=str(path))


def _scenario_parquet(path: Path) -> Path:
    """The track parquet named by ``path`` (itself, or the one inside a folder)."""
    if not path.is_dir():
        return path
    found = sorted(path.glob("scenario_*.parquet")) + sorted(path.glob(SENSOR_LOG_TRACKS))
    if len(found) != 1:
        raise ScenarioFormatError(
            path, f"expected one scenario_*.parquet or {SENSOR_LOG_TRACKS}, found {len(found)}"
        )
    return found[0]


# A parquet column as read: numbers as a numpy array, strings ``Factorized``.
Column = NDArray[Any] | Factorized


def _read_parquet(path: Path) -> dict[str, Column]:
    """Every column of the parquet file: numbers as numpy arrays, strings dictionary-encoded by
    Arrow (``Factorized``: distinct strings in order of first appearance, no Python string per
    row); nulls refused."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MapencError(
            f"{path}: reading AV2 tracks needs pyarrow; install it with `pip install mapenc[av2]`"
        ) from None
    if not path.is_file():
        raise ScenarioFormatError(path, "no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ScenarioFormatError(path, f"not a readable parquet file ({err})") from None
    if table.num_rows == 0:
        raise ScenarioFormatError(path, "no rows")
    for name in table.column_names:
        if table.column(name).null_count:
            raise ScenarioFormatError(path, f"column {name!r} has null values")
    return {name: _column(table.column(name)) for name in table.column_names}


def _column(column: Any) -> Column:
    """A pyarrow ChunkedArray as ``_read_parquet`` hands it out."""
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        encoded = column.combine_chunks().dictionary_encode()
        return Factorized(
            encoded.dictionary.to_numpy(zero_copy_only=False),
            encoded.indices.to_numpy().astype(np.intp),
        )
    return column.to_numpy()


def _require_columns(columns: Mapping[str, Column], names: list[str]) -> None:
    missing = [n for n in names if n not in columns]
    if missing:
        raise MapencError(f"missing columns {missing}")


def _numeric(columns: Mapping[str, Column], name: str) -> NDArray[Any]:
    """A column that must hold numbers; MapencError for one of strings."""
    column = columns[name]
    if isinstance(column, Factorized):
        raise MapencError(f"column {name!r} must be numeric")
    return column


def _as_float(columns: Mapping[str, Column], *names: str) -> FloatArray:
    """(N, len(names)) float64 from numeric columns."""
    try:
        return np.stack([_numeric(columns, n).astype(np.float64) for n in names], axis=1)
    except (TypeError, ValueError):
        raise MapencError(f"columns {list(names)} must be numeric") from None


def _lower_case(values: Column) -> NDArray[np.str_]:
    """(N,) lower-case strings of a column of N values (strings as read, or anything ``str``
    takes), converted once per distinct value."""
    distinct, index = factorize(values)
    return np.char.lower(distinct.astype(str))[index]


def _forecasting_rows(columns: Mapping[str, Column]) -> tuple[TrackRows, int | None, float]:
    """Rows, step count (``num_timestamps``, 110, when given) and dt of a forecasting scenario."""
    _require_columns(
        columns,
        [
            "track_id",
            "timestep",
            "position_x",
            "position_y",
            "heading",
            "velocity_x",
            "velocity_y",
            "object_type",
            "object_category",
            "focal_track_id",
        ],
    )
    num_steps = None
    if "num_timestamps" in columns:
        counts = as_time_steps(_as_float(columns, "num_timestamps")[:, 0], "num_timestamps")
        num_steps = int(counts.max())
    rows = TrackRows(
        track_id=columns["track_id"],
        step=as_time_steps(_as_float(columns, "timestep")[:, 0], "timestep"),
        xy=_as_float(columns, "position_x", "position_y"),
        heading=_as_float(columns, "heading")[:, 0],
        kind=_lower_case(columns["object_type"]),
        velocity=_as_float(columns, "velocity_x", "velocity_y"),
        category=_as_float(columns, "object_category")[:, 0].astype(np.int64),
    )
    return rows, num_steps, AV2_DT_S


def _sensor_log_rows(columns: Mapping[str, Column]) -> tuple[TrackRows, int | None, float]:
    """Rows, step count and dt of a sensor log: one step per distinct lidar timestamp."""
    _require_columns(
        columns,
        [
            "timestamp_ns",
            "track_uuid",
            "category",
            "x_city_m",
            "y_city_m",
            "yaw_city_rad",
            "length_m",
            "width_m",
        ],
    )
    times, step = np.unique(_numeric(columns, "timestamp_ns").astype(np.int64), return_inverse=True)
    if len(times) < 2:
        raise MapencError("a sensor log needs at least 2 timestamps")
    categories, category_index = factorize(columns["category"])
    kinds = np.array([_SENSOR_CATEGORY_KINDS.get(str(c), str(c).lower()) for c in categories])
    rows = TrackRows(
        track_id=columns["track_uuid"],
        step=step.astype(np.int64),
        xy=_as_float(columns, "x_city_m", "y_city_m"),
        heading=_as_float(columns, "yaw_city_rad")[:, 0],
        kind=kinds[category_index],
        size=_as_float(columns, "length_m", "width_m"),
    )
    return rows, len(times), float(np.median(np.diff(times))) * 1e-9
