"""The generic scene format: a GeoJSON map plus a CSV of tracks, for users' own data.

``map.geojson`` is a FeatureCollection whose coordinates are city-frame metres (not WGS84, despite
GeoJSON's default). Each feature has ``properties.type``:

- ``lane``: LineString centerline in the driving direction. Optional properties: ``id`` (else the
  feature's ``id``, else its index among the lanes; ``null`` counts as no id, and an index taken
  by another lane's id gets ``_`` appended), ``left_boundary`` / ``right_boundary`` (coordinate lists,
  both or neither), ``width`` (metres, default 3.5; used only without boundaries: the centerline
  is offset by ``width / 2`` to each side), ``left_mark`` / ``right_mark`` (``MarkType`` values,
  e.g. ``"solid"``), ``lane_type`` (``LaneType`` values), ``predecessors`` / ``successors``,
  ``left_neighbor`` / ``right_neighbor``, ``is_intersection``.
- ``crosswalk``: Polygon.
- ``drivable_area``: Polygon or MultiPolygon; all of them are united. Without any, the drivable
  area is the union of the lane polygons.
- ``road_edge``: LineString or MultiLineString (curbs, road borders).

The top-level ``properties`` may hold ``dt`` (seconds per step), ``heading_units`` (``"rad"``, the
default, or ``"deg"``), ``focal_track_id`` and ``projection`` (``{"crs": PROJ string,
"origin_lonlat": [lon, lat]}``).

Polygon rings that are not closed are closed with a warning; self-intersecting rings are repaired
with shapely ``make_valid`` and a warning (``mapenc.maps.types.repair_polygon``).

``tracks.csv`` has the columns ``track_id,timestep,x,y,heading,kind`` and optionally ``vx,vy``,
``length,width`` (each pair both or neither) and ``category`` (integer). One row per observed
(track, step), in any order: each track's rows are sorted by time step, so its kind and category
come from its earliest row; tracks are listed in order of first appearance in the file. Missing
steps are invalid; two rows for one (track, step) are an error naming both lines. Headings are
radians unless ``heading_units`` says degrees: a radian heading beyond ±2π is refused as degrees
or garbage. Without ``length,width``, boxes get per-kind defaults
(``mapenc.maps.tracks.DEFAULT_BOX_SIZE_M``).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from mapenc.errors import MapencError, MapFormatError, ScenarioFormatError
from mapenc.maps.jsonparse import (
    format_errors,
    number_pair,
    parse_json,
    polyline,
    require,
    require_dict,
    require_list,
    ring_polygon,
)
from mapenc.maps.tracks import build_tracks
from mapenc.maps.tracks_csv import HEADING_UNITS, read_tracks_csv, write_tracks_csv
from mapenc.maps.types import (
    FloatArray,
    Lane,
    LaneType,
    MarkType,
    Projection,
    Scenario,
    VectorMap,
)

MAP_FILE = "map.geojson"
TRACKS_FILE = "tracks.csv"
DEFAULT_LANE_WIDTH_M = 3.5
# A miter at a sharp bend would put an offset boundary far from the centerline: cap its factor.
_MAX_MITER = 2.0

EnumT = TypeVar("EnumT", MarkType, LaneType)


@dataclass
class _MapParts:
    """Map elements collected feature by feature."""

    lanes: list[Lane] = field(default_factory=list)
    lane_ids: set[str] = field(default_factory=set)  # every lane id given in the file
    crosswalks: list[BaseGeometry] = field(default_factory=list)
    areas: list[BaseGeometry] = field(default_factory=list)
    road_edges: list[FloatArray] = field(default_factory=list)


def read_geojson_map(path: Path) -> VectorMap:
    """Read a generic-format GeoJSON FeatureCollection into a VectorMap (city frame, metres).

    Raises MapFormatError naming the file and the feature for malformed JSON, a document that is
    not a FeatureCollection, unknown feature types, wrong geometry types, NaN/inf coordinates,
    polylines of fewer than 2 points and rings of fewer than 3 distinct points.
    """
    return _map_from_collection(_feature_collection(path), path)


def read_generic_scenario(
    map_path: Path, tracks_path: Path, dt: float | None, heading_units: str | None = None
) -> Scenario:
    """Read a generic scene: the GeoJSON map and the tracks CSV.

    ``dt`` (seconds per step) overrides the GeoJSON's top-level ``properties.dt``; with neither,
    ScenarioFormatError. ``heading_units`` ("rad" or "deg") overrides ``properties.heading_units``
    (default "rad"). Bad CSVs (missing columns, non-numeric values, fractional or negative
    steps, repeated (track_id, timestep), headings beyond a full turn) raise ScenarioFormatError
    naming the file, the line and the column.
    """
    doc = _feature_collection(map_path)
    vector_map = _map_from_collection(doc, map_path)
    props = doc.get("properties") or {}
    step_s = props.get("dt") if dt is None else dt
    if step_s is None:
        raise ScenarioFormatError(
            map_path, "no time step: give dt or set the GeoJSON's top-level properties.dt"
        )
    if isinstance(step_s, bool) or not isinstance(step_s, int | float) or not 0 < step_s < math.inf:
        raise ScenarioFormatError(
            map_path, f"dt must be a positive number of seconds, got {step_s!r}"
        )
    units = props.get("heading_units", "rad") if heading_units is None else heading_units
    if units not in HEADING_UNITS:
        raise ScenarioFormatError(
            map_path, f"heading units must be one of {list(HEADING_UNITS)}, got {units!r}"
        )
    with format_errors(tracks_path, ScenarioFormatError):
        tracks = build_tracks(read_tracks_csv(tracks_path, units))
    focal = props.get("focal_track_id")
    if focal is not None and str(focal) not in {t.id for t in tracks}:
        raise ScenarioFormatError(tracks_path, f"focal track {focal!r} has no rows")
    return Scenario(
        vector_map,
        float(step_s),
        tracks,
        focal_track_id=None if focal is None else str(focal),
        source=str(tracks_path),
    )


def _feature_collection(path: Path) -> dict[str, Any]:
    doc = parse_json(path)
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise MapFormatError(path, "not a GeoJSON FeatureCollection (top-level type)")
    if not isinstance(doc.get("features"), list):
        raise MapFormatError(path, "FeatureCollection without a 'features' list")
    if not isinstance(doc.get("properties") or {}, dict):
        raise MapFormatError(path, "top-level 'properties' must be an object")
    return doc


def _map_from_collection(doc: Mapping[str, Any], path: Path) -> VectorMap:
    parts = _MapParts(lane_ids=_given_lane_ids(doc["features"]))
    with format_errors(path):
        for index, feature in enumerate(doc["features"]):
            what = f"feature {index}"
            props = require_dict(feature, "properties", what)
            kind = require(props, "type", what)
            if kind not in _FEATURE_READERS:
                raise MapencError(
                    f"{what}: unknown properties.type {kind!r}, expected one of "
                    f"{sorted(_FEATURE_READERS)}"
                )
            what = f"feature {index} ({kind})"
            _FEATURE_READERS[kind](parts, feature, props, what)
        return VectorMap(
            lanes=parts.lanes,
            crosswalks=parts.crosswalks,
            drivable_area=shapely.union_all(parts.areas) if parts.areas else None,
            road_edges=parts.road_edges,
            source=str(path),
            projection=_projection((doc.get("properties") or {}).get("projection")),
        )


def _geometry(feature: Any, allowed: tuple[str, ...], what: str) -> tuple[str, Any]:
    """(type, coordinates) of the feature's geometry, which must be one of ``allowed``."""
    geometry = require_dict(feature, "geometry", what)
    kind = require(geometry, "type", f"{what} geometry")
    if kind not in allowed:
        raise MapencError(f"{what}: geometry type {kind!r}, expected {' or '.join(allowed)}")
    return kind, require(geometry, "coordinates", f"{what} geometry")


