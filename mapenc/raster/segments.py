"""Segment arithmetic shared by the exact and torch modes: map geometry as straight segments
(city metres), moved into each agent's pixel coordinates, then

- lines: every pixel a segment touches (its supercover, clipped to the raster);
- fills: where each polygon edge crosses the centre line of a pixel column (the winding
  numbers of the fills are running sums of those crossings down the rows).

Both come in two steps so that a whole batch expands once: rules of pixels per segment with
their counts (``crossing_counts``, ``supercover_counts``: ``PixelRules``, one form for both),
then element k of each rule (``stepped_at``, then ``crossing_cells`` or ``supercover_cells``).
The exact mode runs them on numpy's memory (``mapenc.raster.exact``), the
torch mode on its device for all layers at once (``mapenc.raster.device_draw``): the same
operations in the same order, so on the CPU in float64 both modes light the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import torch
from numpy.typing import NDArray

from mapenc.geometry.ragged import ramp

GeometryArray = NDArray[np.object_]
Pair = tuple[torch.Tensor, torch.Tensor]
# Segments in pixel coordinates ("Points"): a (2, 2, S) float tensor, [u or v][start or end][s].

# shapely type ids of Polygon and MultiPolygon.
POLYGON_TYPE_IDS = (3, 6)
# Fraction of a segment by which its end pixels are looked up inside the segment.
END_NUDGE = 1e-9


def ramp_tensor(
    counts: torch.Tensor, ends: torch.Tensor | None = None, total: int | None = None
) -> Pair:
    """``mapenc.geometry.ragged.ramp`` in torch: (owner, k) for counts (M,) int.

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
        ends: (4, S) float64 rows x0, x1, y0, y1: the segments' start and end points, one row
            per coordinate (numpy gathers rows of a few floats each ~10x slower than 1-D rows).
        first: (G + 1,) segments of geometry ``g`` are ``first[g]:first[g + 1]``.
    """

    ends: NDArray[np.float64]
    first: NDArray[np.intp]

    @classmethod
    def joining(
        cls, coords: NDArray[np.float64], starts: NDArray[np.bool_], first: NDArray[np.intp]
    ) -> Segments:
        """The segments from point i to point i + 1 of ``coords`` (K, 2) for every i where
        ``starts`` (K - 1,) is True, in order, grouped by ``first``."""
        x, y = coords[:, 0], coords[:, 1]
        return cls(np.stack([x[:-1][starts], x[1:][starts], y[:-1][starts], y[1:][starts]]), first)

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
        return cls.joining(coords, same_path, first)

    def for_pairs(
        self, agent_idx: NDArray[np.intp], geom_idx: NDArray[np.intp]
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(pair of each segment, segment index) for every segment of every (agent, geometry)
        pair ``k = (agent_idx[k], geom_idx[k])``."""
        counts = self.first[geom_idx + 1] - self.first[geom_idx]
        pair, k = ramp(counts)
        return pair, self.first[geom_idx][pair] + k


