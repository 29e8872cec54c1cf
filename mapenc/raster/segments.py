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
        if len(geoms) and shapely.get_type_id(geoms).max() >= 3:
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
    keep), keep False for segments wholly outside (their ends are then meaningless)."""
    d = (p1[0] - p0[0], p1[1] - p0[1])
    t0 = torch.zeros_like(d[0])
    t1 = torch.ones_like(d[0])
    keep = torch.ones_like(d[0], dtype=torch.bool)
    for axis, size in ((0, w), (1, h)):
        for p, q in ((-d[axis], p0[axis]), (d[axis], size - p0[axis])):
            parallel = p == 0
            keep &= ~(parallel & (q < 0))
            r = q / torch.where(parallel, 1.0, p)
            t0 = torch.where(~parallel & (p < 0), torch.maximum(t0, r), t0)
            t1 = torch.where(~parallel & (p > 0), torch.minimum(t1, r), t1)
    keep &= t0 <= t1
    start = (p0[0] + t0 * d[0], p0[1] + t0 * d[1])
    end = (p0[0] + t1 * d[0], p0[1] + t1 * d[1])
    return start, end, keep


@dataclass(frozen=True)
class Supercover:
    """Per clipped segment, the grid lines it crosses: ``lo[a]`` the first line u = k (a = 0)
    or v = k (a = 1) past its start's pixel, ``count[a]`` how many; ``total`` = 2 end pixels
    plus both counts (0 for segments clipped away)."""

    start: Pair
    end: Pair
    lo: Pair
    count: Pair
    total: torch.Tensor


def supercover_counts(p0: Pair, p1: Pair, w: int, h: int) -> Supercover:
    """Clip segments (pixel coordinates) to the raster and count the pixels each touches."""
    start, end, keep = clip_to_raster(p0, p1, w, h)
    lo, count = [], []
    for axis in (0, 1):  # crossings of vertical (u = k) then horizontal (v = k) grid lines
        first = torch.floor(torch.minimum(start[axis], end[axis])) + 1
        last = torch.ceil(torch.maximum(start[axis], end[axis])) - 1
        lo.append(first)
        count.append(torch.clamp(last - first + 1, min=0).to(torch.int64))
    total = torch.where(keep, 2 + count[0] + count[1], 0)
    return Supercover(start, end, (lo[0], lo[1]), (count[0], count[1]), total)


def supercover_at(cover: Supercover, seg: torch.Tensor, k: torch.Tensor, w: int, h: int) -> Pair:
    """(row, col) float pixel of element k of segment ``seg`` (``supercover_counts``): k = 0
    and 1 the end pixels (looked up just inside the segment, so an end on a grid line belongs to
    the pixel the segment runs through), then the pixels entered across vertical grid lines,
    then those entered across horizontal ones; clipped to the raster."""
    start = (cover.start[0].index_select(0, seg), cover.start[1].index_select(0, seg))
    end = (cover.end[0].index_select(0, seg), cover.end[1].index_select(0, seg))
    d = (end[0] - start[0], end[1] - start[1])
    n_u = cover.count[0].index_select(0, seg)
    by_u = k - 2 < n_u  # a crossing of a vertical line (when k >= 2)
    axis_lo = torch.where(by_u, cover.lo[0].index_select(0, seg), cover.lo[1].index_select(0, seg))
    line = axis_lo + torch.where(by_u, k - 2, k - 2 - n_u)
    along = (torch.where(by_u, start[0], start[1]), torch.where(by_u, d[0], d[1]))
    across = (torch.where(by_u, start[1], start[0]), torch.where(by_u, d[1], d[0]))
    other = across[0] + (line - along[0]) * (across[1] / along[1])
    entered = line - 0.5 + torch.sign(along[1]) * 0.5  # the pixel past the grid line
    row = torch.where(by_u, other, entered)
    col = torch.where(by_u, entered, other)
    first_end = k == 0
    end_row = torch.where(first_end, start[1] + END_NUDGE * d[1], end[1] - END_NUDGE * d[1])
    end_col = torch.where(first_end, start[0] + END_NUDGE * d[0], end[0] - END_NUDGE * d[0])
    row = torch.where(k < 2, end_row, row)
    col = torch.where(k < 2, end_col, col)
    return row.clamp_(0, h - 1), col.clamp_(0, w - 1)