def _single_or_multi(feature: Any, single: str, item: str, what: str) -> list[Any]:
    """Coordinates of each ``item`` of a ``single`` geometry (one item) or its ``Multi`` form."""
    multi = f"Multi{single}"
    kind, coords = _geometry(feature, (single, multi), what)
    items = [coords] if kind == single else coords
    if not isinstance(items, list):
        raise MapencError(f"{what}: a {multi} needs a list of {item}s")
    return items


def _ring(coords: Any, what: str) -> FloatArray:
    """(K, 2) ring; an unclosed one is closed with a warning."""
    ring = polyline(coords, what)
    if not np.array_equal(ring[0], ring[-1]):
        warnings.warn(f"{what}: polygon ring not closed; closing it", stacklevel=2)
        ring = np.concatenate([ring, ring[:1]])
    return ring


def _polygon(coords: Any, what: str) -> BaseGeometry:
    """Polygon from GeoJSON Polygon coordinates ``[shell, *holes]``."""
    if not isinstance(coords, list) or not coords:
        raise MapencError(f"{what}: a Polygon needs a list of rings")
    rings = [_ring(r, f"{what} ring {i}") for i, r in enumerate(coords)]
    return ring_polygon(rings[0], what, rings[1:])


def _add_lane(parts: _MapParts, feature: Any, props: Mapping[str, Any], what: str) -> None:
    _, coords = _geometry(feature, ("LineString",), what)
    centerline = _drop_repeated_points(polyline(coords, f"{what} centerline"), what)
    has_left, has_right = "left_boundary" in props, "right_boundary" in props
    if has_left != has_right:
        raise MapencError(f"{what}: give both left_boundary and right_boundary, or neither")
    if has_left:
        left = polyline(props["left_boundary"], f"{what} left_boundary")
        right = polyline(props["right_boundary"], f"{what} right_boundary")
    else:
        width = props.get("width", DEFAULT_LANE_WIDTH_M)
        if (
            isinstance(width, bool)
            or not isinstance(width, int | float)
            or not 0 < width < math.inf
        ):
            raise MapencError(f"{what}: width must be a positive number of metres, got {width!r}")
        left = offset_polyline(centerline, width / 2)
        right = offset_polyline(centerline, -width / 2)
    parts.lanes.append(
        Lane(
            id=_lane_id(feature, props, len(parts.lanes), parts.lane_ids),
            centerline=centerline,
            left_boundary=left,
            right_boundary=right,
            left_mark=_enum(MarkType, props.get("left_mark", "unknown"), what),
            right_mark=_enum(MarkType, props.get("right_mark", "unknown"), what),
            lane_type=_enum(LaneType, props.get("lane_type", "vehicle"), what),
            predecessors=_ids(props, "predecessors", what),
            successors=_ids(props, "successors", what),
            left_neighbor=_optional_id(props.get("left_neighbor")),
            right_neighbor=_optional_id(props.get("right_neighbor")),
            is_intersection=bool(props.get("is_intersection", False)),
        )
    )


