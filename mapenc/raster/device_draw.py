"""Fill and line layers drawn on a torch device from their vectors: the exact mode's rules, for a
batch at once.

Sampling a pre-drawn grid cannot reproduce "every pixel the line touches" (the band a line lights
depends on the angle between the line and the agent's pixel grid: one pixel wide when aligned,
up to 1.41 wide diagonally), nor put polygon edges exactly between pixel centres, so the binary
layers are drawn per batch from their vectors instead:

- ``ItemBins``: a layer's items (segments of a line layer, polygon pieces of a fill layer) binned
  by their bounding boxes on a square grid (CSR: bin -> item ids), on the device;
- per batch: the bins under each agent's window bounding box give (agent, item) pairs; segments
  move into their agent's pixel coordinates (float64) and
  - lines (``burn_segments``): every pixel a segment starts or ends in or enters across a grid
    line is set (its supercover, clipped to the raster);
  - fills (``fill_segments``): each edge adds its direction where it crosses a pixel column's
    centre line, a cumulative sum down the rows gives the winding number at every pixel centre,
    non-zero is inside (half-open at edges).

The exact mode runs the same arithmetic on the CPU (``mapenc.raster.exact``). The work grows with
the edges' extent in pixels plus one pass over the raster per fill layer.
"""

from __future__ import annotations

import numpy as np
import shapely
import torch

from mapenc.raster.exact import Segments, ramp

# Fraction of a segment by which its end pixels are looked up inside the segment.
END_NUDGE = 1e-9

BIN_M = 16.0  # bin edge (metres), raised for huge maps so the grid keeps at most MAX_BINS_AXIS
MAX_BINS_AXIS = 1024
Pair = tuple[torch.Tensor, torch.Tensor]


