"""Per-map geometry the rasterizers draw: each layer's shapes with an STRtree, and the lane quads.

Large polygons are split into pieces with few vertices (``split_polygons``), so a raster only
touches nearby pieces; the split follows the vertices, not the area, so a 100 km polygon with four
corners stays one piece and costs nothing.
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
# MAX_PIECE_VERTICES vertices.
TILE_SIZE_M = 32.0
MAX_PIECE_VERTICES = 64


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
            if layer.fills:
                geoms = split_polygons(geoms)
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
