"""Fill and line layers drawn on a torch device from their vectors, every binary layer of one or
more maps in one pass: the exact mode's rules (``mapenc.raster.segments``) for a batch at once.

Sampling a pre-drawn grid cannot reproduce "every pixel the line touches" (the band a line lights
depends on the angle between the line and the agent's pixel grid), nor put polygon edges exactly
between pixel centres, so binary layers are drawn per batch from their vectors.

Set-up (host, once per map; ``MapTable``): the items of every drawn layer (the segments of line
layers, the polygon pieces of fill layers) with their layer, their segment range and their
bounding box, binned on a square grid over the map (CSR: bin -> items). ``MapTable.concat``
joins several maps' tables on the device with offsets, so a batch of poses on many small maps
(AV2, Waymo) is drawn in one pass too.

Per batch (``VectorDrawer.draw``), on the device, four stages:
1. every agent's window -> the (agent, bin) pairs under its bounding box: a fixed
   (N, K, K) grid, K bounded by the raster's size, so no size has to come back from the device;
2. (agent, bin) -> (agent, item), keeping an item only in the first of its bins under the
   window (so it is drawn once without a ``unique``), then -> its segment count;
3. (agent, segment) -> pixel coordinates -> the number of column crossings (fills), of end
   pixels and of grid-line crossings (lines);
4. those four expansions: every crossing adds its direction to one int8 winding buffer of all
   fill layers (a running sum down the rows gives the fills: non-zero winding is inside), every
   touched line pixel is set in the output.
Stages 2-4 need the totals of the previous stage's counts on the host, read in one copy per
stage: three reads from the device per chunk (``HOST_READS_PER_CHUNK``), the first also saying
whether every pose is finite.
Everything else stays on the device: no ``unique``, ``nonzero``, boolean indexing or tensors
made from Python values per call.

Pixel coordinates: float64 through each agent's matrix on the CPU (the exact mode's arithmetic,
so CPU rasters equal exact's bit for bit); on accelerators float32 after a float64 shift to the
agent's position (half the bytes; a pixel centre within ~1e-5 px of an edge may fall the other
way, so CUDA rasters agree with exact up to such edge pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from mapenc.raster.layers import LAYERS
from mapenc.raster.mapgeom import MapGeometry
from mapenc.raster.segments import (
    Pair,
    crossing_counts,
    crossings_at,
    grid_crossings,
    ramp,
    ramp_tensor,
    supercover_counts,
    to_pixels,
)
from mapenc.raster.spec import RasterSpec

BIN_M = 16.0  # bin edge (metres), raised for huge maps so the grid keeps at most MAX_BINS_AXIS
MAX_BINS_AXIS = 1024
HOST_READS_PER_CHUNK = 3  # totals of stages 1-3 (see the module docstring)
# What a total reads as on the meta device (shapes without data), where the drawing runs to check
# that every tensor stays on the drawer's device with the dtypes and shapes the stages expect.
META_TOTAL = 64

__all__ = ["BIN_M", "HOST_READS_PER_CHUNK", "MAX_BINS_AXIS", "MapTable", "VectorDrawer"]


@dataclass(frozen=True)
class MapTable:
    """One or more maps' drawn layers as items in bins, on a device.

    Attributes:
        start, end: (S, 2) float64 city-frame segment ends.
        item_first, item_count: (I,) int64 the segments of each item.
        item_layer: (I,) int64 index of its layer in ``VectorDrawer.layers``.
        item_lo: (I, 2) int64 (column, row) of the item's first bin.
        bin_first: (B + 1,) int64 CSR offsets: bin b holds ``bin_item[bin_first[b]:bin_first[b + 1]]``.
        bin_item: (E,) int64 item ids.
        origin: (M, 2) float64 city corner of each map's bin grid; bin_m (M,) float64 its bin
            edge; grid (M, 2) int64 its columns and rows; first_bin (M,) its first bin.
        smallest_bin_m: the smallest bin edge (host), which bounds the bins under a window.
    """

    start: torch.Tensor
    end: torch.Tensor
    item_first: torch.Tensor
    item_count: torch.Tensor
    item_layer: torch.Tensor
    item_lo: torch.Tensor
    bin_first: torch.Tensor
    bin_item: torch.Tensor
    origin: torch.Tensor
    bin_m: torch.Tensor
    grid: torch.Tensor
    first_bin: torch.Tensor
    smallest_bin_m: float

    @classmethod
    def build(
        cls, geometry: MapGeometry, layers: tuple[str, ...], device: torch.device
    ) -> MapTable:
        """The table of one map's ``layers`` (fill or line layers, at least one), built on the
        host."""
        starts, ends, firsts, counts, owners, boxes = [], [], [], [], [], []
        offset = 0
        for index, name in enumerate(layers):
            layer = LAYERS[name]
            pieces = geometry.pieces(layer)
            segments = pieces.segments
            if layer.fills:
                box = pieces.box
                first, count = segments.first[:-1], np.diff(segments.first)
            else:
                box = np.concatenate(
                    [
                        np.minimum(segments.start, segments.end),
                        np.maximum(segments.start, segments.end),
                    ],
                    axis=1,
                ).reshape(-1, 4)
                first = np.arange(len(segments.start))
                count = np.ones(len(segments.start), dtype=np.intp)
            starts.append(segments.start.reshape(-1, 2))
            ends.append(segments.end.reshape(-1, 2))
            firsts.append(first + offset)
            counts.append(count)
            owners.append(np.full(len(first), index))
            boxes.append(box)
            offset += len(segments.start)
        box = np.concatenate(boxes)
        xmin, ymin, xmax, ymax = geometry.map.bounds
        bin_m = max(BIN_M, (xmax - xmin) / MAX_BINS_AXIS, (ymax - ymin) / MAX_BINS_AXIS)
        cols, rows = int((xmax - xmin) // bin_m) + 1, int((ymax - ymin) // bin_m) + 1
        limit = [cols - 1, rows - 1]
        lo = np.clip((box[:, :2] - (xmin, ymin)) // bin_m, 0, limit).astype(np.int64)
        hi = np.clip((box[:, 2:] - (xmin, ymin)) // bin_m, 0, limit).astype(np.int64)
        span = hi - lo + 1
        item, k = ramp((span[:, 0] * span[:, 1]).astype(np.intp))
        key = (lo[item, 1] + k // span[item, 0]) * cols + lo[item, 0] + k % span[item, 0]
        order = np.argsort(key, kind="stable")
        in_bin = np.bincount(key, minlength=rows * cols)

        def put(array: ArrayLike, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)

        f64, i64 = torch.float64, torch.int64
        return cls(
            start=put(np.concatenate(starts), f64),
            end=put(np.concatenate(ends), f64),
            item_first=put(np.concatenate(firsts), i64),
            item_count=put(np.concatenate(counts), i64),
            item_layer=put(np.concatenate(owners), i64),
            item_lo=put(lo.reshape(-1, 2), i64),
            bin_first=put(np.concatenate([[0], np.cumsum(in_bin)]), i64),
            bin_item=put(item[order], i64),
            origin=put([[xmin, ymin]], f64),
            bin_m=put([bin_m], f64),
            grid=put([[cols, rows]], i64),
            first_bin=put([0], i64),
            smallest_bin_m=bin_m,
        )

    @classmethod
    def concat(cls, tables: list[MapTable]) -> MapTable:
        """One table of several maps (map m of the result is ``tables[m]``), joined on the device
        with each map's ids shifted past the maps before it."""

        def bases(sizes: list[int]) -> list[int]:
            return [0, *np.cumsum(sizes)[:-1].tolist()]

        seg_base = bases([len(t.start) for t in tables])
        item_base = bases([len(t.item_first) for t in tables])
        entry_base = bases([len(t.bin_item) for t in tables])
        grid = torch.cat([t.grid for t in tables])
        bins = grid[:, 0] * grid[:, 1]
        return cls(
            start=torch.cat([t.start for t in tables]),
            end=torch.cat([t.end for t in tables]),
            item_first=torch.cat([t.item_first + s for t, s in zip(tables, seg_base, strict=True)]),
            item_count=torch.cat([t.item_count for t in tables]),
            item_layer=torch.cat([t.item_layer for t in tables]),
            item_lo=torch.cat([t.item_lo for t in tables]),
            bin_first=torch.cat(
                [tables[0].bin_first[:1]]
                + [t.bin_first[1:] + e for t, e in zip(tables, entry_base, strict=True)]
            ),
            bin_item=torch.cat([t.bin_item + i for t, i in zip(tables, item_base, strict=True)]),
            origin=torch.cat([t.origin for t in tables]),
            bin_m=torch.cat([t.bin_m for t in tables]),
            grid=grid,
            first_bin=torch.cumsum(bins, 0) - bins,
            smallest_bin_m=min(t.smallest_bin_m for t in tables),
        )


