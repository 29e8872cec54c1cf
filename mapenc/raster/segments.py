"""Segment arithmetic shared by the exact and torch modes: map geometry as straight segments
(city metres), moved into each agent's pixel coordinates, then

- lines: every pixel a segment touches (its supercover, clipped to the raster);
- fills: where each polygon edge crosses the centre line of a pixel column (the winding
  numbers of the fills are running sums of those crossings down the rows).

Both rules come in two steps so that a whole batch expands once: a count per segment
(``crossing_counts``, ``supercover_counts``), then element k of segment s (``crossings_at``,
``supercover_at``). The exact mode runs them on numpy's memory (``mapenc.raster.exact``), the
torch mode on its device for all layers at once (``mapenc.raster.device_draw``): the same
operations in the same order, so on the CPU in float64 both modes light the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import torch
from numpy.typing import NDArray

GeometryArray = NDArray[np.object_]
Pair = tuple[torch.Tensor, torch.Tensor]

# shapely type ids of Polygon and MultiPolygon.
POLYGON_TYPE_IDS = (3, 6)
# Fraction of a segment by which its end pixels are looked up inside the segment.
END_NUDGE = 1e-9


def ramp(counts: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """For counts (M,): (owner, k) with owner repeated counts[m] times and k = 0..counts[m]-1."""
    owner = np.repeat(np.arange(len(counts)), counts)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, k


def ramp_tensor(
    counts: torch.Tensor, ends: torch.Tensor | None = None, total: int | None = None
) -> Pair:
    """``ramp`` in torch: (owner, k) for counts (M,) int.

    ``ends`` (``cumsum(counts)``) and ``total`` (its last value, on the host) save recomputing
    them; with ``total`` given, nothing waits for the device (``repeat_interleave`` is told its
    output size).
    """
    if ends is None:
        ends = torch.cumsum(counts, 0)
    owner = torch.repeat_interleave(counts, output_size=total)
    k = torch.arange(len(owner), device=counts.device, dtype=counts.dtype)
    return owner, k - (ends - counts).index_select(0, owner)


@dataclass(frozen=True)
class Segments:
    """A layer's geometry as straight segments grouped by geometry (city frame, metres).

    Attributes:
        start, end: (S, 2) float64 segment end points.
        first: (G + 1,) segments of geometry ``g`` are ``first[g]:first[g + 1]``.
    """

    start: NDArray[np.float64]
    end: NDArray[np.float64]
    first: NDArray[np.intp]

    @classmethod
    def of(cls, geoms: GeometryArray) -> Segments:
        """Segments of lines (all parts) or polygons (all rings, exterior counter-clockwise and
        holes clockwise, so winding numbers count covering polygons)."""
        if np.isin(shapely.get_type_id(geoms), POLYGON_TYPE_IDS).any():
            geoms = shapely.orient_polygons(geoms)
            paths, owner = shapely.get_rings(geoms, return_index=True)
        else:
            paths, owner = shapely.get_parts(geoms, return_index=True)
        coords, path = shapely.get_coordinates(paths, return_index=True)
        same_path = path[1:] == path[:-1]
        seg_owner = owner[path[:-1][same_path]]
        counts = np.bincount(seg_owner, minlength=len(geoms))
        first = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
        return cls(coords[:-1][same_path], coords[1:][same_path], first)

    def for_pairs(
        self, agent_idx: NDArray[np.intp], geom_idx: NDArray[np.intp]
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(pair of each segment, segment index) for every segment of every (agent, geometry)
        pair ``k = (agent_idx[k], geom_idx[k])``."""
        counts = self.first[geom_idx + 1] - self.first[geom_idx]
        pair, k = ramp(counts)
        return pair, self.first[geom_idx][pair] + k


def to_pixels(
    raster_from_city: torch.Tensor, agent: torch.Tensor, start: torch.Tensor, end: torch.Tensor
) -> tuple[Pair, Pair]:
    """Segments (S, 2) city metres -> ((u0, v0), (u1, v1)) in their agent's pixel coordinates,
    float64, through each agent's (N, 3, 3) ``raster_from_city``."""
    m = raster_from_city.reshape(-1, 9).index_select(0, agent).T  # (9, S)
    x0, y0, x1, y1 = start[:, 0], start[:, 1], end[:, 0], end[:, 1]
    p0 = (m[0] * x0 + m[1] * y0 + m[2], m[3] * x0 + m[4] * y0 + m[5])
    p1 = (m[0] * x1 + m[1] * y1 + m[2], m[3] * x1 + m[4] * y1 + m[5])
    return p0, p1


def crossing_counts(p0: Pair, p1: Pair, w: int) -> Pair:
    """(first column, count) of the pixel-column centre lines u = j + 0.5 each edge crosses
    (half-open in u; columns 0..W-1; edges parallel to the columns cross none)."""
    du = p1[0] - p0[0]
    col_lo = torch.ceil(torch.minimum(p0[0], p1[0]) - 0.5).clamp(0, w)
    col_hi = torch.ceil(torch.maximum(p0[0], p1[0]) - 0.5).clamp(0, w)
    return col_lo, torch.where(du != 0, col_hi - col_lo, 0).to(torch.int64)