def columns_at(
    table: torch.Tensor, index: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``table.index_select(1, index)`` for a (K, M) table with few rows: (K, S), written into
    ``out`` when given. On the CPU row by row (torch's gather along the second axis there is
    ~2.5x slower than K gathers of rows); one kernel elsewhere."""
    if table.device.type != "cpu":
        return torch.index_select(table, 1, index, out=out)
    if out is None:
        out = table.new_empty((len(table), len(index)))
    for row, gathered in zip(table, out, strict=True):
        torch.index_select(row, 0, index, out=gathered)
    return out


def to_pixels(
    raster_from_city: torch.Tensor, agent: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Segments' city x, y (2, S) each (start, end; metres) -> ``Points`` (2, 2, S) float64,
    pixel coordinates of their agent's raster, through each agent's (N, 3, 3)
    ``raster_from_city``."""
    rows = raster_from_city[:, :2].reshape(-1, 6).T.contiguous()  # (6, N)
    return moved(columns_at(rows, agent), x, y)


def moved(rows: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Points x, y (2, S) (start, end) through per-segment affine rows (6, S) (``[a, b, c, d,
    e, f]``: u = a x + b y + c, v = d x + e y + f) -> ``Points`` (2, 2, S)."""
    m = rows.view(2, 3, 1, -1)
    return m[:, 0] * x + m[:, 1] * y + m[:, 2]


@dataclass(frozen=True)
class PixelRules:
    """Rules (R,) that each step over pixels along one grid axis: rule r gives ``count[r]``
    elements, and element k of rule r, from its float tables (R,) (``stepped_at``):

        line = first + k; along the rule's axis: entered = line + shift; across it:
        other = across + (line - along) * slope

    Fills (``crossing_counts``) and lines (``supercover_counts``) are rules of this one form,
    so one expansion serves every layer. A table of several parts is ``PixelRules.joined``.

    Attributes:
        count: (R,) elements of each rule (any real dtype in a part; int64 once joined).
        first, along, across, slope, shift: (R,) float.
    """

    count: torch.Tensor
    first: torch.Tensor
    along: torch.Tensor
    across: torch.Tensor
    slope: torch.Tensor
    shift: torch.Tensor

    @classmethod
    def joined(cls, parts: list[PixelRules]) -> PixelRules:
        """One table of ``parts`` in order, counts as int64 (one part: its own tensors)."""
        fields = [
            torch.cat([getattr(p, name) for p in parts])
            if len(parts) > 1
            else getattr(parts[0], name)
            for name in ("count", "first", "along", "across", "slope", "shift")
        ]
        return cls(fields[0].to(torch.int64), *fields[1:])


def stepped_at(rules: PixelRules, owner: torch.Tensor, k: torch.Tensor) -> Pair:
    """(entered, other) float of element k of rule ``owner`` (see ``PixelRules``)."""
    line = rules.first.index_select(0, owner) + k
    other = rules.across.index_select(0, owner) + (line - rules.along.index_select(0, owner)) * (
        rules.slope.index_select(0, owner)
    )
    return line + rules.shift.index_select(0, owner), other


@dataclass(frozen=True)
class Crossings:
    """Where polygon edges (S,) cross the centre lines u = j + 0.5 of pixel columns (half-open in
    u; columns 0..W-1; edges parallel to the columns cross none).

    Attributes:
        rules: one rule per edge stepping over the columns crossed (``PixelRules``): first =
            the first column's centre line, along, across = the start point (u0, v0), slope =
            dv / du and shift = -0.5, so entered is the column and other the crossing's v
            (first + k is the column + 0.5 exactly: whole and half numbers).
        sign: (S,) int8 the edge's direction in u (+1 / -1).
    """

    rules: PixelRules
    sign: torch.Tensor


def crossing_counts(points: torch.Tensor, w: int) -> Crossings:
    """The ``Crossings`` of edges ``Points`` (2, 2, S)."""
    u, v = points
    du = u[1] - u[0]
    # Elementwise min / max of start and end (aminmax over the short axis is ~7x slower).
    ends = (torch.minimum(u[0], u[1]), torch.maximum(u[0], u[1]))
    cols = torch.ceil(torch.stack(ends) - 0.5).clamp_(0, w)  # (2, S) lo, hi
    rules = PixelRules(
        count=cols[1] - cols[0],  # 0 for an edge with du = 0: its slope is never read
        first=cols[0] + 0.5,
        along=u[0],
        across=v[0],
        slope=(v[1] - v[0]) / du,
        shift=torch.full_like(du, -0.5),
    )
    return Crossings(rules=rules, sign=torch.sign(du).to(torch.int8))


def crossing_cells(entered: torch.Tensor, other: torch.Tensor, h: int) -> Pair:
    """(column, row) float of crossings from ``stepped_at`` on ``Crossings.rules``: the column
    whose centre line the edge crosses and the first row whose centre lies at or below the
    crossing (clipped to 0..H)."""
    return entered, torch.ceil(other - 0.5).clamp_(0, h)


def clip_to_raster(points: torch.Tensor, w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Segments ``Points`` (2, 2, S) clipped to the box [0, w] x [0, h] (Liang-Barsky):
    (``Points`` of the clipped segments, keep (S,)), keep False for segments wholly outside
    (their points are then meaningless).

    Per axis, the segment meets the box's two lines (0 and w, or 0 and h) at parameters t; it
    enters the slab at the smaller and leaves it at the larger (whichever line that is), so no
    per-element choice by the direction's sign is made: such selects run as unpredictable
    branches on the CPU, several times slower than the arithmetic. A segment parallel to an
    axis (d = 0) is kept on that axis when it lies within the slab, edges included.
    """
    start = points[:, 0]  # (2, S) u, v
    d = points[:, 1] - start
    room = torch.stack([w - start[0], h - start[1]])  # to the far lines u = w, v = h
    near, far = start / -d, room / d  # inf or NaN where d = 0: replaced below
    parallel = d == 0  # rare: a predictable select
    enter = torch.where(parallel, -torch.inf, torch.minimum(near, far))
    leave = torch.where(parallel, torch.inf, torch.maximum(near, far))
    t0 = torch.maximum(enter[0], enter[1]).clamp_(min=0)
    t1 = torch.minimum(leave[0], leave[1]).clamp_(max=1)
    outside = parallel & ((start < 0) | (room < 0))
    keep = ~(outside[0] | outside[1]) & (t0 <= t1)
    return start[:, None] + torch.stack([t0, t1]) * d[:, None], keep


# The four rules that make a supercover, in ``Supercover``'s order: its start pixel, its end
# pixel, the pixels entered across vertical grid lines u = k, across horizontal lines v = k.
SUPERCOVER_RULES = 4


@dataclass(frozen=True)
class Supercover:
    """The pixels clipped segments (S,) touch, as four rules (``SUPERCOVER_RULES``) of pixels
    per segment (``PixelRules``, one part per rule: ``parts``), rule r of segment s at
    ``r * S + s`` once joined.

    The end pixels are one pixel each: first = column, across = row, along = slope = shift = 0.
    Grid-line rules step over the lines crossed from ``first``; along, across are the clipped
    start's coordinates and shift is 0 or -1, from a grid line to the pixel past it (0 going up
    the axis, -1 going down). Rules 0-2 step along columns (row = other), rule 3 along rows
    (col = other; ``supercover_cells``). Segments clipped away (keep False) count 0 in every
    rule.
    """

    keep: torch.Tensor
    parts: list[PixelRules]

    def end_cells(self, w: int, h: int) -> list[Pair]:
        """(row, col) float of each segment's start pixel, then of its end pixel: rules 0 and 1
        read straight from their tables (one pixel each, k = 0: the values ``stepped_at`` and
        ``supercover_cells`` give them), for a drawer that writes them without expanding them;
        meaningless where ``keep`` is False."""
        return [
            (part.across.clamp(0, h - 1), part.first.clamp(0, w - 1)) for part in self.parts[:2]
        ]

    @property
    def row_rules_start(self) -> int:
        """Index of the first rule stepping along rows (rule 3) in the joined parts."""
        return (SUPERCOVER_RULES - 1) * len(self.keep)


def supercover_counts(points: torch.Tensor, w: int, h: int) -> Supercover:
    """Clip segments ``Points`` (2, 2, S) to the raster and find the pixels each touches."""
    clipped, keep = clip_to_raster(points, w, h)
    start, end = clipped[:, 0], clipped[:, 1]  # (2, S) u, v
    d = end - start
    # End pixels are taken just inside the segment: an end point on a grid line belongs to the
    # pixel the segment runs through.
    nudge = END_NUDGE * d
    first_end, last_end = start + nudge, end - nudge
    # Crossings of vertical (u = k, row 0) and horizontal (v = k, row 1) grid lines: from the
    # first line past the lower end to the last line before the upper end.
    lower = torch.minimum(clipped[:, 0], clipped[:, 1])
    upper = torch.maximum(clipped[:, 0], clipped[:, 1])
    first = torch.floor(lower) + 1
    # Clipped points are finite even where keep is False, so a product zeroes those counts
    # (cheaper than a select on the CPU).
    crossed = (torch.ceil(upper) - first).clamp_(min=0) * keep
    slope = d.flip(0) / d
    shift = torch.sign(d).clamp_(max=0)  # -1 going down the axis, else 0 (no select: see above)
    zero = torch.zeros_like(d[0])
    parts = [
        PixelRules(keep, first_end[0], zero, first_end[1], zero, zero),
        PixelRules(keep, last_end[0], zero, last_end[1], zero, zero),
    ] + [
        PixelRules(
            crossed[axis], first[axis], start[axis], start[1 - axis], slope[axis], shift[axis]
        )
        for axis in (0, 1)
    ]
    return Supercover(keep=keep, parts=parts)


def supercover_cells(
    entered: torch.Tensor, other: torch.Tensor, row_rule: torch.Tensor, w: int, h: int
) -> Pair:
    """(row, col) float of pixels from ``stepped_at`` on a ``Supercover``'s rules (``row_rule``:
    whether the pixel's rule steps along rows), clipped to the raster."""
    row = torch.where(row_rule, entered, other).clamp_(0, h - 1)
    col = torch.where(row_rule, other, entered).clamp_(0, w - 1)
    return row, col