def _add_crosswalk(parts: _MapParts, feature: Any, props: Mapping[str, Any], what: str) -> None:
    _, coords = _geometry(feature, ("Polygon",), what)
    parts.crosswalks.append(_polygon(coords, what))


def _add_drivable_area(parts: _MapParts, feature: Any, props: Mapping[str, Any], what: str) -> None:
    polygons = _single_or_multi(feature, "Polygon", "polygon", what)
    parts.areas += [_polygon(p, f"{what} polygon {i}") for i, p in enumerate(polygons)]


def _add_road_edge(parts: _MapParts, feature: Any, props: Mapping[str, Any], what: str) -> None:
    lines = _single_or_multi(feature, "LineString", "line", what)
    parts.road_edges += [polyline(line, f"{what} line {i}") for i, line in enumerate(lines)]


_FEATURE_READERS: dict[str, Callable[[_MapParts, Any, Mapping[str, Any], str], None]] = {
    "lane": _add_lane,
    "crosswalk": _add_crosswalk,
    "drivable_area": _add_drivable_area,
    "road_edge": _add_road_edge,
}


def _enum(enum: type[EnumT], value: Any, what: str) -> EnumT:
    try:
        return enum(value)
    except ValueError:
        allowed = [e.value for e in enum]
        raise MapencError(
            f"{what}: {value!r} is not a {enum.__name__}, expected {allowed}"
        ) from None