def crossings_at(
    p0: Pair, p1: Pair, col_lo: torch.Tensor, edge: torch.Tensor, k: torch.Tensor, h: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(column, row, sign) of crossing k of edge ``edge`` (``crossing_counts``): the column whose
    centre line it crosses, the first row whose centre lies at or below the crossing (clipped to
    0..H) and the edge's direction in u (+1 / -1), all float."""
    du = p1[0] - p0[0]
    col = col_lo.index_select(0, edge) + k
    slope = ((p1[1] - p0[1]) / torch.where(du != 0, du, 1.0)).index_select(0, edge)
    v = p0[1].index_select(0, edge) + (col + 0.5 - p0[0].index_select(0, edge)) * slope
    row = torch.ceil(v - 0.5).clamp(0, h)
    return col, row, torch.sign(du).index_select(0, edge)


def clip_to_raster(p0: Pair, p1: Pair, w: int, h: int) -> tuple[Pair, Pair, torch.Tensor]:
    """Segments (u, v columns) clipped to the box [0, w] x [0, h] (Liang-Barsky): (start, end,
    keep), keep False for segments wholly outside (their ends are then meaningless). The four
    box edges are handled as one stacked (4, S) array."""
    d = (p1[0] - p0[0], p1[1] - p0[1])
    p = torch.stack([-d[0], d[0], -d[1], d[1]])
    q = torch.stack([p0[0], w - p0[0], p0[1], h - p0[1]])
    parallel = p == 0
    ratio = q / torch.where(parallel, 1.0, p)
    t0 = torch.where(p < 0, ratio, 0.0).amax(0)  # entering the box: the last entry
    t1 = torch.where(p > 0, ratio, 1.0).amin(0)  # leaving it: the first exit
    keep = ~(parallel & (q < 0)).any(0) & (t0 <= t1)
    start = (p0[0] + t0 * d[0], p0[1] + t0 * d[1])
    end = (p0[0] + t1 * d[0], p0[1] + t1 * d[1])
    return start, end, keep


@dataclass(frozen=True)
class Supercover:
    """The pixels clipped segments touch, per segment (S,): its two end pixels, then per axis
    a the grid lines it crosses (a = 0: vertical lines u = k, a = 1: horizontal lines v = k).

    Attributes:
        keep: (S,) bool, False for segments clipped away (they touch nothing).
        end_rows, end_cols: (2, S) float pixel rows and columns of the start and end pixels.
        lo: per axis (S,) float, the first grid line crossed; count: per axis (S,) int64 how
            many (0 for segments clipped away).
        along, across: per axis (S,) float, the start's coordinate along and across the axis;
        slope: per axis (S,) d(across) / d(along); shift: per axis (S,) 0 or -1, from a grid
            line to the pixel past it (0 going up the axis, -1 going down).
    """

    keep: torch.Tensor
    end_rows: torch.Tensor
    end_cols: torch.Tensor
    lo: Pair
    count: Pair
    along: Pair
    across: Pair
    slope: Pair
    shift: Pair


def supercover_counts(p0: Pair, p1: Pair, w: int, h: int) -> Supercover:
    """Clip segments (pixel coordinates) to the raster and find the pixels each touches."""
    start, end, keep = clip_to_raster(p0, p1, w, h)
    d = (end[0] - start[0], end[1] - start[1])
    # End pixels are taken just inside the segment: an end point on a grid line belongs to the
    # pixel the segment runs through.
    end_cols = torch.stack([start[0] + END_NUDGE * d[0], end[0] - END_NUDGE * d[0]])
    end_rows = torch.stack([start[1] + END_NUDGE * d[1], end[1] - END_NUDGE * d[1]])
    lo, count, slope, shift = [], [], [], []
    for axis in (0, 1):  # crossings of vertical (u = k) then horizontal (v = k) grid lines
        first = torch.floor(torch.minimum(start[axis], end[axis])) + 1
        last = torch.ceil(torch.maximum(start[axis], end[axis])) - 1
        lo.append(first)
        count.append(torch.where(keep, (last - first + 1).clamp_(min=0), 0).to(torch.int64))
        slope.append(d[1 - axis] / d[axis])
        shift.append(torch.sign(d[axis]) * 0.5 - 0.5)
    return Supercover(
        keep,
        end_rows.clamp_(0, h - 1),
        end_cols.clamp_(0, w - 1),
        (lo[0], lo[1]),
        (count[0], count[1]),
        (start[0], start[1]),
        (start[1], start[0]),
        (slope[0], slope[1]),
        (shift[0], shift[1]),
    )


def grid_crossings(
    cover: Supercover, axis: int, seg: torch.Tensor, k: torch.Tensor, w: int, h: int
) -> Pair:
    """(row, col) float pixel entered at the k-th crossing of segment ``seg`` with the grid
    lines of ``axis`` (``Supercover``), clipped to the raster."""
    line = cover.lo[axis].index_select(0, seg) + k
    start_along = cover.along[axis].index_select(0, seg)
    other = cover.across[axis].index_select(0, seg)
    other = other + (line - start_along) * cover.slope[axis].index_select(0, seg)
    entered = line + cover.shift[axis].index_select(0, seg)  # the pixel past the line
    row, col = (other, entered) if axis == 0 else (entered, other)
    return row.clamp_(0, h - 1), col.clamp_(0, w - 1)
