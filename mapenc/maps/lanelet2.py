"""Lanelet2 OSM reader: lat/lon nodes projected to metres, lanelet relations to lanes.

How Lanelet2 maps onto mapenc's types:

- Projection: every node's WGS84 lon/lat is projected with a transverse Mercator (scale 1) centred
  on the middle of the nodes' lon/lat box (``+proj=tmerc +lat_0=.. +lon_0=.. +k=1 ...``, through
  rasterio's CRS tools). The PROJ string and origin are kept as ``VectorMap.projection``; within a
  few km of the origin lengths are true to better than 1e-6. A dataset whose tracks live in
  another frame passes its own ``projection``: ``utm_origin_projection`` is Lanelet2's
  ``UtmProjector`` (UTM in the origin's zone, minus the origin's UTM coordinates), which the
  INTERACTION dataset uses with origin (0, 0).
- Lanelet relations (``type=lanelet``) with ``subtype`` ``road`` (also the default when absent),
  ``highway``, ``play_street``, ``emergency_lane``, ``exit`` -> VEHICLE lanes, ``bus_lane`` -> BUS,
  ``bicycle_lane`` -> BIKE. ``crosswalk`` lanelets become crosswalk polygons. Walkways, stairs,
  rails and other subtypes are not drivable and are skipped.
- Boundaries: the ``right`` way is reversed when it runs against the ``left`` way (endpoint
  matching); both are reversed when the ``left`` way then lies on the right of the direction of
  travel, so ``left_boundary`` is always on the left. A reversed ``solid_dashed`` way reads as
  ``dashed_solid`` and vice versa.
- Marks from the way tags: ``line_thin``/``line_thick`` with ``subtype`` solid, dashed,
  solid_solid, dashed_dashed, solid_dashed, dashed_solid; ``curbstone``, ``road_border``,
  ``guard_rail``, ``wall``, ``fence`` -> CURB; ``virtual`` -> VIRTUAL; anything else -> UNKNOWN.
- Successors/predecessors: lanes whose boundaries share end/start nodes; neighbours: lanes sharing
  a boundary way (either direction).
- A map without crosswalk lanelets that draws its crosswalks as ``pedestrian_marking`` ways only
  (the INTERACTION maps) gets a crosswalk for each pair of such lines that run within
  ``MARKING_PARALLEL_DEG`` of parallel, 1-6 m apart, side by side and across the lanes: the convex
  hull of both (``crosswalks_from_markings``). A line left without a partner is no crosswalk.
- Drivable area: union of lane and crosswalk polygons and of multipolygon areas with ``subtype``
  ``road`` or ``parking``. Road edges: ``curbstone`` and ``road_border`` ways.
- Self-intersecting lanelet polygons are repaired with ``make_valid`` and one warning per file.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import NamedTuple
from xml.etree.ElementTree import Element

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from mapenc.errors import MapencError, MapFormatError
from mapenc.maps.types import (
    FloatArray,
    Lane,
    LaneType,
    MarkType,
    Projection,
    VectorMap,
    as_polyline,
    centerline_from_boundaries,
    repair_polygon,
    repair_polygons,
)
from mapenc.maps.xmlparse import parse_floats, parse_xml

ROOT_TAG = "osm"

LANE_SUBTYPES: dict[str, LaneType] = {
    "road": LaneType.VEHICLE,
    "highway": LaneType.VEHICLE,
    "play_street": LaneType.VEHICLE,
    "emergency_lane": LaneType.VEHICLE,
    "exit": LaneType.VEHICLE,
    "bus_lane": LaneType.BUS,
    "bicycle_lane": LaneType.BIKE,
}
CROSSWALK_SUBTYPE = "crosswalk"
CROSSWALK_MARKING = "pedestrian_marking"
# Two pedestrian_marking lines are the two sides of one crosswalk when they run within this angle
# of parallel, this far apart (crosswalks are 2-6 m wide), side by side, and across the road: at
# least this share of the area between them on the lanes.
MARKING_PARALLEL_DEG = 20.0
MARKING_GAP_M = (1.0, 6.0)
MARKING_MIN_ON_ROAD = 0.25
DRIVABLE_AREA_SUBTYPES = frozenset({"road", "parking"})
ROAD_EDGE_TYPES = frozenset({"curbstone", "road_border"})

PAINTED_LINE_TYPES = frozenset({"line_thin", "line_thick"})
PAINTED_MARKS: dict[str, MarkType] = {
    "solid": MarkType.SOLID,
    "dashed": MarkType.DASHED,
    "solid_solid": MarkType.DOUBLE_SOLID,
    "dashed_dashed": MarkType.DOUBLE_DASHED,
    "solid_dashed": MarkType.SOLID_DASHED,
    "dashed_solid": MarkType.DASHED_SOLID,
}
PHYSICAL_MARKS: dict[str, MarkType] = {
    "curbstone": MarkType.CURB,
    "road_border": MarkType.CURB,
    "guard_rail": MarkType.CURB,
    "wall": MarkType.CURB,
    "fence": MarkType.CURB,
    "virtual": MarkType.VIRTUAL,
}
# A mixed mark names its left part first, relative to the way's direction.
REVERSED_MARKS = {
    MarkType.SOLID_DASHED: MarkType.DASHED_SOLID,
    MarkType.DASHED_SOLID: MarkType.SOLID_DASHED,
}


class _Way(NamedTuple):
    """An OSM way: its node ids in order and its tags."""

    nodes: tuple[str, ...]
    tags: dict[str, str]


class _Bound(NamedTuple):
    """A lanelet boundary oriented along the lanelet: (K, 2) city points, first/last node, mark."""

    points: FloatArray
    first: str
    last: str
    way_id: str
    mark: MarkType


class _Nodes:
    """Node id -> city-frame position (metres) for all nodes of the file."""

    def __init__(self, path: Path, root: Element, projection: Projection | None = None) -> None:
        elements = root.findall("node")
        if not elements:
            raise MapFormatError(path, "no <node> elements")
        lon = parse_floats(path, [n.get("lon") for n in elements], "node lon")
        lat = parse_floats(path, [n.get("lat") for n in elements], "node lat")
        if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
            raise MapFormatError(path, "node lat/lon: NaN or inf coordinates")
        if (np.abs(lat) > 90).any() or (np.abs(lon) > 180).any():
            raise MapFormatError(path, "node lat/lon outside [-90, 90] x [-180, 180] degrees")
        self.path = path
        self.projection = projection or _centred_projection(lon, lat)
        self.xy = self.projection.to_city(lon, lat)
        self.index = _unique_index(path, elements, "node")

    def polyline(self, node_ids: tuple[str, ...], what: str) -> FloatArray:
        """(K, 2) city-frame points of ``node_ids``; MapFormatError for a missing node."""
        try:
            rows = [self.index[n] for n in node_ids]
        except KeyError as err:
            raise MapFormatError(
                self.path, f"{what} refers to missing node {err.args[0]}"
            ) from None
        try:
            return as_polyline(self.xy[rows], what)
        except MapencError as err:
            raise MapFormatError(self.path, str(err)) from None


def read_lanelet2_map(path: Path, projection: Projection | None = None) -> VectorMap:
    """The lanes, crosswalks and drivable area of a Lanelet2 ``.osm`` map, in metres.

    The city frame is ``projection`` of the nodes' lon/lat, by default a transverse Mercator
    centred on the map; either way it is kept as ``VectorMap.projection``.
    Raises MapFormatError naming the file for unreadable, unsafe or malformed XML, a file without
    lanelet relations, a relation or way referring to a missing way or node, boundaries with fewer
    than 2 points, or NaN/inf coordinates.
    """
    path = Path(path)
    root = parse_xml(path, ROOT_TAG)
    nodes = _Nodes(path, root, projection)
    ways = _read_ways(path, root)
    relations = [(r, _tags(r)) for r in root.iterfind("relation")]
    lanelets = [(r, tags) for r, tags in relations if tags.get("type") == "lanelet"]
    if not lanelets:
        raise MapFormatError(path, "no lanelet relations (type=lanelet): not a Lanelet2 map")

    lane_bounds: list[tuple[str, LaneType, _Bound, _Bound, FloatArray | None]] = []
    crosswalks: list[tuple[str, BaseGeometry]] = []
    for rel, tags in lanelets:
        subtype = tags.get("subtype", "road")
        if subtype not in LANE_SUBTYPES and subtype != CROSSWALK_SUBTYPE:
            continue
        rel_id = _element_id(path, rel, "relation")
        left, right = _oriented_bounds(path, rel, rel_id, ways, nodes)
        if subtype == CROSSWALK_SUBTYPE:
            crosswalks.append((rel_id, _lanelet_polygon(left, right)))
            continue
        centerline = _member_polyline(path, rel, rel_id, "centerline", ways, nodes, required=False)
        lane_bounds.append((rel_id, LANE_SUBTYPES[subtype], left, right, centerline))
    if not lane_bounds:
        raise MapFormatError(path, "no road, highway, bus or bicycle lanelets")

    lanes = _link_lanes(lane_bounds)
    named_polygons = [
        *crosswalks,
        *((lane_id, _lanelet_polygon(left, right)) for lane_id, _, left, right, _ in lane_bounds),
    ]
    polygons = repair_polygons(
        [polygon for _, polygon in named_polygons],
        [f"lanelet {rel_id}" for rel_id, _ in named_polygons],
        str(path),
    )
    crosswalk_polygons, lane_polygons = polygons[: len(crosswalks)], polygons[len(crosswalks) :]
    if not crosswalks:
        markings = [
            nodes.polyline(way.nodes, f"way {way_id}")
            for way_id, way in ways.items()
            if way.tags.get("type") == CROSSWALK_MARKING
        ]
        crosswalk_polygons = crosswalks_from_markings(markings, shapely.union_all(lane_polygons))
    areas = [
        _multipolygon(path, rel, ways, nodes)
        for rel, tags in relations
        if tags.get("type") == "multipolygon" and tags.get("subtype") in DRIVABLE_AREA_SUBTYPES
    ]
    road_edges = [
        nodes.polyline(way.nodes, f"way {way_id}")
        for way_id, way in ways.items()
        if way.tags.get("type") in ROAD_EDGE_TYPES
    ]
    return VectorMap(
        lanes=lanes,
        crosswalks=[c for c in crosswalk_polygons if not c.is_empty],
        drivable_area=shapely.union_all([*lane_polygons, *crosswalk_polygons, *areas]),
        road_edges=road_edges,
        source=str(path),
        projection=nodes.projection,
    )


def _centred_projection(lon: FloatArray, lat: FloatArray) -> Projection:
    """Transverse Mercator (scale 1, WGS84) whose origin is the centre of the lon/lat box."""
    # Rounded so that the PROJ string and origin_lonlat name the very same point.
    lon0 = round(0.5 * float(lon.min() + lon.max()), 9)
    lat0 = round(0.5 * float(lat.min() + lat.max()), 9)
    crs = (
        f"+proj=tmerc +lat_0={lat0:.9f} +lon_0={lon0:.9f} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
    )
    return Projection(crs=crs, origin_lonlat=(lon0, lat0))


def utm_origin_projection(origin_lonlat: tuple[float, float] = (0.0, 0.0)) -> Projection:
    """Lanelet2's ``UtmProjector(Origin(lat, lon))``: UTM in the zone of ``origin_lonlat``
    (degrees, WGS84; northern hemisphere), shifted so that the origin lands on (0, 0) metres.

    Written as the equivalent transverse Mercator (the zone's central meridian, scale 0.9996) whose
    false easting and northing cancel the origin's own projected coordinates; it agrees with UTM
    minus the origin's UTM coordinates to 1e-9 m. The INTERACTION dataset's maps use origin
    (0, 0), UTM zone 31, which puts its maps in the tracks' frame.
    """
    from rasterio.warp import transform

    lon0, lat0 = origin_lonlat
    if not (-180.0 <= lon0 < 180.0 and 0.0 <= lat0 <= 84.0):
        raise MapencError(
            f"UTM origin {origin_lonlat}: expected lon in [-180, 180), lat in [0, 84] degrees"
        )
    zone = int((lon0 + 180.0) // 6.0) + 1
    central_meridian = -183.0 + 6.0 * zone
    zone_tmerc = f"+proj=tmerc +lat_0=0 +lon_0={central_meridian:g} +k=0.9996 +ellps=WGS84 +units=m"
    (x0,), (y0,) = transform("EPSG:4326", f"{zone_tmerc} +x_0=0 +y_0=0", [lon0], [lat0])
    crs = f"{zone_tmerc} +x_0={0.0 - float(x0)!r} +y_0={0.0 - float(y0)!r}"
    return Projection(crs=crs, origin_lonlat=(float(lon0), float(lat0)))


def _tags(el: Element) -> dict[str, str]:
    return {t.get("k", ""): t.get("v", "") for t in el.iterfind("tag")}


def _element_id(path: Path, el: Element, kind: str) -> str:
    element_id = el.get("id")
    if element_id is None:
        raise MapFormatError(path, f"a <{kind}> has no id")
    return element_id


def _unique_index(path: Path, elements: list[Element], kind: str) -> dict[str, int]:
    """Element id -> position in ``elements``; MapFormatError for an id given twice (the later
    element would silently replace the earlier one)."""
    index: dict[str, int] = {}
    for i, el in enumerate(elements):
        element_id = _element_id(path, el, kind)
        if element_id in index:
            raise MapFormatError(path, f"<{kind}> id {element_id} is given twice")
        index[element_id] = i
    return index


def _read_ways(path: Path, root: Element) -> dict[str, _Way]:
    elements = root.findall("way")
    return {
        way_id: _Way(
            nodes=tuple(nd.get("ref") or "" for nd in elements[i].iterfind("nd")),
            tags=_tags(elements[i]),
        )
        for way_id, i in _unique_index(path, elements, "way").items()
    }


def _member_way(
    path: Path, rel: Element, rel_id: str, role: str, ways: dict[str, _Way], required: bool = True
) -> tuple[str, _Way] | None:
    """The way playing ``role`` in relation ``rel``; MapFormatError when missing (if required)."""
    member = next((m for m in rel.iterfind("member") if m.get("role") == role), None)
    if member is None:
        if required:
            raise MapFormatError(path, f"lanelet {rel_id} has no '{role}' member")
        return None
    ref = member.get("ref", "")
    if ref not in ways:
        raise MapFormatError(path, f"relation {rel_id} refers to missing way {ref!r} ({role})")
    return ref, ways[ref]


def _member_polyline(
    path: Path,
    rel: Element,
    rel_id: str,
    role: str,
    ways: dict[str, _Way],
    nodes: _Nodes,
    required: bool = True,
) -> FloatArray | None:
    found = _member_way(path, rel, rel_id, role, ways, required)
    if found is None:
        return None
    return nodes.polyline(found[1].nodes, f"way {found[0]} ({role} of lanelet {rel_id})")


def _way_mark(tags: dict[str, str]) -> MarkType:
    line_type = tags.get("type", "")
    if line_type in PAINTED_LINE_TYPES:
        return PAINTED_MARKS.get(tags.get("subtype", ""), MarkType.UNKNOWN)
    return PHYSICAL_MARKS.get(line_type, MarkType.UNKNOWN)


def _bound(way_id: str, way: _Way, points: FloatArray, reverse: bool) -> _Bound:
    mark = _way_mark(way.tags)
    if reverse:
        return _Bound(
            points[::-1], way.nodes[-1], way.nodes[0], way_id, REVERSED_MARKS.get(mark, mark)
        )
    return _Bound(points, way.nodes[0], way.nodes[-1], way_id, mark)


def _oriented_bounds(
    path: Path, rel: Element, rel_id: str, ways: dict[str, _Way], nodes: _Nodes
) -> tuple[_Bound, _Bound]:
    """Left and right boundaries both running in the lanelet's direction, left on the left."""
    sides = []
    for role in ("left", "right"):
        found = _member_way(path, rel, rel_id, role, ways)
        assert found is not None
        way_id, way = found
        sides.append(
            (way_id, way, nodes.polyline(way.nodes, f"way {way_id} ({role} of lanelet {rel_id})"))
        )
    (left_id, left_way, left), (right_id, right_way, right) = sides
    gap_same = np.linalg.norm(left[0] - right[0]) + np.linalg.norm(left[-1] - right[-1])
    gap_flipped = np.linalg.norm(left[0] - right[-1]) + np.linalg.norm(left[-1] - right[0])
    flip_right = bool(gap_flipped < gap_same)
    right_oriented = right[::-1] if flip_right else right
    direction = (left[-1] + right_oriented[-1]) - (left[0] + right_oriented[0])
    offset = left.mean(axis=0) - right_oriented.mean(axis=0)
    flip_both = bool(direction[0] * offset[1] - direction[1] * offset[0] < 0)
    return (
        _bound(left_id, left_way, left, reverse=flip_both),
        _bound(right_id, right_way, right, reverse=flip_right != flip_both),
    )


def crosswalks_from_markings(markings: list[FloatArray], road: BaseGeometry) -> list[BaseGeometry]:
    """Crosswalk polygons drawn by pairs of ``pedestrian_marking`` lines, (K, 2) city points each.

    Two lines pair when their end-to-end directions are within ``MARKING_PARALLEL_DEG`` of
    parallel and the second's midpoint lies ``MARKING_GAP_M`` to the side of the first (between
    the bounds) and within half their summed lengths along it; the closest pairs are taken first
    and each line joins one pair at most. The crosswalk is the convex hull of both lines, kept
    when at least ``MARKING_MIN_ON_ROAD`` of it lies on ``road`` (the lanes): a crossing spans the
    road, where lines along a sidewalk or a bicycle path do not.
    """
    if len(markings) < 2:
        return []
    ends = np.array([[points[0], points[-1]] for points in markings])  # (M, 2, 2)
    chord = ends[:, 1] - ends[:, 0]
    length = np.linalg.norm(chord, axis=1)
    direction = chord / np.maximum(length, 1e-9)[:, None]
    middle = ends.mean(axis=1)
    offset = middle[None, :, :] - middle[:, None, :]  # (M, M, 2): from line i to line j
    along = np.abs(np.einsum("ik,ijk->ij", direction, offset))
    side = np.abs(direction[:, None, 0] * offset[..., 1] - direction[:, None, 1] * offset[..., 0])
    parallel = np.abs(direction @ direction.T) >= np.cos(np.radians(MARKING_PARALLEL_DEG))
    beside = along <= 0.5 * (length[:, None] + length[None, :])
    apart = (side >= MARKING_GAP_M[0]) & (side <= MARKING_GAP_M[1])
    candidates = parallel & beside & apart & (length[:, None] > 0)
    rows, cols = np.nonzero(np.triu(candidates & candidates.T, k=1))
    paired: set[int] = set()
    crosswalks = []
    for k in np.argsort(side[rows, cols], kind="stable"):
        i, j = int(rows[k]), int(cols[k])
        if i in paired or j in paired:
            continue
        hull = shapely.MultiPoint(np.concatenate([markings[i], markings[j]])).convex_hull
        if hull.intersection(road).area >= MARKING_MIN_ON_ROAD * hull.area:
            paired |= {i, j}
            crosswalks.append(hull)
    return crosswalks


def _lanelet_polygon(left: _Bound, right: _Bound) -> BaseGeometry:
    """Left bound + reversed right bound, possibly invalid (``repair_polygons`` mends it)."""
    return shapely.Polygon(np.concatenate([left.points, right.points[::-1]]))


def _link_lanes(
    lane_bounds: list[tuple[str, LaneType, _Bound, _Bound, FloatArray | None]],
) -> list[Lane]:
    """Lanes with successors (shared end/start nodes of both bounds) and neighbours (shared ways)."""
    starting_at: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    ending_at: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    using_way: defaultdict[str, list[str]] = defaultdict(list)
    for lane_id, _, left, right, _ in lane_bounds:
        starting_at[(left.first, right.first)].append(lane_id)
        ending_at[(left.last, right.last)].append(lane_id)
        using_way[left.way_id].append(lane_id)
        using_way[right.way_id].append(lane_id)

    def neighbour(lane_id: str, way_id: str) -> str | None:
        return next((other for other in using_way[way_id] if other != lane_id), None)

    lanes = []
    for lane_id, lane_type, left, right, centerline in lane_bounds:
        if centerline is None:
            centerline = centerline_from_boundaries(left.points, right.points)
        elif np.linalg.norm(centerline[0] - left.points[0]) > np.linalg.norm(
            centerline[-1] - left.points[0]
        ):
            centerline = centerline[::-1]
        lanes.append(
            Lane(
                id=lane_id,
                centerline=centerline,
                left_boundary=left.points,
                right_boundary=right.points,
                left_mark=left.mark,
                right_mark=right.mark,
                lane_type=lane_type,
                predecessors=tuple(ending_at[(left.first, right.first)]),
                successors=tuple(starting_at[(left.last, right.last)]),
                left_neighbor=neighbour(lane_id, left.way_id),
                right_neighbor=neighbour(lane_id, right.way_id),
            )
        )
    return lanes


def _multipolygon(path: Path, rel: Element, ways: dict[str, _Way], nodes: _Nodes) -> BaseGeometry:
    """Area of a ``type=multipolygon`` relation: polygons formed by its outer ways minus inner."""
    rel_id = _element_id(path, rel, "relation")
    rings: dict[str, list[FloatArray]] = {"outer": [], "inner": []}
    for member in rel.iterfind("member"):
        role, ref = member.get("role", ""), member.get("ref", "")
        if role not in rings:
            continue
        if ref not in ways:
            raise MapFormatError(path, f"relation {rel_id} refers to missing way {ref!r} ({role})")
        rings[role].append(nodes.polyline(ways[ref].nodes, f"way {ref} ({role} of area {rel_id})"))
    outer, inner = (
        shapely.union_all(shapely.polygonize([shapely.LineString(r) for r in rings[role]]))
        for role in ("outer", "inner")
    )
    area = shapely.difference(outer, inner)
    return repair_polygon(area, f"{path}: area {rel_id}")