def ramp_tensor(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For counts (M,): (owner, k) with owner repeated counts[m] times and k = 0..counts[m]-1."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(len(owner), device=counts.device) - first[owner]


class ItemBins:
    """Items (segments or polygons) with bounding boxes, binned on the device for window queries.

    Args:
        boxes: (M, 4) city-frame ``xmin, ymin, xmax, ymax`` of each item.
        bounds: (xmin, ymin, xmax, ymax) the bins cover (the map's bounds).
        device: where the bins live.
    """

    def __init__(
        self,
        boxes: np.ndarray,
        bounds: tuple[float, float, float, float],
        device: torch.device,
    ) -> None:
        xmin, ymin, xmax, ymax = bounds
        self.bin_m = max(BIN_M, (xmax - xmin) / MAX_BINS_AXIS, (ymax - ymin) / MAX_BINS_AXIS)
        self.origin = (xmin, ymin)
        self.cols = int((xmax - xmin) // self.bin_m) + 1
        self.rows = int((ymax - ymin) // self.bin_m) + 1
        limit = [self.cols - 1, self.rows - 1]
        lo = np.clip((boxes[:, :2] - self.origin) // self.bin_m, 0, limit).astype(np.int64)
        hi = np.clip((boxes[:, 2:] - self.origin) // self.bin_m, 0, limit).astype(np.int64)
        span = hi - lo + 1
        item, k = ramp((span[:, 0] * span[:, 1]).astype(np.intp))
        key = (lo[item, 1] + k // span[item, 0]) * self.cols + lo[item, 0] + k % span[item, 0]
        order = np.argsort(key, kind="stable")
        counts = np.bincount(key, minlength=self.rows * self.cols)
        self.first = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]), device=device)
        self.item_of = torch.as_tensor(item[order], device=device)
        self.items = max(1, len(boxes))

    def pairs(self, corners: torch.Tensor) -> Pair:
        """(agent, item) index pairs for the items in the bins under each agent's window.

        Args:
            corners: (N, 4, 2) city-frame corners of each agent's raster window (float64).
        """
        origin = corners.new_tensor(self.origin)
        lo = torch.floor((corners.amin(1) - origin) / self.bin_m)
        hi = torch.floor((corners.amax(1) - origin) / self.bin_m)
        limit = corners.new_tensor([self.cols - 1, self.rows - 1])
        seen = (hi >= 0).all(1) & (lo <= limit).all(1)
        lo = torch.minimum(lo.clamp(min=0), limit).to(torch.int64)
        hi = torch.minimum(hi.clamp(min=0), limit).to(torch.int64)
        span = torch.where(seen[:, None], hi - lo + 1, 0)
        agent, k = ramp_tensor(span[:, 0] * span[:, 1])
        key = (lo[agent, 1] + k // span[agent, 0]) * self.cols + lo[agent, 0] + k % span[agent, 0]
        count = self.first[key + 1] - self.first[key]
        pair, j = ramp_tensor(count)
        agent, item = agent[pair], self.item_of[self.first[key][pair] + j]
        # An item in several bins under one window comes once (polygon pieces span many bins).
        unique = torch.unique(agent * self.items + item)
        return torch.div(unique, self.items, rounding_mode="floor"), unique % self.items


class DeviceSegments:
    """A fill or line layer's segments on the device, with bins over its items.

    Line layers are binned segment by segment; fill layers polygon piece by piece (a fill needs
    every edge of a polygon that meets the window, also those outside it).
    """

    def __init__(
        self,
        segments: Segments,
        pieces: np.ndarray | None,
        bounds: tuple[float, float, float, float],
        device: torch.device,
    ) -> None:
        self.start = torch.as_tensor(segments.start, device=device)
        self.end = torch.as_tensor(segments.end, device=device)
        self.first = torch.as_tensor(segments.first, device=device)
        if pieces is None:
            boxes = np.concatenate(
                [
                    np.minimum(segments.start, segments.end),
                    np.maximum(segments.start, segments.end),
                ],
                axis=1,
            )
        else:
            boxes = shapely.bounds(pieces)
        self.by_piece = pieces is not None
        self.bins = ItemBins(boxes.reshape(-1, 4), bounds, device)

    def for_windows(self, corners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(agent, start (S, 2), end (S, 2)) of the segments to draw for windows (N, 4, 2)."""
        agent, item = self.bins.pairs(corners)
        if self.by_piece:
            counts = self.first[item + 1] - self.first[item]
            pair, k = ramp_tensor(counts)
            agent, item = agent[pair], self.first[item][pair] + k
        return agent, self.start.index_select(0, item), self.end.index_select(0, item)


def to_pixels(
    raster_from_city: torch.Tensor, agent: torch.Tensor, start: torch.Tensor, end: torch.Tensor
) -> tuple[Pair, Pair]:
    """Segments (S, 2) city metres -> ((u0, v0), (u1, v1)) in their agent's pixel coordinates."""
    m = raster_from_city.reshape(-1, 9).index_select(0, agent).T  # (9, S)
    x0, y0, x1, y1 = start[:, 0], start[:, 1], end[:, 0], end[:, 1]
    p0 = (m[0] * x0 + m[1] * y0 + m[2], m[3] * x0 + m[4] * y0 + m[5])
    p1 = (m[0] * x1 + m[1] * y1 + m[2], m[3] * x1 + m[4] * y1 + m[5])
    return p0, p1


def column_crossings(p0: Pair, p1: Pair, h: int, w: int) -> tuple[torch.Tensor, ...]:
    """Where edges (pixel coordinates) cross the centre lines of pixel columns.

    Returns (edge, column, row, sign) per crossing: the edge's index, the column j whose centre
    line u = j + 0.5 it crosses (half-open in u), the first row whose centre lies at or below the
    crossing (clipped to 0..H), and the edge's direction in u (+1 / -1).
    """
    du = p1[0] - p0[0]
    col_lo = torch.ceil(torch.minimum(p0[0], p1[0]) - 0.5).clamp(0, w).to(torch.int64)
    col_hi = torch.ceil(torch.maximum(p0[0], p1[0]) - 0.5).clamp(0, w).to(torch.int64)
    edge, k = ramp_tensor(torch.where(du != 0, col_hi - col_lo, 0))
    col = col_lo.index_select(0, edge) + k
    slope = ((p1[1] - p0[1]) / torch.where(du != 0, du, 1.0)).index_select(0, edge)
    v = p0[1].index_select(0, edge) + (col + 0.5 - p0[0].index_select(0, edge)) * slope
    row = torch.ceil(v - 0.5).clamp(0, h).to(torch.int64)
    return edge, col, row, torch.sign(du).index_select(0, edge)


def fill_segments(
    out: torch.Tensor,
    channel: int,
    value: float,
    agent: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    raster_from_city: torch.Tensor,
) -> None:
    """Set ``out[:, channel]`` ((N, C, H, W)) to ``value`` on every pixel centre inside the
    polygons whose oriented ring segments (``start`` -> ``end``, (S, 2) city metres) are given,
    segment k for agent ``agent[k]`` (non-zero winding, half-open: a centre exactly on an edge
    counts when the edge lies above it); 0 elsewhere."""
    n, _, h, w = out.shape
    p0, p1 = to_pixels(raster_from_city, agent, start, end)
    edge, col, row, sign = column_crossings(p0, p1, h, w)
    winding = torch.zeros(n * (h + 1) * w, dtype=torch.int16, device=out.device)
    flat = (agent.index_select(0, edge) * (h + 1) + row) * w + col
    winding.index_add_(0, flat, sign.to(torch.int16))
    inside = winding.view(n, h + 1, w).cumsum(1, dtype=torch.int16)[:, :h] != 0
    target = out[:, channel]
    target.copy_(inside)
    if value != 1:
        target.mul_(value)


def burn_segments(
    out: torch.Tensor,
    channel: int,
    value: float,
    agent: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    raster_from_city: torch.Tensor,
) -> None:
    """Set every pixel of ``out[:, channel]`` ((N, C, H, W), contiguous) that segment k
    (``start[k]`` -> ``end[k]``, (S, 2) city frame, float64) of agent ``agent[k]`` touches to
    ``value``: its supercover, clipped to the raster (the pixels it starts and ends in and every
    pixel it enters by crossing a pixel-grid line).

    ``raster_from_city`` (N, 3, 3) float64 maps city metres to each agent's pixel coordinates (u, v).
    """
    _, nc, h, w = out.shape
    p0, p1 = to_pixels(raster_from_city, agent, start, end)
    agent, p0, p1 = _clip(agent, p0, p1, w, h)
    d = (p1[0] - p0[0], p1[1] - p0[1])
    # End pixels are taken just inside the segment: an end point on a grid line belongs to the
    # pixel the segment runs through.
    cols = [p0[0] + END_NUDGE * d[0], p1[0] - END_NUDGE * d[0]]
    rows = [p0[1] + END_NUDGE * d[1], p1[1] - END_NUDGE * d[1]]
    owners = [agent, agent]
    for axis in (0, 1):  # crossings of vertical (u = k) then horizontal (v = k) grid lines
        lo = torch.floor(torch.minimum(p0[axis], p1[axis])) + 1
        hi = torch.ceil(torch.maximum(p0[axis], p1[axis])) - 1
        seg, k = ramp_tensor(torch.clamp(hi - lo + 1, min=0).to(torch.int64))
        line = lo.index_select(0, seg) + k
        slope = (d[1 - axis] / d[axis]).index_select(0, seg)
        start_along = p0[axis].index_select(0, seg)
        other = p0[1 - axis].index_select(0, seg) + (line - start_along) * slope
        step = torch.sign(d[axis]).index_select(0, seg)
        entered = line - 0.5 + step * 0.5  # the pixel past the grid line
        rows.append(other if axis == 0 else entered)
        cols.append(entered if axis == 0 else other)
        owners.append(agent.index_select(0, seg))
    row = torch.cat(rows).clamp_(0, h - 1).to(torch.int64)
    col = torch.cat(cols).clamp_(0, w - 1).to(torch.int64)
    flat = (torch.cat(owners) * nc + channel) * h
    flat += row
    flat *= w
    flat += col
    out.view(-1).index_fill_(0, flat, value)


def _clip(
    owner: torch.Tensor, p0: Pair, p1: Pair, w: int, h: int
) -> tuple[torch.Tensor, Pair, Pair]:
    """Segments (u, v columns) clipped to the box [0, w] x [0, h] (Liang-Barsky); those outside
    are dropped."""
    d = (p1[0] - p0[0], p1[1] - p0[1])
    t0 = torch.zeros_like(d[0])
    t1 = torch.ones_like(d[0])
    keep = torch.ones(len(d[0]), dtype=torch.bool, device=d[0].device)
    for axis, size in ((0, w), (1, h)):
        for p, q in ((-d[axis], p0[axis]), (d[axis], size - p0[axis])):
            parallel = p == 0
            keep &= ~(parallel & (q < 0))
            r = q / torch.where(parallel, 1.0, p)
            t0 = torch.where(~parallel & (p < 0), torch.maximum(t0, r), t0)
            t1 = torch.where(~parallel & (p > 0), torch.minimum(t1, r), t1)
    keep &= t0 <= t1
    idx = torch.nonzero(keep).view(-1)
    t0, t1 = t0.index_select(0, idx), t1.index_select(0, idx)
    a = [c.index_select(0, idx) for c in (*p0, *d)]
    start = (a[0] + t0 * a[2], a[1] + t0 * a[3])
    end = (a[0] + t1 * a[2], a[1] + t1 * a[3])
    return owner.index_select(0, idx), start, end
