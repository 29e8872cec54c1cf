"""Format-independent map and scene primitives; every reader produces these.

All coordinates are in the map's city frame (metres, float64). Maps know nothing of pixels.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from functools import cached_property
from typing import Any, TypeVar, overload

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from mapenc.errors import MapencError, MapFormatError, PoseError
from mapenc.geometry.ragged import ramp, split_rows
from mapenc.safeio import limit_setting

FloatArray = NDArray[np.float64]
Bounds = tuple[float, float, float, float]


class LaneType(str, Enum):
    """What a lane is for."""

    VEHICLE = "vehicle"
    BIKE = "bike"
    BUS = "bus"
    UNKNOWN = "unknown"


class MarkType(str, Enum):
    """Painted (or physical) kind of a lane boundary, colour dropped."""

    SOLID = "solid"
    DASHED = "dashed"
    DOUBLE_SOLID = "double_solid"
    DOUBLE_DASHED = "double_dashed"
    SOLID_DASHED = "solid_dashed"
    DASHED_SOLID = "dashed_solid"
    CURB = "curb"
    VIRTUAL = "virtual"
    NONE = "none"
    UNKNOWN = "unknown"

    @property
    def is_solid(self) -> bool:
        """True for marks that must not be crossed (solid, double solid, curb)."""
        return self in {MarkType.SOLID, MarkType.DOUBLE_SOLID, MarkType.CURB}

    @property
    def is_dashed(self) -> bool:
        """True for marks that may be crossed (dashed, and mixed marks)."""
        return self in {
            MarkType.DASHED,
            MarkType.DOUBLE_DASHED,
            MarkType.SOLID_DASHED,
            MarkType.DASHED_SOLID,
        }


def as_polyline(points: Any, what: str) -> FloatArray:
    """(K, 2) float64 polyline with K >= 2 and finite values; raise MapencError naming ``what``.

    Readers catch this and re-raise it as a MapFormatError naming the file.
    """
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise MapencError(f"{what}: expected a list of (x, y) points, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr[:, :2])
    if arr.shape[0] < 2:
        raise MapencError(f"{what}: a polyline needs at least 2 points, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise MapencError(f"{what}: NaN or inf coordinates")
    return arr


def centerline_from_boundaries(left: FloatArray, right: FloatArray, num: int = 0) -> FloatArray:
    """Centerline midway between two boundaries that run in the lane's direction.

    Both boundaries are resampled at the same arc-length fractions and averaged.
    Args:
        left, right: (K, 2) and (L, 2) polylines (metres).
        num: number of output points; default max(K, L, 2).
    Returns: (num, 2) float64.
    """
    return centerlines_from_boundaries([left], [right], [num])[0]


def centerlines_from_boundaries(
    lefts: Sequence[FloatArray], rights: Sequence[FloatArray], nums: Sequence[int] | None = None
) -> list[FloatArray]:
    """``centerline_from_boundaries`` of many lanes at once (the same values, bit for bit);
    ``nums``: points per centerline (0 or None: max(K, L, 2))."""
    counts = np.array(
        [
            num or max(len(left), len(right), 2)
            for left, right, num in zip(lefts, rights, nums or [0] * len(lefts), strict=True)
        ],
        dtype=np.intp,
    )
    return [0.5 * (left + right) for left, right in resampled_sides(lefts, rights, counts)]


def resampled_sides(
    lefts: Sequence[FloatArray], rights: Sequence[FloatArray], nums: NDArray[np.intp]
) -> list[tuple[FloatArray, FloatArray]]:
    """Each lane's (left, right) boundaries, both resampled at the same ``nums[i]`` arc-length
    fractions (``resample_polylines``), all lanes in one call."""
    both = resample_polylines([*lefts, *rights], np.concatenate([nums, nums]))
    return list(zip(both[: len(lefts)], both[len(lefts) :], strict=True))


def resample_polyline(points: FloatArray, num: int) -> FloatArray:
    """``num`` points at equal arc-length fractions along a (K, 2) polyline."""
    return resample_polylines([points], np.array([num]))[0]


def resample_polylines(polylines: Sequence[FloatArray], nums: NDArray[np.intp]) -> list[FloatArray]:
    """``nums[i]`` (>= 2) points at equal arc-length fractions along each (K_i, 2) polyline
    (K_i >= 1), for all polylines at once: ``np.linspace`` over each polyline's cumulative
    length and ``np.interp`` at those lengths, with their arithmetic (the values are theirs,
    bit for bit). A polyline of length 0 gives its first point ``nums[i]`` times."""
    if not len(polylines):
        return []
    sizes = np.array([len(p) for p in polylines], dtype=np.intp)
    points = np.concatenate(polylines).reshape(-1, 2)
    knot_start = np.cumsum(sizes) - sizes
    cum = _cumulative_lengths(points, sizes)  # (sum K,) per polyline, from 0
    total = cum[knot_start + sizes - 1]
    # The lengths to sample: np.linspace(0, total, num), row by row.
    query_owner, k = ramp(nums)
    s = k * (total / (nums - 1))[query_owner] + 0.0
    last = np.cumsum(nums) - 1
    s[last] = total
    # Knot j of each sample: the last knot of its polyline at or before it (knots sort before
    # samples of the same length).
    knot_owner = ramp(sizes)[0]
    values = np.concatenate([cum, s])
    owners = np.concatenate([knot_owner, query_owner])
    is_sample = np.concatenate([np.zeros(len(cum), bool), np.ones(len(s), bool)])
    order = np.lexsort((is_sample, values, owners))
    knots_so_far = np.cumsum(~is_sample[order])
    at_sample = np.empty(len(s), dtype=np.intp)
    at_sample[order[is_sample[order]] - len(cum)] = knots_so_far[is_sample[order]]
    j = at_sample - 1  # global index of the knot at or before each sample
    first, end = knot_start[query_owner], knot_start[query_owner] + sizes[query_owner] - 1
    j = np.clip(j, first, np.maximum(end - 1, first))
    nxt = np.minimum(j + 1, end)
    x0, x1 = cum[j], cum[nxt]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (points[nxt] - points[j]) / (x1 - x0)[:, None]
        out = slope * (s - x0)[:, None] + points[j]
    out = np.where((s == x0)[:, None], points[j], out)
    at_end = s >= cum[end]
    out[at_end] = points[end[at_end]]
    return split_rows(out, nums)


def _cumulative_lengths(points: FloatArray, sizes: NDArray[np.intp]) -> FloatArray:
    """(sum K,) arc length from each polyline's first point to each of its points, as
    ``np.concatenate([[0], np.cumsum(segment lengths)])`` polyline by polyline (``points``: the
    polylines' (K_i, 2) points, concatenated). The sums run along the rows of 2-D arrays of
    polylines of similar lengths (within a factor 2), padded with zeros after their ends:
    numpy's cumsum adds in order, so each value is that polyline's own cumsum's."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    start = np.cumsum(sizes) - sizes
    cum = np.zeros(len(points))
    segments = sizes - 1
    bucket = np.ceil(np.log2(np.maximum(segments, 1))).astype(np.intp)
    for b in np.unique(bucket[segments > 0]):
        rows = np.flatnonzero((bucket == b) & (segments > 0))
        col = np.arange(segments[rows].max())
        inside = col[None, :] < segments[rows][:, None]
        at = (start[rows][:, None] + col[None, :])[inside]
        padded = np.zeros(inside.shape)
        padded[inside] = seg[at]
        cum[at + 1] = np.cumsum(padded, axis=1)[inside]
    return cum


# Polygons with more vertices are simplified, then refused if still over: checking and repairing
# one takes seconds per 10^5 vertices (real lanes and areas have hundreds to a few thousand).
MAX_POLYGON_VERTICES = 100_000
MAX_POLYGON_VERTICES_ENV = "MAPENC_MAX_POLYGON_VERTICES"
# A polygon over the limit loses the vertices that lie within this many metres (in all) of the
# outline without them, far below any raster's pixel: a long straight lane of 10^6 points keeps
# its corners alone, a jagged one keeps every vertex (and is refused).
SIMPLIFY_TOLERANCE_M = 0.01


def max_polygon_vertices() -> int:
    """The vertex limit of one polygon: ``$MAPENC_MAX_POLYGON_VERTICES`` or the default."""
    return limit_setting(MAX_POLYGON_VERTICES_ENV, MAX_POLYGON_VERTICES, "vertices")


def decimated_line(points: FloatArray, tolerance_m: float) -> FloatArray:
    """(K, 2) polyline without the vertices it can lose while moving by at most ``tolerance_m``
    metres (Hausdorff distance); its ends are kept.

    In rounds, every other vertex whose distance to the segment between its two neighbours is
    within the round's share of the tolerance is dropped (its neighbours stay, so the moves of
    one round do not add up); the rounds' shares sum to ``tolerance_m``. Linear time, with no
    recursion that a hostile line could make deep (unlike Douglas-Peucker).
    """
    rounds = max(1, int(np.ceil(np.log2(max(len(points), 2)))))
    for _ in range(rounds):
        if len(points) <= 2:
            break
        before, middle, after = points[:-2:2], points[1:-1:2], points[2::2]
        chord = after - before
        squared = np.einsum("ij,ij->i", chord, chord)
        along = np.einsum("ij,ij->i", middle - before, chord) / np.where(squared > 0, squared, 1)
        nearest = before + np.clip(along, 0.0, 1.0)[:, None] * chord
        droppable = np.linalg.norm(middle - nearest, axis=1) <= tolerance_m / rounds
        if not droppable.any():
            break
        keep = np.ones(len(points), dtype=bool)
        keep[1:-1:2] = ~droppable
        points = points[keep]
    return points


def _decimated_polygon(geom: BaseGeometry, tolerance_m: float) -> BaseGeometry:
    """``geom`` (Polygon or MultiPolygon) with every ring ``decimated_line``; a ring that would
    keep fewer than 3 corners is kept whole."""
    if isinstance(geom, MultiPolygon):
        return MultiPolygon([_decimated_polygon(part, tolerance_m) for part in geom.geoms])
    if not isinstance(geom, Polygon) or geom.is_empty:
        return geom

    def ring(coords: Any) -> FloatArray:
        given = np.asarray(coords, dtype=np.float64)
        fewer = decimated_line(given, tolerance_m)
        return fewer if len(fewer) >= 4 else given

    return Polygon(ring(geom.exterior.coords), [ring(r.coords) for r in geom.interiors])


def bounded_polygon(geom: BaseGeometry, what: str) -> BaseGeometry:
    """``geom``, or when it has over ``max_polygon_vertices()`` vertices, ``geom`` without the
    vertices within ``SIMPLIFY_TOLERANCE_M`` of its outline; MapFormatError naming ``what`` (the
    file and the feature) when even that is over the limit."""
    limit = max_polygon_vertices()
    count = int(shapely.get_num_coordinates(geom))
    if count <= limit:
        return geom
    simplified = _decimated_polygon(geom, SIMPLIFY_TOLERANCE_M)
    left = int(shapely.get_num_coordinates(simplified))
    if left > limit:
        raise MapFormatError(
            what,
            f"polygon with {count:,} vertices ({left:,} once simplified within "
            f"{SIMPLIFY_TOLERANCE_M * 100:g} cm), over the limit of {limit:,}; set "
            f"{MAX_POLYGON_VERTICES_ENV} to allow more",
        )
    return simplified


def repair_polygon(geom: BaseGeometry, what: str) -> BaseGeometry:
    """Return ``geom`` made valid (shapely ``make_valid``), warning when a repair was needed.

    Self-intersecting rings are repaired, not rejected: real maps contain a few, and dropping them
    would silently lose drivable area. Only the polygonal part of the repair is kept. Polygons
    over the vertex limit are simplified or refused first (``bounded_polygon``).
    """
    geom = bounded_polygon(geom, what)
    if geom.is_valid:
        return geom
    warnings.warn(f"{what}: invalid polygon repaired with make_valid", stacklevel=2)
    return _made_valid(geom)


def repair_polygons(
    geoms: Sequence[BaseGeometry], names: Sequence[str], where: str, quiet: bool = False
) -> list[BaseGeometry]:
    """``repair_polygon`` over the polygons of one source, with one warning for all repairs
    (none with ``quiet``, for polygons whose folds are expected).

    ``names[i]`` names ``geoms[i]`` in the warning (e.g. ``"lanelet 12"``); ``where`` is the file.
    Valid polygons are returned as they are; the checks are vectorised over all of them.
    """
    array = np.empty(len(geoms), dtype=object)
    array[:] = list(geoms)
    for big in np.flatnonzero(shapely.get_num_coordinates(array) > max_polygon_vertices()):
        array[big] = bounded_polygon(array[big], f"{where}: {names[int(big)]}")
    invalid = np.flatnonzero(~shapely.is_valid(array)).tolist()
    repaired = list(array)
    if len(invalid) and not quiet:
        listed = ", ".join(names[i] for i in invalid[:5])
        more = f" and {len(invalid) - 5} more" if len(invalid) > 5 else ""
        warnings.warn(
            f"{where}: {len(invalid)} invalid polygon(s) repaired with make_valid: {listed}{more}",
            stacklevel=2,
        )
    for i in invalid:
        repaired[i] = _made_valid(array[i])
    return repaired


def ring_polygons(
    rings: Sequence[FloatArray], names: Sequence[str], where: str, quiet: bool = False
) -> list[BaseGeometry]:
    """Polygons of (K, 2) rings (closed implicitly), built and checked together
    (``repair_polygons``: invalid ones repaired, with one warning unless ``quiet``). Each ring
    needs at least 3 distinct points (``distinct_point_counts``)."""
    if not rings:
        return []
    sizes = [len(ring) for ring in rings]
    return joined_ring_polygons(np.concatenate(rings), sizes, names, where, quiet=quiet)


def joined_ring_polygons(
    coords: FloatArray,
    sizes: Sequence[int],
    names: Sequence[str],
    where: str,
    quiet: bool = False,
) -> list[BaseGeometry]:
    """``ring_polygons`` of rings given joined: (P, 2) points, ring i the next ``sizes[i]``."""
    owner = np.repeat(np.arange(len(sizes)), sizes)
    built = shapely.polygons(shapely.linearrings(coords, indices=owner))
    return repair_polygons(list(built), names, where, quiet=quiet)


def distinct_point_counts(rings: Sequence[FloatArray]) -> NDArray[np.intp]:
    """(R,) number of distinct points of each (K, 2) ring."""
    if not rings:
        return np.zeros(0, dtype=np.intp)
    owner = np.repeat(np.arange(len(rings)), [len(ring) for ring in rings])
    points = np.concatenate(rings)
    order = np.lexsort((points[:, 1], points[:, 0], owner))  # by ring, then x, then y
    ring, x, y = owner[order], points[order, 0], points[order, 1]
    new = np.ones(len(ring), dtype=bool)
    new[1:] = (ring[1:] != ring[:-1]) | (x[1:] != x[:-1]) | (y[1:] != y[:-1])
    return np.bincount(ring[new], minlength=len(rings))


def _made_valid(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of ``shapely.make_valid(geom)``, by the "structure" method (the same
    area as the default "linework" on self-intersecting lanes, about 100 times faster at 10^5
    vertices)."""
    fixed = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    polys = [g for g in getattr(fixed, "geoms", [fixed]) if isinstance(g, Polygon | MultiPolygon)]
    return shapely.union_all(polys) if polys else Polygon()


@dataclass(frozen=True, eq=False)
class Lane:
    """One lane segment.

    Attributes:
        id: identifier, unique within the map (the source's id as a string).
        centerline: (K, 2) float64, city frame, in the driving direction.
        left_boundary, right_boundary: (L, 2) / (R, 2) float64, in the driving direction.
        left_mark, right_mark: kind of the boundary marking.
        lane_type: what the lane is for.
        predecessors, successors: ids of the lanes before and after.
        left_neighbor, right_neighbor: ids of adjacent lanes (any direction), or None.
        is_intersection: the lane lies inside a junction.
    """

    id: str
    centerline: FloatArray
    left_boundary: FloatArray
    right_boundary: FloatArray
    left_mark: MarkType = MarkType.UNKNOWN
    right_mark: MarkType = MarkType.UNKNOWN
    lane_type: LaneType = LaneType.VEHICLE
    predecessors: tuple[str, ...] = ()
    successors: tuple[str, ...] = ()
    left_neighbor: str | None = None
    right_neighbor: str | None = None
    is_intersection: bool = False

    @cached_property
    def polygon(self) -> BaseGeometry:
        """The lane's area: left boundary + reversed right boundary, made valid."""
        ring = np.concatenate([self.left_boundary, self.right_boundary[::-1]])
        return repair_polygon(Polygon(ring), f"lane {self.id}")

    @cached_property
    def length_m(self) -> float:
        """Arc length of the centerline (metres)."""
        return float(np.linalg.norm(np.diff(self.centerline, axis=0), axis=1).sum())


@dataclass(frozen=True, eq=False)
class RoadLine:
    """A painted line on the road that is not stored as a lane boundary (e.g. Waymo road lines).

    Attributes:
        id: identifier (the source's id as a string).
        points: (K, 2) float64 polyline, city frame (metres).
        mark: kind of the marking.
    """

    id: str
    points: FloatArray
    mark: MarkType = MarkType.UNKNOWN


@dataclass(frozen=True, eq=False)
class StopSign:
    """A stop sign.

    Attributes:
        id: identifier (the source's id as a string).
        position: (2,) float64, city frame (metres).
        lanes: ids of the lanes it controls.
    """

    id: str
    position: FloatArray
    lanes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MapQuery:
    """Indices into ``VectorMap.lanes`` and ``VectorMap.crosswalks`` of elements touching a window."""

    lanes: NDArray[np.intp]
    crosswalks: NDArray[np.intp]


@dataclass(frozen=True)
class Projection:
    """How a geographic (lon/lat) map was projected to its metric city frame.

    Attributes:
        crs: the projected CRS as a PROJ string (transverse Mercator centred on the map).
        origin_lonlat: (lon, lat) in degrees of the city frame's origin.
    """

    crs: str
    origin_lonlat: tuple[float, float]

    def to_city(self, lon: Any, lat: Any) -> FloatArray:
        """(N,) lon, lat in degrees (WGS84) -> (N, 2) city-frame metres."""
        from rasterio.warp import transform

        xs, ys = transform("EPSG:4326", self.crs, np.atleast_1d(lon), np.atleast_1d(lat))
        return np.stack([np.asarray(xs), np.asarray(ys)], axis=1)

    def to_lonlat(self, points_city: FloatArray) -> FloatArray:
        """(N, 2) city-frame metres -> (N, 2) [lon, lat] degrees (WGS84)."""
        from rasterio.warp import transform

        lon, lat = transform(self.crs, "EPSG:4326", points_city[:, 0], points_city[:, 1])
        return np.stack([np.asarray(lon), np.asarray(lat)], axis=1)


@dataclass(frozen=True)
class UnionOf:
    """The union of ``polygons``, built when called (a picklable loader for
    ``VectorMap.load_drivable_area_when_read``)."""

    polygons: tuple[BaseGeometry, ...]

    def __call__(self) -> BaseGeometry:
        return shapely.union_all(self.polygons)


class _DrivableArea:
    """The ``VectorMap.drivable_area`` attribute: the area given to the map, or else the union of
    the lane polygons, built when first read. Most work never needs the union (a fill of the lane
    polygons is a fill of their union; ``VectorMap.drivable_parts`` gives them), and on maps of
    hundreds of lanes it costs more than reading the map."""

    @overload
    def __get__(self, obj: None, owner: Any) -> None: ...

    @overload
    def __get__(self, obj: VectorMap, owner: Any) -> BaseGeometry: ...

    def __get__(self, obj: VectorMap | None, owner: Any) -> BaseGeometry | None:
        if obj is None:
            return None  # the dataclass default: derive the area from the lanes
        if obj._drivable_area is None:
            load = obj._area_loader
            obj._drivable_area = shapely.union_all(obj.lane_polygons) if load is None else load()
        return obj._drivable_area

    def __set__(self, obj: VectorMap, value: BaseGeometry | None) -> None:
        obj._drivable_area = value
        obj._area_given = value is not None
        obj._area_loader = None
        obj._area_parts = None


@dataclass(eq=False)
class VectorMap:
    """A vector road map in one metric city frame.

    Attributes:
        lanes: the lane segments.
        crosswalks: pedestrian crossings as polygons.
        drivable_area: one (Multi)Polygon; the union of the lane polygons when not given, built
            when first read.
        road_edges: extra boundary polylines (curbs, road borders) as (K, 2) arrays.
        source: the file the map was read from ("" when built in memory).
        projection: set when the source was geographic (lat/lon), else None.
        road_lines: painted lines kept apart from the lanes (Waymo), with their mark types.
        driveways, speed_bumps: polygons (Waymo).
        stop_signs: stop signs (Waymo).
        boundaries_offset: the lane boundaries are the centerline offset sideways (Waymo): their
            polygons fold on turns tighter than the half width, and are mended without a warning.
    """

    lanes: list[Lane]
    crosswalks: list[Polygon] = field(default_factory=list)
    drivable_area: _DrivableArea = _DrivableArea()
    road_edges: list[FloatArray] = field(default_factory=list)
    source: str = ""
    projection: Projection | None = None
    road_lines: list[RoadLine] = field(default_factory=list)
    driveways: list[BaseGeometry] = field(default_factory=list)
    speed_bumps: list[BaseGeometry] = field(default_factory=list)
    stop_signs: list[StopSign] = field(default_factory=list)
    boundaries_offset: bool = False

    def __post_init__(self) -> None:
        # Set by the drivable_area descriptor; plain attributes, not fields, so that content
        # digests (mapenc.data.raster_cache) see the area itself, not how it was obtained.
        self._drivable_area: BaseGeometry | None
        self._area_given: bool
        self._area_loader: Callable[[], BaseGeometry] | None
        self._area_parts: list[BaseGeometry] | None
        ids = [lane.id for lane in self.lanes]
        if len(set(ids)) != len(ids):
            raise MapencError(f"{self.source or 'map'}: duplicate lane ids")
        self._lane_by_id = {lane.id: lane for lane in self.lanes}

    def load_drivable_area_when_read(
        self, load: Callable[[], BaseGeometry], parts: Sequence[BaseGeometry] | None = None
    ) -> None:
        """Give the map its drivable area as ``load``, called when the area is first read (a
        stored area that most work never decodes, or a union most work never needs). ``load``
        must be picklable when the map is sent to other processes. ``parts``: polygons whose
        union ``load`` returns, known without it; ``drivable_parts`` gives them."""
        self._drivable_area, self._area_given, self._area_loader = None, True, load
        self._area_parts = None if parts is None else list(parts)

    def lane(self, lane_id: str) -> Lane:
        """The lane with this id; MapencError if there is none."""
        try:
            return self._lane_by_id[lane_id]
        except KeyError:
            raise MapencError(f"{self.source or 'map'}: no lane with id {lane_id!r}") from None

    @property
    def area(self) -> BaseGeometry:
        """The drivable area as one geometry (``drivable_area``)."""
        return self.drivable_area

    @cached_property
    def lane_polygons(self) -> list[BaseGeometry]:
        """Every lane's ``polygon``, in lane order, built together: one vectorised validity check,
        repairs only for the invalid ones (one warning for the map, none when
        ``boundaries_offset``). Each lane's own ``polygon`` is then the same object."""
        todo = [lane for lane in self.lanes if "polygon" not in lane.__dict__]
        if todo:
            # Each ring: the left boundary, then the right one backwards (one concatenation).
            sides = [side for t in todo for side in (t.left_boundary, t.right_boundary[::-1])]
            polygons = joined_ring_polygons(
                np.concatenate(sides),
                [len(t.left_boundary) + len(t.right_boundary) for t in todo],
                [f"lane {lane.id}" for lane in todo],
                self.source or "map",
                quiet=self.boundaries_offset,
            )
            for lane, polygon in zip(todo, polygons, strict=True):
                lane.__dict__["polygon"] = polygon  # fills Lane.polygon's cache
        return [lane.polygon for lane in self.lanes]

    @property
    def drivable_parts(self) -> list[BaseGeometry]:
        """Polygons whose union is ``drivable_area``: the parts given with its loader
        (``load_drivable_area_when_read``), else the parts of the area given to the map, else
        the lane polygons (no union built). A pixel or point inside any of them is drivable."""
        given = getattr(self, "_area_parts", None)  # None in maps pickled before it existed
        if given is not None:
            parts = shapely.get_parts(np.array(given, dtype=object).reshape(-1))
            return [g for g in parts if not g.is_empty]
        if self._area_given:
            return [g for g in shapely.get_parts(self.drivable_area) if not g.is_empty]
        return [g for g in self.lane_polygons if not g.is_empty]

    @cached_property
    def bounds(self) -> Bounds:
        """(xmin, ymin, xmax, ymax) of every element, city frame; (0, 0, 0, 0) for an empty map.

        Taken from ``drivable_parts`` (a union's bounds are those of its parts), the crosswalks
        and the centerline points, without building the drivable area's union."""
        geoms = np.array([*self.drivable_parts, *self.crosswalks], dtype=object)
        boxes = [shapely.bounds(geoms[~shapely.is_empty(geoms)]).reshape(-1, 4)]
        if self.lanes:
            points = np.concatenate([lane.centerline for lane in self.lanes])
            boxes.append(np.concatenate([points.min(axis=0), points.max(axis=0)])[None])
        b = np.concatenate(boxes)
        if not len(b):
            return (0.0, 0.0, 0.0, 0.0)
        return (
            float(b[:, 0].min()),
            float(b[:, 1].min()),
            float(b[:, 2].max()),
            float(b[:, 3].max()),
        )

    @cached_property
    def _lane_tree(self) -> STRtree:
        polygons = np.empty(len(self.lanes), dtype=object)
        polygons[:] = self.lane_polygons
        centerlines = [shapely.LineString(lane.centerline) for lane in self.lanes]
        return STRtree(shapely.union(polygons, np.array(centerlines, dtype=object)))

    @cached_property
    def _crosswalk_tree(self) -> STRtree:
        return STRtree(self.crosswalks)

    def query(self, window: Bounds | BaseGeometry) -> MapQuery:
        """Lanes and crosswalks whose geometry touches ``window`` (a box (xmin, ymin, xmax, ymax)
        or any shapely geometry, city frame)."""
        geom = window if isinstance(window, BaseGeometry) else shapely.box(*window)
        return MapQuery(
            lanes=np.sort(self._lane_tree.query(geom, predicate="intersects")),
            crosswalks=np.sort(self._crosswalk_tree.query(geom, predicate="intersects")),
        )

    def summary(self) -> dict[str, Any]:
        """Counts, bounds and projection, for printing."""
        xmin, ymin, xmax, ymax = self.bounds
        return {
            "source": self.source,
            "lanes": len(self.lanes),
            "crosswalks": len(self.crosswalks),
            "drivable_area_m2": round(float(self.area.area), 1),
            "road_edges": len(self.road_edges),
            "road_lines": len(self.road_lines),
            "driveways": len(self.driveways),
            "speed_bumps": len(self.speed_bumps),
            "stop_signs": len(self.stop_signs),
            "bounds": [xmin, ymin, xmax, ymax],
            "extent_m": [round(xmax - xmin, 1), round(ymax - ymin, 1)],
            "projection": None if self.projection is None else self.projection.crs,
        }


@dataclass(frozen=True, eq=False)
class Track:
    """One agent over the scenario's time steps (index t = 0..T-1, time t * dt seconds).

    Attributes:
        id: identifier, unique within the scenario.
        kind: "vehicle", "pedestrian", "cyclist", ... (lower case).
        xy: (T, 2) float64 city-frame positions (metres); rows where ``valid`` is False are NaN.
        heading: (T,) float64 heading (rad, city frame); NaN where not valid.
        valid: (T,) bool, the agent is observed at that step.
        length, width: box size (metres).
        velocity: (T, 2) float64 city-frame velocity (m/s) when the source gives it, else None.
        category: source-specific label (AV2 object_category: 0 fragment .. 3 focal), or None.
    """

    id: str
    kind: str
    xy: FloatArray
    heading: FloatArray
    valid: NDArray[np.bool_]
    length: float = 4.5
    width: float = 2.0
    velocity: FloatArray | None = None
    category: int | None = None


_FIELDS = {cls: frozenset(f.name for f in fields(cls)) for cls in (Lane, Track)}
_CHECKED: set[type] = set()
LaneOrTrack = TypeVar("LaneOrTrack", Lane, Track)


def made_with_fields(cls: type[LaneOrTrack], **values: Any) -> LaneOrTrack:
    """A Lane or Track whose fields are ``values``, made without the generated ``__init__`` (a
    frozen dataclass sets every field through ``object.__setattr__``, about twice the time), for
    readers whose values are already checked (the scenario store, the Waymo and AV2 readers).
    The names are checked against the fields on the first call per class and process."""
    if cls not in _CHECKED:
        if values.keys() != _FIELDS[cls]:
            raise TypeError(f"{cls.__name__} fields are {sorted(_FIELDS[cls])}")
        _CHECKED.add(cls)
    made = object.__new__(cls)
    object.__setattr__(made, "__dict__", values)  # the keyword dict itself, not a copy
    return made


@dataclass(frozen=True)
class Provenance:
    """Where a scenario read back from the scenario store (``mapenc prepare``) was first read:
    what splitting needs of the original file, which the store's own file (``Scenario.source``)
    does not give.

    Attributes:
        name: the scene's name under the data path it was prepared from (its path relative to
            that folder, ``FILE#i`` for record i of a file of many), the name the original file
            gets when loaded directly; INTERACTION locations and recordings are read from it.
        sha256: hex SHA-256 of the original file or scene folder, by which fixed split files list
            it; None for a record of a file of many (fixed split files list whole files).
    """

    name: str
    sha256: str | None


@dataclass(eq=False)
class Scenario:
    """A map and the tracks recorded on it, sampled every ``dt`` seconds.

    Attributes:
        map: the vector map, same city frame as the tracks.
        dt: seconds between time steps.
        tracks: every agent; each Track holds arrays over the same T steps.
        focal_track_id: the agent to predict when the source names one (AV2), else None.
        source: the file or folder read; ``FILE#i`` for record i of a file of many scenarios.
        scenario_id: the source's own scenario id, when it has one.
        current_step: the last observed step (Waymo ``current_time_index``), when given.
        ego_track_id: the recording vehicle's track (Waymo ``sdc_track_index``), when given.
        tracks_to_predict: ids of the tracks the source asks to predict (Waymo), in its order.
        first_step: the source's own number of step 0 (INTERACTION: the first ``frame_id``), so
            that step ``t`` of the arrays is step ``first_step + t`` of the file.
        provenance: for a scenario read back from the scenario store, the name and content
            digest of the file it was first read from; None for a scenario read from its source.
    """

    map: VectorMap
    dt: float
    tracks: list[Track]
    focal_track_id: str | None = None
    source: str = ""
    scenario_id: str | None = None
    current_step: int | None = None
    ego_track_id: str | None = None
    tracks_to_predict: tuple[str, ...] = ()
    first_step: int = 0
    provenance: Provenance | None = None

    @property
    def num_steps(self) -> int:
        """T, the number of time steps."""
        return int(self.tracks[0].valid.shape[0]) if self.tracks else 0

    def track(self, track_id: str) -> Track:
        """The track with this id; MapencError if there is none."""
        for tr in self.tracks:
            if tr.id == track_id:
                return tr
        raise MapencError(f"{self.source or 'scenario'}: no track with id {track_id!r}")

    def poses_at(self, t: int) -> tuple[list[str], FloatArray]:
        """Ids and (N, 3) [x, y, heading] city-frame poses of the agents valid at step ``t``."""
        if not 0 <= t < self.num_steps:
            raise PoseError(f"time step {t} outside 0..{self.num_steps - 1}")
        ids = [tr.id for tr in self.tracks if tr.valid[t]]
        rows = [[*tr.xy[t], tr.heading[t]] for tr in self.tracks if tr.valid[t]]
        return ids, np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def stack_polygons(polys: Sequence[BaseGeometry]) -> BaseGeometry:
    """Union of polygons as one geometry (empty Polygon for none)."""
    return shapely.union_all(list(polys)) if polys else Polygon()
