"""Per-map geometry the rasterizers draw: each layer's segments in pieces, each piece with its
bounding box (``Pieces``), and the lane quads.

Large polygons are split into pieces with few vertices (``split_polygons``), and lines into runs
of a few segments (``line_runs``), so a raster only touches nearby pieces; the split follows the
vertices, not the area, so a 100 km polygon with four corners stays one piece and costs nothing.
Lines and fills drawn from the pieces light exactly the pixels the whole geometries light: a
line's pixels are those of its segments, which the runs keep as they are.

A raster's pieces are those whose box meets its window (``Pieces.meeting``: a separating-axis test
of the boxes against the rotated windows, for all agents at once, in numpy). That takes more
pieces than an exact intersection test would, never fewer; a piece that misses the window draws
nothing in it (a line's segments are clipped away, and a closed ring wholly outside a raster
crosses each of its pixel columns as often upwards as downwards). No GEOS object is made per
piece of line and no tree is built: per map, that set-up costs more than drawing the few agents
of a Waymo or AV2 scenario.
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

from mapenc.geometry.ragged import ramp
from mapenc.maps.types import FloatArray, Lane, VectorMap, resampled_sides
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
    def polylines(self) -> Callable[[VectorMap], list[FloatArray]] | None: ...

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

    def polygon_parts(geoms: list[BaseGeometry]) -> NDArray[np.object_]:
        parts = shapely.get_parts(np.asarray(geoms, dtype=object).reshape(-1))
        return parts[
            (shapely.get_type_id(parts) == shapely.GeometryType.POLYGON) & ~shapely.is_empty(parts)
        ]

    def settle(parts: NDArray[np.object_]) -> list[BaseGeometry]:
        """Keep the parts small enough as pieces; return the others, to be cut."""
        box = shapely.bounds(parts).reshape(-1, 4)
        small = ((box[:, 2:] - box[:, :2]) <= tile_m).all(axis=1)
        done = small | (shapely.get_num_coordinates(parts) <= max_vertices)
        pieces.extend(parts[done])
        return list(parts[~done])

    pieces: list[BaseGeometry] = []
    todo = settle(polygon_parts(polygons))
    while todo:  # one round halves every polygon still too big; their halves are sorted together
        halves_clipped: list[BaseGeometry] = []
        for poly, (xmin, ymin, xmax, ymax) in zip(todo, shapely.bounds(todo), strict=True):
            if xmax - xmin >= ymax - ymin:
                mid = 0.5 * (xmin + xmax)
                halves = [(xmin, ymin, mid, ymax), (mid, ymin, xmax, ymax)]
            else:
                mid = 0.5 * (ymin + ymax)
                halves = [(xmin, ymin, xmax, mid), (xmin, mid, xmax, ymax)]
            try:
                halves_clipped += [shapely.clip_by_rect(poly, *box) for box in halves]
            except shapely.errors.GEOSException:
                # A ring GEOS cannot clip (e.g. a hole of 3 points in a repaired lanelet): kept
                # whole.
                pieces.append(poly)
        todo = settle(polygon_parts(halves_clipped)) if halves_clipped else []
    return pieces


def line_runs(polylines: list[FloatArray], max_segments: int = LINE_PIECE_SEGMENTS) -> Segments:
    """The segments of every polyline ((K, 2) points, city frame), in order, grouped into runs of
    at most ``max_segments`` consecutive segments of one polyline (the pieces of ``Pieces``).
    Polylines with fewer than 2 points have no segment."""
    if not polylines:
        return Segments(np.empty((4, 0)), np.zeros(1, dtype=np.intp))
    coords = np.concatenate(polylines).astype(np.float64, copy=False)
    points = np.array([len(p) for p in polylines], dtype=np.intp)
    per_part = np.maximum(points - 1, 0)
    # Segment i of the whole array joins points i and i + 1; the last point of each polyline
    # starts none.
    starts = np.ones(len(coords), dtype=bool)
    starts[np.cumsum(points)[points > 0] - 1] = False
    runs = -(-per_part // max_segments)  # ceil
    # Run r of a polyline holds its segments from r * max_segments on, up to max_segments.
    run_part, run = ramp(runs)
    part_first = np.cumsum(per_part) - per_part
    first = np.append(part_first[run_part] + run * max_segments, per_part.sum())
    return Segments.joining(coords, starts[:-1], first.astype(np.intp))


def window_corners(raster_from_city: NDArray[np.float64], size_px: tuple[int, int]) -> FloatArray:
    """(N, 4, 2) city-frame corners of each raster's window, in order around it, from (N, 3, 3)
    city -> pixel matrices and the raster size (H, W)."""
    h, w = size_px
    city_from_raster = np.linalg.inv(raster_from_city)
    corners = np.array([[0.0, 0.0, 1.0], [w, 0.0, 1.0], [w, h, 1.0], [0.0, h, 1.0]])
    return np.einsum("nab,kb->nka", city_from_raster, corners)[..., :2]


# Margin (metres) of the box tests: rounding never drops a piece that touches a window.
BOX_MARGIN_M = 1e-6
# (agent, piece) box tests per block of ``Pieces.meeting`` (a few arrays of this many floats).
MEETING_TESTS = 1 << 20


@dataclass(frozen=True)
class Pieces:
    """A fill or line layer's geometry as pieces of a few segments (city frame, metres).

    Attributes:
        segments: the pieces' segments, piece ``p`` holding ``first[p]:first[p + 1]``.
        box: (P, 4) float64 [xmin, ymin, xmax, ymax] of each piece (NaN for a piece without
            segments: it meets nothing).
    """

    segments: Segments
    box: FloatArray

    @classmethod
    def of(cls, segments: Segments) -> Pieces:
        """The pieces of ``segments`` (grouped as given), with their boxes."""
        count = np.diff(segments.first)
        box = np.full((len(count), 4), np.nan)
        filled = count > 0
        if filled.any():
            at = segments.first[:-1][filled]
            x0, x1, y0, y1 = segments.ends
            for column, (lows, highs) in enumerate(((x0, x1), (y0, y1))):
                box[filled, column] = np.minimum.reduceat(np.minimum(lows, highs), at)
                box[filled, column + 2] = np.maximum.reduceat(np.maximum(lows, highs), at)
        return cls(segments, box)

    def __len__(self) -> int:
        return len(self.box)

    @cached_property
    def _widened(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """(2, P) rows x, y of the boxes widened by ``BOX_MARGIN_M``: low and high corners,
        centres and half sides (the window test's per-piece constants)."""
        box = np.ascontiguousarray(self.box.T)  # (4, P)
        lo, hi = box[:2] - BOX_MARGIN_M, box[2:] + BOX_MARGIN_M
        return lo, hi, 0.5 * (lo + hi), 0.5 * (hi - lo)

    def meeting(self, corners: FloatArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(agent index, piece index) of every piece whose box meets an agent's window (corners
        (N, 4, 2) from ``window_corners``), sorted by piece, then agent, so that drawing keeps
        the pieces' order (later ones on top).

        A box and a window are convex: they meet unless their projections are apart on an axis
        of the box (x, y) or along one of the window's two edge directions. Agents are tested in
        blocks of at most ``MEETING_TESTS`` (agent, piece) pairs, so memory stays bounded on
        maps of many pieces."""
        block = max(1, MEETING_TESTS // max(len(self), 1))
        found = [
            self._meeting_block(corners[s : s + block], s) for s in range(0, len(corners), block)
        ]
        agent_idx = np.concatenate([a for a, _ in found]) if found else np.empty(0, np.intp)
        piece_idx = np.concatenate([p for _, p in found]) if found else np.empty(0, np.intp)
        order = np.lexsort((agent_idx, piece_idx))
        return agent_idx[order], piece_idx[order]

    def _meeting_block(
        self, corners: FloatArray, first_agent: int
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """``meeting`` for the windows ``corners`` (n, 4, 2) of agents ``first_agent`` onwards."""
        lo, hi, centre, half = self._widened
        window_lo, window_hi = corners.min(axis=1), corners.max(axis=1)  # (n, 2)
        # Axis by axis: numpy reduces an axis of two ~10x slower than it combines two arrays.
        meet = (lo[0] <= window_hi[:, 0, None]) & (hi[0] >= window_lo[:, 0, None])
        meet &= (lo[1] <= window_hi[:, 1, None]) & (hi[1] >= window_lo[:, 1, None])
        for edge in (corners[:, 1] - corners[:, 0], corners[:, 3] - corners[:, 0]):  # (n, 2)
            start = np.einsum("nk,nk->n", corners[:, 0], edge)[:, None]
            end = start + np.einsum("nk,nk->n", edge, edge)[:, None]
            box_centre, box_half = edge @ centre, np.abs(edge) @ half  # (n, P)
            meet &= (box_centre + box_half >= start) & (box_centre - box_half <= end)
        agent_idx, piece_idx = np.nonzero(meet)
        return (agent_idx + first_agent).astype(np.intp), piece_idx.astype(np.intp)

    def in_box(self, box: tuple[float, float, float, float]) -> NDArray[np.intp]:
        """Sorted indices of the pieces whose box meets the city-frame box (xmin, ymin, xmax,
        ymax)."""
        xmin, ymin, xmax, ymax = box
        lo, hi = self.box[:, :2] - BOX_MARGIN_M, self.box[:, 2:] + BOX_MARGIN_M
        meet = (lo[:, 0] <= xmax) & (hi[:, 0] >= xmin) & (lo[:, 1] <= ymax) & (hi[:, 1] >= ymin)
        return np.flatnonzero(meet).astype(np.intp)


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
    nums = np.array(
        [max(len(a.left_boundary), len(a.right_boundary), len(a.centerline), 2) for a in lanes],
        dtype=np.intp,
    )
    sides = resampled_sides(
        [a.left_boundary for a in lanes], [a.right_boundary for a in lanes], nums
    )
    quads: list[NDArray[np.float64]] = []
    headings: list[NDArray[np.float64]] = []
    for left, right in sides:
        rings = np.stack([left[:-1], left[1:], right[1:], right[:-1]], axis=1)
        direction = np.diff(0.5 * (left + right), axis=0)
        quads.append(rings)
        headings.append(np.arctan2(direction[:, 1], direction[:, 0]))
    if not quads:
        return LaneQuads(np.empty(0, dtype=object), np.empty(0))
    return LaneQuads(shapely.polygons(np.concatenate(quads)), np.concatenate(headings))


class MapGeometry:
    """Per-map pieces of every fill/line layer and the lane quads, built on first use (city
    frame, float64). Shared by all modes."""

    def __init__(self, vector_map: VectorMap) -> None:
        self.map = vector_map
        self._pieces: dict[str, Pieces] = {}

    def pieces(self, layer: DrawnFromMap) -> Pieces:
        """The pieces of a fill or line layer: split polygons (their oriented rings, see
        ``Segments.of``) or runs of line segments (taken from the layer's point arrays, no
        GEOS object made)."""
        if layer.name not in self._pieces:
            if layer.polylines is not None:
                segments = line_runs(layer.polylines(self.map))
            else:
                geoms = layer.geometry(self.map) if layer.geometry is not None else []
                segments = Segments.of(np.array(split_polygons(geoms), dtype=object).reshape(-1))
            self._pieces[layer.name] = Pieces.of(segments)
        return self._pieces[layer.name]

    @cached_property
    def quads(self) -> tuple[LaneQuads, Pieces]:
        """The lane quads of the heading layers and their pieces (one per quad)."""
        q = lane_quads(self.map.lanes)
        return q, Pieces.of(Segments.of(q.quads))
