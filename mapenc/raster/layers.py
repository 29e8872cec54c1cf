"""The layer registry (name -> how it is drawn) and the map geometry each layer burns.

Kinds of layer:
- ``fill``: polygons, a pixel is on when its centre lies inside (drivable area, crosswalks);
- ``line``: polylines, every pixel the line touches is on (boundaries, centerlines);
- ``heading``: over each lane's area, sin or cos of the lane's direction minus the agent's
  heading, 0 outside lanes. Lanes are cut into quads between consecutive boundary samples, each
  carrying the direction of its piece of centerline. Where lanes overlap, the lane listed later in
  ``VectorMap.lanes`` wins (it is drawn last);
- ``distance``: metres from the pixel centre to the nearest centerline pixel, clipped at
  ``RasterSpec.distance_clip_m`` and divided by it (0 on a centerline, 1 far away);
- ``scene``: boxes of tracked agents from a ``Scenario`` at a time step (``agents``: the others
  now, ``ego``: the raster's own agent, ``history``: every agent over the past
  ``RasterSpec.history_steps`` frames, older frames fainter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from mapenc.maps.types import Lane, VectorMap, resample_polyline

LayerKind = Literal["fill", "line", "heading", "distance", "scene"]
GeometryArray = NDArray[np.object_]

# Polygons larger than this (metres) are cut into tiles, so a raster only touches nearby pieces.
TILE_SIZE_M = 32.0


@dataclass(frozen=True)
class Layer:
    """How one raster channel is drawn.

    Attributes:
        name: the channel's name.
        kind: fill, line, heading, distance or scene (see the module docstring).
        description: one line for ``list_layers`` and pictures.
        geometry: for fill/line layers, the map's city-frame geometry to burn.
        component: "sin"/"cos" for heading layers, the scene layer's name for scene layers.
    """

    name: str
    kind: LayerKind
    description: str
    geometry: Callable[[VectorMap], list[BaseGeometry]] | None = None
    component: str = ""


def _lines(polylines: list[NDArray[np.float64]]) -> list[BaseGeometry]:
    if not polylines:
        return []
    owner = np.repeat(np.arange(len(polylines)), [len(p) for p in polylines])
    return list(shapely.linestrings(np.concatenate(polylines), indices=owner))


def _boundaries(m: VectorMap, keep: Callable[[Lane, str], bool]) -> list[BaseGeometry]:
    """Lane boundaries whose mark passes ``keep``; a boundary shared by neighbouring lanes (in
    either direction) is kept once."""
    lines = [lane.left_boundary for lane in m.lanes if keep(lane, "left")]
    lines += [lane.right_boundary for lane in m.lanes if keep(lane, "right")]
    seen: set[bytes] = set()
    unique = []
    for line in lines:
        key = min(line.tobytes(), line[::-1].tobytes())
        if key not in seen:
            seen.add(key)
            unique.append(line)
    return _lines(unique)


def _solid(lane: Lane, side: str) -> bool:
    mark = lane.left_mark if side == "left" else lane.right_mark
    return mark.is_solid


def _dashed(lane: Lane, side: str) -> bool:
    mark = lane.left_mark if side == "left" else lane.right_mark
    return mark.is_dashed


def _polygons(geom: BaseGeometry | None) -> list[BaseGeometry]:
    if geom is None or geom.is_empty:
        return []
    return [g for g in getattr(geom, "geoms", [geom]) if not g.is_empty]


LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in [
        Layer("drivable_area", "fill", "drivable area", lambda m: _polygons(m.drivable_area)),
        Layer("crosswalks", "fill", "pedestrian crossings", lambda m: list(m.crosswalks)),
        Layer(
            "lane_boundaries",
            "line",
            "lane boundaries and road edges",
            lambda m: _boundaries(m, lambda _lane, _side: True) + _lines(m.road_edges),
        ),
        Layer(
            "lane_boundaries_solid",
            "line",
            "boundaries not to be crossed (solid, double solid, curb)",
            lambda m: _boundaries(m, _solid) + _lines(m.road_edges),
        ),
        Layer(
            "lane_boundaries_dashed",
            "line",
            "boundaries that may be crossed (dashed and mixed marks)",
            lambda m: _boundaries(m, _dashed),
        ),
        Layer(
            "centerlines",
            "line",
            "lane centerlines",
            lambda m: _lines([lane.centerline for lane in m.lanes]),
        ),
        Layer("lane_heading_sin", "heading", "sin(lane direction - agent heading)", None, "sin"),
        Layer("lane_heading_cos", "heading", "cos(lane direction - agent heading)", None, "cos"),
        Layer("distance_to_centerline", "distance", "distance to nearest centerline / clip"),
        Layer("agents", "scene", "other agents' boxes now", None, "agents"),
        Layer("ego", "scene", "the agent's own box", None, "ego"),
        Layer("history", "scene", "all boxes over the past frames, fading", None, "history"),
    ]
}


def map_geometry(vector_map: VectorMap, name: str) -> list[BaseGeometry]:
    """City-frame geometry a fill or line layer burns (untiled); [] for other kinds."""
    layer = LAYERS[name]
    return layer.geometry(vector_map) if layer.geometry is not None else []


def list_layers() -> list[str]:
    """Names of every layer a RasterSpec may ask for."""
    return list(LAYERS)


def tile_polygons(polygons: list[BaseGeometry], tile_m: float = TILE_SIZE_M) -> list[BaseGeometry]:
    """Cut polygons larger than ``tile_m`` into Polygon pieces on a ``tile_m`` grid (city frame).

    The pieces cover the same points, so filling them fills the same pixels; multi-part inputs
    come back as their parts.
    """
    pieces: list[BaseGeometry] = []
    for poly in (part for g in polygons for part in shapely.get_parts(g)):
        xmin, ymin, xmax, ymax = poly.bounds
        if xmax - xmin <= tile_m and ymax - ymin <= tile_m:
            pieces.append(poly)
            continue
        x0 = np.floor(xmin / tile_m) * tile_m
        y0 = np.floor(ymin / tile_m) * tile_m
        xs = np.arange(x0, xmax, tile_m)
        ys = np.arange(y0, ymax, tile_m)
        gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
        for x, y in zip(gx.tolist(), gy.tolist(), strict=True):
            piece = shapely.clip_by_rect(poly, x, y, x + tile_m, y + tile_m)
            pieces += list(shapely.get_parts(piece))
    return [p for p in pieces if p.geom_type == "Polygon" and not p.is_empty]


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
    """Per-map geometry of every fill/line layer plus the lane quads, each with an STRtree.

    Built once per map and shared by the exact and fast rasterizers (city frame, float64).
    """

    def __init__(self, vector_map: VectorMap) -> None:
        self.map = vector_map
        self._layers: dict[str, tuple[GeometryArray, STRtree]] = {}

    def layer(self, name: str) -> tuple[GeometryArray, STRtree]:
        """(geometries, tree) of a fill or line layer; filled polygons come cut into tiles."""
        if name not in self._layers:
            geoms = map_geometry(self.map, name)
            if LAYERS[name].kind == "fill":
                geoms = tile_polygons(geoms)
            arr = np.array(geoms, dtype=object).reshape(-1)
            self._layers[name] = (arr, STRtree(arr))
        return self._layers[name]

    @cached_property
    def quads(self) -> tuple[LaneQuads, STRtree]:
        """The lane quads of the heading layers and their tree."""
        q = lane_quads(self.map.lanes)
        return q, STRtree(q.quads)