def raster_from_city(raster_from_agent: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) float64 city metres -> pixel coordinates of each agent's raster, for poses
    (N, 3) float64 and ``RasterSpec.raster_from_agent()`` (3, 3) on the same device (the numpy
    ``RasterSpec.raster_from_city`` in torch, the same operations)."""
    x, y, heading = poses.unbind(1)
    c, s = torch.cos(heading), torch.sin(heading)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    agent_from_city = torch.stack(
        [c, s, -(c * x + s * y), -s, c, s * x - c * y, zero, zero, one], dim=1
    ).view(-1, 3, 3)
    return raster_from_agent @ agent_from_city


class VectorDrawer:
    """Draws a spec's fill and line layers from ``MapTable``s (see the module docstring).

    Args:
        spec: the raster spec; layers: the drawn layers, a subset of ``spec.layers``.
        device: where tables, buffers and output live.
        coordinates: dtype of pixel coordinates (torch.float64: the exact mode's arithmetic;
            torch.float32: after a float64 shift to the agent).
    """

    def __init__(
        self,
        spec: RasterSpec,
        layers: tuple[str, ...],
        device: torch.device,
        coordinates: torch.dtype,
    ) -> None:
        self.spec, self.device, self.coordinates = spec, device, coordinates
        self.fill_layers = tuple(n for n in layers if LAYERS[n].fills)
        self.line_layers = tuple(n for n in layers if not LAYERS[n].fills)
        self.layers = self.fill_layers + self.line_layers  # ``MapTable.item_layer`` indexes these
        self.row_sums = device.type == "cpu"  # the fills' running sums (see ``_fill``)
        self._raster_from_agent = torch.as_tensor(spec.raster_from_agent(), device=device)
        xmin, ymin, xmax, ymax = spec.extent_m
        corners = [[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]]
        self._corners = torch.tensor(corners, dtype=torch.float64, device=device)  # agent frame
        self._fill_channels = [spec.layers.index(n) for n in self.fill_layers]
        self._line_channels = [spec.layers.index(n) for n in self.line_layers]
        channel_of = [spec.layers.index(n) for n in self.layers]
        self._channel_of = torch.tensor(channel_of, dtype=torch.int32, device=device)
        # The value of a lit pixel in each output dtype, kept on the device.
        self._on = {
            dtype: torch.tensor(255 if dtype == torch.uint8 else 1, dtype=dtype, device=device)
            for dtype in (torch.uint8, torch.float32, torch.float64)
        }

    def table(self, geometry: MapGeometry) -> MapTable:
        """The ``MapTable`` of one map's drawn layers, on this drawer's device."""
        return MapTable.build(geometry, self.layers, self.device)

    def bins_per_axis(self, table: MapTable) -> int:
        """Most bins a window's bounding box spans along an axis (its side is at most twice the
        raster's radius)."""
        return int(2 * self.spec.radius_m // table.smallest_bin_m) + 2

    def draw(
        self,
        table: MapTable,
        poses: torch.Tensor,
        out: torch.Tensor,
        map_index: torch.Tensor | None = None,
        finite: torch.Tensor | None = None,
    ) -> bool:
        """Write the drawn layers' channels of ``out`` (N, C, H, W) for city poses (N, 3) float64
        on ``table``'s map ``map_index`` (N,) int64 (None: map 0).

        Returns False, having drawn nothing, when ``finite`` (a bool tensor on the device, e.g.
        whether every pose of the call is finite) is given and False: it is read with the first
        stage's total, so checking costs no extra wait for the device.
        """
        n = len(poses)
        if n == 0 or not self.layers:
            return True
        h, w = self.spec.size_px
        if map_index is None:
            map_index = torch.zeros(n, dtype=torch.int64, device=self.device)
        k = self.bins_per_axis(table)
        # Stage 1: (agent, bin) pairs on a fixed (N, K, K) grid.
        key, count, lo_bin = self._bins(table, poses, map_index, k)
        ends = torch.cumsum(count, 0)
        total = ends[-1]
        if finite is not None:
            total = torch.where(finite, total, -1)
        entries = _read_totals(total[None])[0]
        if entries < 0:
            return False
        # Stage 2: (agent, item) pairs, each item in the first of its bins under the window.
        owner, j = ramp_tensor(count, ends, entries)
        item = table.bin_item.index_select(
            0, table.bin_first.index_select(0, key.index_select(0, owner)) + j
        )
        agent = torch.div(owner, k * k, rounding_mode="floor")
        bin_col = lo_bin[:, 0].index_select(0, agent) + owner % k
        bin_row = (
            lo_bin[:, 1].index_select(0, agent) + torch.div(owner, k, rounding_mode="floor") % k
        )
        item_lo = table.item_lo.index_select(0, item)
        first_bin_of_item = (
            bin_col == torch.maximum(item_lo[:, 0], lo_bin[:, 0].index_select(0, agent))
        ) & (bin_row == torch.maximum(item_lo[:, 1], lo_bin[:, 1].index_select(0, agent)))
        seg_count = torch.where(first_bin_of_item, table.item_count.index_select(0, item), 0)
        seg_ends = torch.cumsum(seg_count, 0)
        segments = _read_totals(seg_ends[-1:])[0] if len(seg_ends) else 0
        # Stage 3: (agent, segment) -> pixel coordinates -> crossings or touched pixels.
        pair, j = ramp_tensor(seg_count, seg_ends, segments)
        item = item.index_select(0, pair)
        agent = agent.index_select(0, pair)
        seg = table.item_first.index_select(0, item) + j
        layer = table.item_layer.index_select(0, item)
        p0, p1 = self._pixels(
            poses, agent, table.start.index_select(0, seg), table.end.index_select(0, seg)
        )
        fills = layer < len(self.fill_layers)
        col_lo, crossings = crossing_counts(p0, p1, w)
        cover = supercover_counts(p0, p1, w, h)
        # Expansions of stage 4: fills' column crossings, lines' end pixels (2 per kept
        # segment), lines' crossings of vertical and of horizontal grid lines.
        counts = [
            torch.where(fills, crossings, 0),
            torch.where(fills | ~cover.keep, 0, 2),
            torch.where(fills, 0, cover.count[0]),
            torch.where(fills, 0, cover.count[1]),
        ]
        count_ends = [torch.cumsum(c, 0) for c in counts]
        totals = [0] * len(counts)
        if segments:
            totals = _read_totals(torch.stack([e[-1] for e in count_ends]))
        expanded = [
            ramp_tensor(c, e, t) for c, e, t in zip(counts, count_ends, totals, strict=True)
        ]
        # Stage 4: crossings into the winding buffer, touched pixels straight into ``out``.
        agent, layer = agent.to(torch.int32), layer.to(torch.int32)
        if self.fill_layers:
            edge, j = expanded[0]
            col, row, sign = crossings_at(p0, p1, col_lo, edge, j, h)
            plane = agent * len(self.fill_layers) + layer  # fill layers come first
            self._fill(out, plane.index_select(0, edge), row, col, sign)
        if self.line_layers:
            for channel in self._line_channels:
                out[:, channel].zero_()
            plane = (agent * out.shape[1] + self._channel_of.index_select(0, layer)) * h
            seg, j = expanded[1]
            end = j * len(cover.keep) + seg
            rows = cover.end_rows.view(-1).index_select(0, end)
            cols = cover.end_cols.view(-1).index_select(0, end)
            self._lines(out, plane.index_select(0, seg), rows, cols)
            for axis in (0, 1):
                seg, j = expanded[axis + 2]
                rows, cols = grid_crossings(cover, axis, seg, j, w, h)
                self._lines(out, plane.index_select(0, seg), rows, cols)
        return True

    def _bins(
        self, table: MapTable, poses: torch.Tensor, map_index: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 1: (key (N * K * K,) bin ids, count (N * K * K,) items in each, lo (N, 2) int64
        first bin column and row) of the bins under each agent's window on its map; bins off
        the window or the map count 0, as do all bins of a pose that is not finite."""
        cos, sin = torch.cos(poses[:, 2:]), torch.sin(poses[:, 2:])
        cx, cy = self._corners[:, 0], self._corners[:, 1]
        # Window corners in the city frame, padded by a pixel against rounding at the bins' edges.
        x = poses[:, :1] + cos * cx - sin * cy
        y = poses[:, 1:2] + sin * cx + cos * cy
        pad = self.spec.pixel_size_m
        lo = torch.stack([x.amin(1), y.amin(1)], 1) - pad
        hi = torch.stack([x.amax(1), y.amax(1)], 1) + pad
        origin = table.origin.index_select(0, map_index)
        bin_m = table.bin_m.index_select(0, map_index)[:, None]
        grid = table.grid.index_select(0, map_index)
        limit = grid - 1
        lo_bin = torch.floor((lo - origin) / bin_m)
        hi_bin = torch.floor((hi - origin) / bin_m)
        seen = (hi_bin >= 0).all(1) & (lo_bin <= limit).all(1)
        lo_bin = torch.minimum(torch.nan_to_num(lo_bin, nan=0.0).clamp(min=0), limit).long()
        hi_bin = torch.minimum(torch.nan_to_num(hi_bin, nan=0.0).clamp(min=0), limit).long()
        steps = torch.arange(k, device=self.device)
        cols = lo_bin[:, :1] + steps  # (N, K)
        rows = lo_bin[:, 1:] + steps
        valid = (rows <= hi_bin[:, 1:])[:, :, None] & (cols <= hi_bin[:, :1])[:, None, :]
        valid &= seen[:, None, None]
        first = table.first_bin.index_select(0, map_index)[:, None, None]
        key = first + rows[:, :, None] * grid[:, :1, None] + cols[:, None, :]
        key = torch.where(valid, key, 0).view(-1)
        count = table.bin_first.index_select(0, key + 1) - table.bin_first.index_select(0, key)
        return key, torch.where(valid.view(-1), count, 0), lo_bin

    def _pixels(
        self, poses: torch.Tensor, agent: torch.Tensor, start: torch.Tensor, end: torch.Tensor
    ) -> tuple[Pair, Pair]:
        """Segments (S, 2) city metres of agents ``agent`` (S,) -> pixel coordinates, in
        ``self.coordinates``."""
        matrices = raster_from_city(self._raster_from_agent, poses)  # (N, 3, 3) float64
        if self.coordinates == torch.float64:
            return to_pixels(matrices, agent, start, end)
        linear = matrices[:, :2, :2]
        at_px = (linear @ poses[:, :2, None])[..., 0] + matrices[:, :2, 2]  # the agent's pixel
        rows = torch.cat([linear.reshape(-1, 4), at_px], 1).to(self.coordinates)
        m = rows.index_select(0, agent).T  # (6, S)
        xy = poses[:, :2].index_select(0, agent)

        def move(point: torch.Tensor) -> Pair:
            rel = (point - xy).to(self.coordinates)
            return (
                m[0] * rel[:, 0] + m[1] * rel[:, 1] + m[4],
                m[2] * rel[:, 0] + m[3] * rel[:, 1] + m[5],
            )

        return move(start), move(end)

    def _fill(
        self,
        out: torch.Tensor,
        plane: torch.Tensor,
        row: torch.Tensor,
        col: torch.Tensor,
        sign: torch.Tensor,
    ) -> None:
        """Add each crossing's sign (+-1) to one int8 winding buffer of all fill layers (plane:
        ``agent * F + fill layer``, int32, per crossing); a
        running sum down the rows, non-zero, is each fill's mask. int8 wraps at 256: a pixel
        reads outside only if a multiple of 256 pieces of one layer covered it.

        Layout: with ``row_sums`` (the CPU) rows outermost, (H + 1, N, F, W): the sum is one
        vector add per row and the channels are written row by row (torch's cumsum along an
        outer axis is ~40x slower there); otherwise (N, F, W, H + 1): one scan per column, one
        kernel, as GPUs want it, and the channels written transposed.
        """
        n, _, h, w = out.shape
        count = len(self.fill_layers)
        row, col = row.to(torch.int32), col.to(torch.int32)
        if self.row_sums:
            flat = (row * (n * count) + plane) * w + col
        else:
            flat = (plane * w + col) * (h + 1) + row
        winding = torch.zeros(n * count * w * (h + 1), dtype=torch.int8, device=self.device)
        winding.index_add_(0, flat, sign.to(torch.int8))
        if self.row_sums:
            rows = winding.view(h + 1, n, count, w)
            for i in range(1, h):
                rows[i].add_(rows[i - 1])
            summed = rows[:h].permute(1, 2, 0, 3)  # (N, F, H, W)
        else:
            columns = winding.view(n, count, w, h + 1).cumsum(3, dtype=torch.int8)
            summed = columns[..., :h].transpose(2, 3)
        # Winding numbers copied straight into the channels, then made binary there: fewer
        # passes over the pixels than a separate mask.
        for k, channel in enumerate(self._fill_channels):
            target = out[:, channel]
            target.copy_(summed[:, k])
            if out.dtype == torch.uint8:
                target.clamp_(max=1).neg_()  # int8 cast to uint8 wraps: non-zero -> 1 -> 255
            else:
                target.ne_(0)

    def _lines(
        self, out: torch.Tensor, plane: torch.Tensor, row: torch.Tensor, col: torch.Tensor
    ) -> None:
        """Set touched pixels of line layers in ``out`` (cleared): plane ``(agent * C +
        channel) * H`` (int32), row and col (float) per pixel."""
        flat = (plane + row.to(torch.int32)) * out.shape[3] + col.to(torch.int32)
        out.view(-1).index_put_((flat,), self._on[out.dtype])


def _read_totals(totals: torch.Tensor) -> list[int]:
    """(T,) int64 totals on the host, in one copy: the one wait for the device of a stage."""
    if totals.device.type == "meta":
        return [META_TOTAL] * len(totals)
    return totals.to("cpu", copy=True).tolist()
