"""Per-map geometry the rasterizers draw: each layer's shapes with an STRtree, and the lane quads.

Large polygons are split into pieces with few vertices (``split_polygons``), and lines into runs
of a few segments (``split_lines``), so a raster only touches nearby pieces; the split follows the
vertices, not the area, so a 100 km polygon with four corners stays one piece and costs nothing.
Lines and fills drawn from the pieces light exactly the pixels the whole geometries light: a
line's pixels are those of its segments, which the pieces keep as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import shapely
import shapely.errors
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from mapenc.maps.types import Lane, VectorMap, resample_polyline
from mapenc.raster.segments import GeometryArray, Segments

# Polygons are split until a piece is at most this wide and tall (metres) or has at most
# MAX_PIECE_VERTICES vertices. About a raster's window (224 px at 0.5 m): splitting finer costs
# more per map (GEOS clips) than it saves when a map gets a few rasters (Waymo, AV2: 4-8 agents),
# and a map that gets many is drawn by the fast mode in ``auto``.
TILE_SIZE_M = 128.0
MAX_PIECE_VERTICES = 64
# Lines are cut into runs of at most this many segments (real maps sample lanes every 0.5-1 m, so
# a run spans a few metres to a few tens of metres).
LINE_PIECE_SEGMENTS = 32


class DrawnFromMap(Protocol):
    """What ``MapGeometry`` needs of a fill or line layer."""

    @property
    def name(self) -> str: ...

    @property
    def geometry(self) -> Callable[[VectorMap], list[BaseGeometry]] | None: ...

    @property
    def fills(self) -> bool: ...


def split_polygons(
    polygons: list[BaseGeometry],
    tile_m: float = TILE_SIZE_M,
    max_vertices: int = MAX_PIECE_VERTICES,
) -> list[BaseGeometry]:
    """Cut polygons in halves (across their longer side) until every piece is at most ``tile_m``
    wide and tall or has at most ``max_vertices`` vertices (city frame).

    The pieces cover the same points, so filling them fills the same pixels; multi-part inputs
    come back as their parts. The work grows with the number of vertices, not with the area.
    """
    todo = [part for g in polygons for part in shapely.get_parts(g)]
    pieces: list[BaseGeometry] = []
    while todo:
        poly = todo.pop()
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        xmin, ymin, xmax, ymax = poly.bounds
        small = xmax - xmin <= tile_m and ymax - ymin <= tile_m
        if small or shapely.get_num_coordinates(poly) <= max_vertices:
            pieces.append(poly)
            continue
        if xmax - xmin >= ymax - ymin:
            mid = 0.5 * (xmin + xmax)
            halves = [(xmin, ymin, mid, ymax), (mid, ymin, xmax, ymax)]
        else:
            mid = 0.5 * (ymin + ymax)
            halves = [(xmin, ymin, xmax, mid), (xmin, mid, xmax, ymax)]
        try:
            halves_clipped = [shapely.clip_by_rect(poly, *box) for box in halves]
        except shapely.errors.GEOSException:
            # A ring GEOS cannot clip (e.g. a hole of 3 points in a repaired lanelet): kept whole.
            pieces.append(poly)
            continue
        for clipped in halves_clipped:
            todo += list(shapely.get_parts(clipped))
    return pieces


def split_lines(
    lines: list[BaseGeometry], max_segments: int = LINE_PIECE_SEGMENTS
) -> list[BaseGeometry]:
    """Every part of ``lines`` (LineStrings, MultiLineStrings; city frame) cut into runs of at most
    ``max_segments`` consecutive segments, each run starting where the last one ended.

    The runs hold the same segments, in order: drawing them draws the same pixels. Parts with
    fewer than 2 points are dropped (they have no segment)."""
    parts = shapely.get_parts(np.asarray(lines, dtype=object))
    coords, owner = shapely.get_coordinates(parts, return_index=True)
    sizes = np.bincount(owner, minlength=len(parts))
    segments = np.maximum(sizes - 1, 0)
    runs = -(-segments // max_segments)  # ceil
    if not runs.sum():
        return []
    # Run r of a part starts at its vertex r * max_segments and ends max_segments later, or at
    # the part's last vertex.
    part = np.repeat(np.arange(len(parts)), runs)
    run = np.arange(runs.sum()) - np.repeat(np.cumsum(runs) - runs, runs)
    first_vertex = np.cumsum(sizes) - sizes
    start = first_vertex[part] + run * max_segments
    stop = np.minimum(start + max_segments, first_vertex[part] + sizes[part] - 1)
    length = stop - start + 1
    run_of_point = np.repeat(np.arange(len(start)), length)
    point = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    pieces = shapely.linestrings(coords[start[run_of_point] + point], indices=run_of_point)
    return list(pieces)


@dataclass(frozen=True)
class LaneQuads:
    """Lanes cut into quads for the heading layers.

    Attributes:
        quads: (Q,) shapely Polygons, city frame, in map order (lane by lane, along each lane).
        heading: (Q,) float64 direction of each quad's piece of centerline (rad, city frame).
    """

    quads: GeometryArray
    heading: NDArray[np.float64]


def lane_quads(lanes: list[Lane]) -> LaneQuads:
    """Cut every lane into quads between boundary samples taken at the same arc-length fractions."""
    quads: list[NDArray[np.float64]] = []
    headings: list[NDArray[np.float64]] = []
    for lane in lanes:
        n = max(len(lane.left_boundary), len(lane.right_boundary), len(lane.centerline), 2)
        left = resample_polyline(lane.left_boundary, n)
        right = resample_polyline(lane.right_boundary, n)
        rings = np.stack([left[:-1], left[1:], right[1:], right[:-1]], axis=1)
        direction = np.diff(0.5 * (left + right), axis=0)
        quads.append(rings)
        headings.append(np.arctan2(direction[:, 1], direction[:, 0]))
    if not quads:
        return LaneQuads(np.empty(0, dtype=object), np.empty(0))
    return LaneQuads(shapely.polygons(np.concatenate(quads)), np.concatenate(headings))


class MapGeometry:
    """Per-map geometry of every fill/line layer plus the lane quads, each with an STRtree and
    its straight segments, built on first use (city frame, float64). Shared by all modes."""

    def __init__(self, vector_map: VectorMap) -> None:
        self.map = vector_map
        self._layers: dict[str, tuple[GeometryArray, STRtree]] = {}
        self._segments: dict[str, Segments] = {}

    def layer(self, layer: DrawnFromMap) -> tuple[GeometryArray, STRtree]:
        """(geometries, tree) of a fill or line layer; filled polygons come split into pieces."""
        if layer.name not in self._layers:
            geoms = layer.geometry(self.map) if layer.geometry is not None else []
            geoms = split_polygons(geoms) if layer.fills else split_lines(geoms)
            arr = np.array(geoms, dtype=object).reshape(-1)
            self._layers[layer.name] = (arr, STRtree(arr))
        return self._layers[layer.name]

    def segments(self, layer: DrawnFromMap) -> Segments:
        """The straight segments of a fill or line layer's geometries."""
        if layer.name not in self._segments:
            self._segments[layer.name] = Segments.of(self.layer(layer)[0])
        return self._segments[layer.name]

    @cached_property
    def quads(self) -> tuple[LaneQuads, STRtree]:
        """The lane quads of the heading layers and their tree."""
        q = lane_quads(self.map.lanes)
        return q, STRtree(q.quads)

    @cached_property
    def quad_segments(self) -> Segments:
        return Segments.of(self.quads[0].quads)


def in_box(tree: STRtree, box: tuple[float, float, float, float]) -> NDArray[np.intp]:
    """Sorted indices of the tree's geometries meeting the city-frame box (xmin, ymin, xmax, ymax)."""
    if len(tree.geometries) == 0:
        return np.empty(0, dtype=np.intp)
    return np.sort(tree.query(shapely.box(*box), predicate="intersects")).astype(np.intp)
