"""Line layers burned on a torch device: the exact mode's supercover, for a batch at once.

Sampling a pre-drawn grid cannot reproduce "every pixel the line touches" (the band a line lights
depends on the angle between the line and the agent's pixel grid: one pixel wide when aligned,
up to 1.41 wide diagonally), so line layers are burned per batch from their segments instead:

- ``SegmentBins``: the layer's segments (city frame, float64, on the device) binned on a square
  grid (CSR: bin -> segment ids); a segment goes into every bin its bounding box touches.
- per batch: the bins under each agent's window bounding box give (agent, segment) pairs; each
  segment is moved into its agent's pixel coordinates, clipped to the raster, and every pixel it
  starts or ends in or enters across a grid line is set (``mapenc.raster.exact.burn_lines``,
  the same arithmetic in torch).

The work grows with the line pixels, not with the raster area.
"""

from __future__ import annotations

import numpy as np
import torch

from mapenc.raster.exact import Segments, ramp

# Fraction of a segment by which its end pixels are looked up inside the segment.
END_NUDGE = 1e-9

BIN_M = 16.0  # bin edge (metres), raised for huge maps so the grid keeps at most MAX_BINS_AXIS
MAX_BINS_AXIS = 4096


def ramp_tensor(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For counts (M,): (owner, k) with owner repeated counts[m] times and k = 0..counts[m]-1."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(len(owner), device=counts.device) - first[owner]


class SegmentBins:
    """A line layer's segments on the device, binned for window queries.

    Args:
        segments: the layer's straight segments (city frame).
        bounds: (xmin, ymin, xmax, ymax) the bins cover (the map's bounds).
        device: where the segments and bins live.
    """

    def __init__(
        self,
        segments: Segments,
        bounds: tuple[float, float, float, float],
        device: torch.device,
    ) -> None:
        xmin, ymin, xmax, ymax = bounds
        self.bin_m = max(BIN_M, (xmax - xmin) / MAX_BINS_AXIS, (ymax - ymin) / MAX_BINS_AXIS)
        self.x0, self.y0 = xmin, ymin
        self.cols = int((xmax - xmin) // self.bin_m) + 1
        self.rows = int((ymax - ymin) // self.bin_m) + 1
        start, end = segments.start, segments.end
        lo = (np.minimum(start, end) - [xmin, ymin]) // self.bin_m
        hi = (np.maximum(start, end) - [xmin, ymin]) // self.bin_m
        lo = np.clip(lo, 0, [self.cols - 1, self.rows - 1]).astype(np.int64)
        hi = np.clip(hi, 0, [self.cols - 1, self.rows - 1]).astype(np.int64)
        span = hi - lo + 1
        seg, k = ramp((span[:, 0] * span[:, 1]).astype(np.intp))
        col = lo[seg, 0] + k % span[seg, 0]
        row = lo[seg, 1] + k // span[seg, 0]
        key = row * self.cols + col
        order = np.argsort(key, kind="stable")
        counts = np.bincount(key, minlength=self.rows * self.cols)
        self.first = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]), device=device)
        self.segment_of = torch.as_tensor(seg[order], device=device)
        self.start = torch.as_tensor(start, device=device)
        self.end = torch.as_tensor(end, device=device)
        self.device = device

    def pairs(self, corners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(agent, segment) index pairs for the segments in the bins under each agent's window.

        Args:
            corners: (N, 4, 2) city-frame corners of each agent's raster window (float64).
        A segment may come in more than one pair per agent (burning it twice changes nothing).
        """
        lo = torch.floor((corners.amin(1) - corners.new_tensor([self.x0, self.y0])) / self.bin_m)
        hi = torch.floor((corners.amax(1) - corners.new_tensor([self.x0, self.y0])) / self.bin_m)
        limit = corners.new_tensor([self.cols - 1, self.rows - 1])
        seen = (hi >= 0).all(1) & (lo <= limit).all(1)
        lo = torch.minimum(torch.maximum(lo, torch.zeros_like(lo)), limit).to(torch.int64)
        hi = torch.minimum(torch.maximum(hi, torch.zeros_like(hi)), limit).to(torch.int64)
        span = torch.where(seen[:, None], hi - lo + 1, 0)
        agent, k = ramp_tensor(span[:, 0] * span[:, 1])
        col = lo[agent, 0] + k % span[agent, 0]
        row = lo[agent, 1] + k // span[agent, 0]
        key = row * self.cols + col
        count = self.first[key + 1] - self.first[key]
        pair, j = ramp_tensor(count)
        return agent[pair], self.segment_of[self.first[key][pair] + j]


def burn_segments(
    out: torch.Tensor,
    channel: int,
    value: float,
    agent: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    mats: torch.Tensor,
) -> None:
    """Set every pixel of ``out[:, channel]`` ((N, C, H, W), contiguous) that segment k
    (``start[k]`` -> ``end[k]``, (S, 2) city frame, float64) of agent ``agent[k]`` touches to
    ``value``: its supercover, clipped to the raster (the pixels it starts and ends in and every
    pixel it enters by crossing a pixel-grid line).

    ``mats`` (N, 3, 3) float64 maps city metres to each agent's pixel coordinates (u, v).
    """
    _, nc, h, w = out.shape
    m = mats.reshape(-1, 9).index_select(0, agent).T  # (9, S)
    x0, y0, x1, y1 = start[:, 0], start[:, 1], end[:, 0], end[:, 1]
    p0 = (m[0] * x0 + m[1] * y0 + m[2], m[3] * x0 + m[4] * y0 + m[5])
    p1 = (m[0] * x1 + m[1] * y1 + m[2], m[3] * x1 + m[4] * y1 + m[5])
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


Pair = tuple[torch.Tensor, torch.Tensor]


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