def _given_id(feature: Any, props: Mapping[str, Any]) -> str | None:
    """The lane's ``properties.id``, else the feature's ``id``; None (no id) when both are
    missing or null."""
    value = props.get("id")
    if value is None and isinstance(feature, Mapping):
        value = feature.get("id")
    return None if value is None else str(value)


def _given_lane_ids(features: list[Any]) -> set[str]:
    """The ids the file gives its lanes (malformed features are reported when read)."""
    ids = set()
    for feature in features:
        props = feature.get("properties") if isinstance(feature, Mapping) else None
        if isinstance(props, Mapping) and props.get("type") == "lane":
            lane_id = _given_id(feature, props)
            if lane_id is not None:
                ids.add(lane_id)
    return ids


def _lane_id(feature: Any, props: Mapping[str, Any], index: int, taken: set[str]) -> str:
    """The lane's given id, or for a lane without one its index among the lanes, with ``_``
    appended while another lane's given id holds it."""
    given = _given_id(feature, props)
    if given is not None:
        return given
    auto = str(index)
    while auto in taken:
        auto += "_"
    return auto


def _ids(props: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    """Ids listed under ``key`` (null entries are no id and dropped)."""
    values = require_list(props, key, what) if key in props else []
    return tuple(str(i) for i in values if i is not None)


def _optional_id(value: Any) -> str | None:
    return None if value is None else str(value)


def _projection(value: Any) -> Projection | None:
    if value is None:
        return None
    crs = require(value, "crs", "properties.projection")
    origin = require(value, "origin_lonlat", "properties.projection")
    return Projection(
        crs=str(crs), origin_lonlat=number_pair(origin, "properties.projection.origin_lonlat")
    )


def _drop_repeated_points(points: FloatArray, what: str) -> FloatArray:
    """The polyline without consecutive duplicate points; MapencError if it has zero length."""
    keep = np.concatenate([[True], (np.diff(points, axis=0) != 0).any(axis=1)])
    if keep.sum() < 2:
        raise MapencError(f"{what}: centerline has zero length")
    return points[keep]


def offset_polyline(points: FloatArray, distance_m: float | FloatArray) -> FloatArray:
    """(K, 2) polyline moved ``distance_m`` to its left (negative: right), vertex by vertex.

    ``distance_m`` is one distance or (K,) distances, one per vertex (metres). Each vertex moves
    along the mean of its adjacent segments' left normals, lengthened by the miter factor (capped
    at 2) so straight parts keep exactly ``|distance_m|`` from the input. Consecutive points must
    differ. Returns (K, 2) float64.
    """
    return offset_frame(points).moved(distance_m)


@dataclass(frozen=True)
class OffsetFrame:
    """Where a polyline's vertices move when offset (``offset_polyline``): the vertices and
    their unit directions and miter factors, shared by every distance.

    Attributes:
        x, y: (K,) the vertices (metres).
        normal: (2, K) unit direction each vertex moves in for a positive distance (left).
        miter: (K,) the factor a distance is lengthened by.
    """

    x: FloatArray
    y: FloatArray
    normal: FloatArray
    miter: FloatArray

    def moved(self, distance_m: float | FloatArray) -> FloatArray:
        """(K, 2) the vertices moved ``distance_m`` (one, or (K,) per vertex) along the frame."""
        distance = np.broadcast_to(np.asarray(distance_m, dtype=np.float64), self.miter.shape)
        step = distance * self.miter
        return np.stack([self.x + step * self.normal[0], self.y + step * self.normal[1]], axis=1)


def offset_frame(points: FloatArray) -> OffsetFrame:
    """The ``OffsetFrame`` of a (K, 2) polyline whose consecutive points differ."""
    # x and y as separate rows: numpy reduces and gathers along an axis of two ~10x slower.
    x, y = np.asarray(points, dtype=np.float64).T
    seg_x, seg_y = np.diff(x), np.diff(y)
    seg_length = np.sqrt(seg_x * seg_x + seg_y * seg_y)
    seg_normal = np.stack([-(seg_y / seg_length), seg_x / seg_length])  # (2, K - 1) left normals
    normal = np.zeros((2, len(x)))
    normal[:, :-1] += seg_normal
    normal[:, 1:] += seg_normal
    # A U-turn cancels the two normals: use the incoming segment's normal there.
    reversed_at = np.sqrt(normal[0] * normal[0] + normal[1] * normal[1]) < 1e-9
    normal[:, reversed_at] = seg_normal[:, np.maximum(np.flatnonzero(reversed_at) - 1, 0)]
    normal /= np.sqrt(normal[0] * normal[0] + normal[1] * normal[1])
    cos_half = normal[0, 1:] * seg_normal[0] + normal[1, 1:] * seg_normal[1]
    miter = np.ones(len(x))
    miter[1:] = 1.0 / np.maximum(cos_half, 1.0 / _MAX_MITER)
    return OffsetFrame(x, y, normal, miter)


def write_generic_scene(scene: Scenario | VectorMap, folder: Path) -> Path:
    """Write ``map.geojson`` (and ``tracks.csv`` for a Scenario) into ``folder``; return it.

    Coordinates are written at full float64 precision, so ``load_scenario(folder)`` /
    ``load_map(folder)`` read back the same lanes, polygons and tracks (invalid steps omitted).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vector_map = scene.map if isinstance(scene, Scenario) else scene
    properties: dict[str, Any] = {}
    if isinstance(scene, Scenario):
        properties["dt"] = scene.dt
        if scene.focal_track_id is not None:
            properties["focal_track_id"] = scene.focal_track_id
        write_tracks_csv(scene, folder / TRACKS_FILE)
    if vector_map.projection is not None:
        properties["projection"] = {
            "crs": vector_map.projection.crs,
            "origin_lonlat": list(vector_map.projection.origin_lonlat),
        }
    doc = {
        "type": "FeatureCollection",
        "properties": properties,
        "features": _map_features(vector_map),
    }
    (folder / MAP_FILE).write_text(json.dumps(doc, allow_nan=False))
    return folder


def _feature(geometry: Mapping[str, Any], kind: str, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": {"type": kind, **properties}}


def _map_features(vector_map: VectorMap) -> list[dict[str, Any]]:
    features = [
        _feature(
            {"type": "LineString", "coordinates": lane.centerline.tolist()},
            "lane",
            id=lane.id,
            left_boundary=lane.left_boundary.tolist(),
            right_boundary=lane.right_boundary.tolist(),
            left_mark=lane.left_mark.value,
            right_mark=lane.right_mark.value,
            lane_type=lane.lane_type.value,
            predecessors=list(lane.predecessors),
            successors=list(lane.successors),
            left_neighbor=lane.left_neighbor,
            right_neighbor=lane.right_neighbor,
            is_intersection=lane.is_intersection,
        )
        for lane in vector_map.lanes
    ]
    features += [_feature(mapping(cw), "crosswalk") for cw in vector_map.crosswalks]
    if not vector_map.area.is_empty:
        features.append(_feature(mapping(vector_map.area), "drivable_area"))
    features += [
        _feature({"type": "LineString", "coordinates": edge.tolist()}, "road_edge")
        for edge in vector_map.road_edges
    ]
    return features
