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
# Segments in pixel coordinates ("Points"): a (2, 2, S) float tensor, [u or v][start or end][s].

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
) -> torch.Tensor:
    """Segments (S, 2) city metres -> (2, 2, S) float64 pixel coordinates of their agent's
    raster (``Points``), through each agent's (N, 3, 3) ``raster_from_city``."""
    rows = raster_from_city[:, :2].reshape(-1, 6).T.contiguous()  # (6, N)
    x = torch.stack([start[:, 0], end[:, 0]])
    y = torch.stack([start[:, 1], end[:, 1]])
    return moved(rows.index_select(1, agent), x, y)


def moved(rows: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Points x, y (2, S) (start, end) through per-segment affine rows (6, S) (``[a, b, c, d,
    e, f]``: u = a x + b y + c, v = d x + e y + f) -> ``Points`` (2, 2, S)."""
    m = rows.view(2, 3, 1, -1)
    return m[:, 0] * x + m[:, 1] * y + m[:, 2]


@dataclass(frozen=True)
class Crossings:
    """Where polygon edges (S,) cross the centre lines u = j + 0.5 of pixel columns (half-open in
    u; columns 0..W-1; edges parallel to the columns cross none).

    Attributes:
        count: (S,) int64 columns crossed.
        first_col, slope, v0, u0, sign: (S,) float the first column crossed, dv / du, the
            start point and the direction in u (+1 / -1).
    """

    count: torch.Tensor
    first_col: torch.Tensor
    slope: torch.Tensor
    v0: torch.Tensor
    u0: torch.Tensor
    sign: torch.Tensor


def crossing_counts(points: torch.Tensor, w: int) -> Crossings:
    """The ``Crossings`` of edges ``Points`` (2, 2, S)."""
    u, v = points
    du = u[1] - u[0]
    cols = torch.ceil(torch.stack(torch.aminmax(u, dim=0)) - 0.5).clamp_(0, w)  # (2, S) lo, hi
    moving = du != 0
    return Crossings(
        count=torch.where(moving, cols[1] - cols[0], 0).to(torch.int64),
        first_col=cols[0],
        slope=(v[1] - v[0]) / torch.where(moving, du, 1.0),
        v0=v[0],
        u0=u[0],
        sign=torch.sign(du),
    )


def crossings_at(
    crossings: Crossings, edge: torch.Tensor, k: torch.Tensor, h: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(column, row, sign) of crossing k of edge ``edge``: the column whose centre line it
    crosses, the first row whose centre lies at or below the crossing (clipped to 0..H) and the
    edge's direction in u (+1 / -1), all float."""
    col = crossings.first_col.index_select(0, edge) + k
    v = crossings.v0.index_select(0, edge) + (col + 0.5 - crossings.u0.index_select(0, edge)) * (
        crossings.slope.index_select(0, edge)
    )
    row = torch.ceil(v - 0.5).clamp_(0, h)
    return col, row, crossings.sign.index_select(0, edge)


def clip_to_raster(points: torch.Tensor, w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Segments ``Points`` (2, 2, S) clipped to the box [0, w] x [0, h] (Liang-Barsky):
    (``Points`` of the clipped segments, keep (S,)), keep False for segments wholly outside
    (their points are then meaningless). The four box edges are handled as one (4, S) array."""
    start = points[:, 0]  # (2, S) u, v
    d = points[:, 1] - start
    p = torch.cat([-d, d])  # -du, -dv, du, dv
    q = torch.cat([start, (w - start[0])[None], (h - start[1])[None]])  # u0, v0, w - u0, h - v0
    parallel = p == 0
    ratio = q / torch.where(parallel, 1.0, p)
    t0 = torch.where(p < 0, ratio, 0.0).amax(0)  # entering the box: the last entry
    t1 = torch.where(p > 0, ratio, 1.0).amin(0)  # leaving it: the first exit
    keep = ~(parallel & (q < 0)).any(0) & (t0 <= t1)
    return start[:, None] + torch.stack([t0, t1]) * d[:, None], keep


# The four rules that make a supercover, in ``Supercover``'s order: its start pixel, its end
# pixel, the pixels entered across vertical grid lines u = k, across horizontal lines v = k.
SUPERCOVER_RULES = 4


@dataclass(frozen=True)
class Supercover:
    """The pixels clipped segments (S,) touch, as four rules (``SUPERCOVER_RULES``) of pixels
    per segment: ``count`` (4 * S,) int64 pixels of rule r of segment s at ``r * S + s``, and
    pixel k of each from the (4 * S,) float tables (``supercover_at``):

        line = first + k; along the rule's axis: entered = line + shift; across it:
        other = across + (line - along) * slope

    The end pixels (rules 0, 1) are one pixel each: first = column, across = row, along =
    slope = shift = 0. Grid-line rules step over the lines crossed from ``first``; along, across
    are the clipped start's coordinates and shift is 0 or -1, from a grid line to the pixel past
    it (0 going up the axis, -1 going down). Rules 0-2 step along columns (row = other), rule 3
    along rows (col = other). Segments clipped away (keep False) count 0 in every rule.
    """

    keep: torch.Tensor
    count: torch.Tensor
    first: torch.Tensor
    along: torch.Tensor
    across: torch.Tensor
    slope: torch.Tensor
    shift: torch.Tensor


def supercover_counts(points: torch.Tensor, w: int, h: int) -> Supercover:
    """Clip segments ``Points`` (2, 2, S) to the raster and find the pixels each touches."""
    clipped, keep = clip_to_raster(points, w, h)
    start, end = clipped[:, 0], clipped[:, 1]  # (2, S) u, v
    d = end - start
    # End pixels are taken just inside the segment: an end point on a grid line belongs to the
    # pixel the segment runs through.
    first_end = start + END_NUDGE * d
    last_end = end - END_NUDGE * d
    # Crossings of vertical (u = k, row 0) and horizontal (v = k, row 1) grid lines: from the
    # first line past the lower end to the last line before the upper end.
    lower, upper = torch.aminmax(clipped, dim=1)
    first = torch.floor(lower) + 1
    crossed = torch.where(keep, (torch.ceil(upper) - first).clamp_(min=0), 0)
    zero = torch.zeros_like(d)
    return Supercover(
        keep=keep,
        count=torch.cat([keep.expand(2, -1).to(crossed.dtype), crossed]).to(torch.int64).view(-1),
        first=torch.cat([first_end[0], last_end[0], first[0], first[1]]),
        along=torch.cat([zero, start]).view(-1),
        across=torch.cat([first_end[1], last_end[1], start[1], start[0]]),
        slope=torch.cat([zero, d.flip(0) / d]).view(-1),
        shift=torch.cat([zero, torch.where(d < 0, -1.0, 0.0)]).view(-1),
    )


def supercover_at(cover: Supercover, owner: torch.Tensor, k: torch.Tensor, w: int, h: int) -> Pair:
    """(row, col) float of pixel k of rule ``owner`` (an index into the (4 * S,) tables of
    ``Supercover``), clipped to the raster."""
    line = cover.first.index_select(0, owner) + k
    other = cover.across.index_select(0, owner) + (line - cover.along.index_select(0, owner)) * (
        cover.slope.index_select(0, owner)
    )
    entered = line + cover.shift.index_select(0, owner)
    by_rows = owner >= (SUPERCOVER_RULES - 1) * len(cover.keep)  # rule 3 steps along rows
    row = torch.where(by_rows, entered, other).clamp_(0, h - 1)
    col = torch.where(by_rows, other, entered).clamp_(0, w - 1)
    return row, col
