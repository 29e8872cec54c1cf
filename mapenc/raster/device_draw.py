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
1. every agent's window -> the (agent, bin) cells under its bounding box: a fixed
   (2, N, K, K) grid, fill items' bins then line items', K bounded by the raster's size, so no
   size has to come back from the device;
2. cells -> (agent, item), keeping an item only in the first of its bins under the window (so
   it is drawn once without a ``unique``), then -> its segment count; fill items come first;
3. (agent, segment) -> pixel coordinates, fill segments first -> one table of rules of pixels
   (``PixelRules``): the fills' column crossings (``Crossings``: one rule per edge), then the
   lines' supercovers (``Supercover``: four rules per segment);
4. one expansion of every rule's elements: every crossing adds its direction to one int8
   winding buffer of all fill layers (a running sum down the rows gives the fills: non-zero
   winding is inside), every touched line pixel is set in the output. On the CPU each part of
   the table (the crossings, each supercover rule) is expanded as it is, without joining, in
   blocks of about ``CPU_BLOCK_ELEMENTS`` elements, so a block's arrays stay in cache.
Stages 2-4 need the totals of the previous stage's counts on the host, read in one copy per
stage: three reads from the device per chunk (``HOST_READS_PER_CHUNK``), the first also saying
whether every pose is finite, the third on the CPU also giving the blocks' bounds.
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

from mapenc.geometry.ragged import ramp
from mapenc.raster.layers import LAYERS
from mapenc.raster.mapgeom import MapGeometry
from mapenc.raster.segments import (
    SUPERCOVER_RULES,
    Crossings,
    PixelRules,
    Supercover,
    columns_at,
    crossing_cells,
    crossing_counts,
    moved,
    ramp_tensor,
    stepped_at,
    supercover_cells,
    supercover_counts,
    to_pixels,
)
from mapenc.raster.spec import RasterSpec
from mapenc.raster.values import empty_tensor

BIN_M = 16.0  # bin edge (metres), raised for huge maps so the grid keeps at most MAX_BINS_AXIS
MAX_BINS_AXIS = 1024
# Stage 4 on the CPU: rules expanded in blocks of about this many elements, so that a block's
# arrays stay in cache; the blocks' bounds are read every CPU_BLOCK_RULES rules.
CPU_BLOCK_ELEMENTS = 32768
CPU_BLOCK_RULES = 1024
HOST_READS_PER_CHUNK = 3  # totals of stages 1-3 (see the module docstring)
# What a total reads as on the meta device (shapes without data), where the drawing runs to check
# that every tensor stays on the drawer's device with the dtypes and shapes the stages expect.
META_TOTAL = 64
__all__ = ["BIN_M", "HOST_READS_PER_CHUNK", "MAX_BINS_AXIS", "MapTable", "VectorDrawer"]


@dataclass(frozen=True)
class MapTable:
    """One or more maps' drawn layers as items in bins, on a device.

    Each map's bins come twice, fill items' bins then line items' bins, so that the (agent,
    item) pairs of a batch, and then its (agent, segment) pairs, come out fill items first.

    Attributes:
        points: (4, S) float64 city-frame segment ends, rows x0, x1, y0, y1 (start, end).
        item_first, item_count: (I,) int64 the segments of each item.
        item_layer: (I,) int64 index of its layer in ``VectorDrawer.layers``.
        item_lo: (I, 2) int64 (column, row) of the item's first bin.
        bin_start, bin_count: (B + 1,) int64 bin b holds ``bin_item[bin_start[b]:][:bin_count[b]]``;
            the last bin is empty, read by cells off the window.
        bin_item: (E,) int64 item ids.
        map_grid: (M, 6) float64 per map: city corner (x, y) of its bin grid, bin edge (metres),
            columns, rows, and its first bin (its line items' bins follow its fill items').
        smallest_bin_m: the smallest bin edge (host), which bounds the bins under a window.
    """

    points: torch.Tensor
    item_first: torch.Tensor
    item_count: torch.Tensor
    item_layer: torch.Tensor
    item_lo: torch.Tensor
    bin_start: torch.Tensor
    bin_count: torch.Tensor
    bin_item: torch.Tensor
    map_grid: torch.Tensor
    smallest_bin_m: float

    @classmethod
    def build(
        cls, geometry: MapGeometry, layers: tuple[str, ...], device: torch.device
    ) -> MapTable:
        """The table of one map's ``layers`` (fill or line layers, at least one), built on the
        host."""
        ends, firsts, counts, owners, boxes, kinds = [], [], [], [], [], []
        offset = 0
        for index, name in enumerate(layers):
            layer = LAYERS[name]
            pieces = geometry.pieces(layer)
            segments = pieces.segments
            if layer.fills:
                box = pieces.box
                first, count = segments.first[:-1], np.diff(segments.first)
            else:
                x0, x1, y0, y1 = segments.ends
                box = np.stack(
                    [
                        np.minimum(x0, x1),
                        np.minimum(y0, y1),
                        np.maximum(x0, x1),
                        np.maximum(y0, y1),
                    ],
                    axis=1,
                )
                first = np.arange(len(x0))
                count = np.ones(len(x0), dtype=np.intp)
            ends.append(segments.ends)
            firsts.append(first + offset)
            counts.append(count)
            owners.append(np.full(len(first), index))
            boxes.append(box)
            kinds.append(np.full(len(first), 0 if layer.fills else 1))
            offset += segments.ends.shape[1]
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
        key += np.concatenate(kinds)[item] * (rows * cols)  # line items' bins after fills'
        order = np.argsort(key, kind="stable")
        in_bin = np.bincount(key, minlength=2 * rows * cols)

        def put(array: ArrayLike, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)

        f64, i64 = torch.float64, torch.int64
        return cls(
            points=put(np.concatenate(ends, axis=1), f64),
            item_first=put(np.concatenate(firsts), i64),
            item_count=put(np.concatenate(counts), i64),
            item_layer=put(np.concatenate(owners), i64),
            item_lo=put(lo.reshape(-1, 2), i64),
            bin_start=put(np.append(np.cumsum(in_bin) - in_bin, 0), i64),
            bin_count=put(np.append(in_bin, 0), i64),
            bin_item=put(item[order], i64),
            map_grid=put([[xmin, ymin, bin_m, cols, rows, 0]], f64),
            smallest_bin_m=bin_m,
        )

    @classmethod
    def concat(cls, tables: list[MapTable]) -> MapTable:
        """One table of several maps (map m of the result is ``tables[m]``), joined on the device
        with each map's ids shifted past the maps before it."""

        def bases(sizes: list[int]) -> list[int]:
            return [0, *np.cumsum(sizes)[:-1].tolist()]

        seg_base = bases([t.points.shape[1] for t in tables])
        item_base = bases([len(t.item_first) for t in tables])
        entry_base = bases([len(t.bin_item) for t in tables])
        grid = torch.cat([t.map_grid[:, :5] for t in tables])
        bins = 2 * grid[:, 3] * grid[:, 4]
        map_grid = torch.cat([grid, (torch.cumsum(bins, 0) - bins)[:, None]], 1)
        return cls(
            points=torch.cat([t.points for t in tables], 1),
            item_first=torch.cat([t.item_first + s for t, s in zip(tables, seg_base, strict=True)]),
            item_count=torch.cat([t.item_count for t in tables]),
            item_layer=torch.cat([t.item_layer for t in tables]),
            item_lo=torch.cat([t.item_lo for t in tables]),
            bin_start=torch.cat(
                [t.bin_start[:-1] + e for t, e in zip(tables, entry_base, strict=True)]
                + [tables[0].bin_start[-1:]]
            ),
            bin_count=torch.cat([t.bin_count[:-1] for t in tables] + [tables[0].bin_count[-1:]]),
            bin_item=torch.cat([t.bin_item + i for t, i in zip(tables, item_base, strict=True)]),
            map_grid=map_grid,
            smallest_bin_m=min(t.smallest_bin_m for t in tables),
        )


def raster_from_city(
    raster_from_agent: torch.Tensor, poses: torch.Tensor, c: torch.Tensor, s: torch.Tensor
) -> torch.Tensor:
    """(N, 3, 3) float64 city metres -> pixel coordinates of each agent's raster, for poses
    (N, 3) float64 with the cosines ``c`` and sines ``s`` (N,) of their headings and
    ``RasterSpec.raster_from_agent()`` (3, 3) on the same device (the numpy
    ``RasterSpec.raster_from_city`` in torch, the same operations)."""
    x, y = poses[:, 0], poses[:, 1]
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
        self.row_sums = device.type == "cpu"  # the fills' running sums (see ``_write_fills``)
        h, w = spec.size_px
        self._raster_from_agent = torch.as_tensor(spec.raster_from_agent(), device=device)
        xmin, ymin, xmax, ymax = spec.extent_m
        # The window (agent frame, metres): (cos, sin) @ _window_mid is its centre's offset in
        # the city frame, |(cos, sin)| @ _window_half the half sides of its bounding box there,
        # widened by a pixel against rounding at the bins' edges.
        pad, mx, my = spec.pixel_size_m, (xmin + xmax) / 2, (ymin + ymax) / 2
        hx, hy = (xmax - xmin) / 2 + pad, (ymax - ymin) / 2 + pad
        f64 = torch.float64
        self._window_mid = torch.tensor([[mx, my], [-my, mx]], dtype=f64, device=device)
        self._window_half = torch.tensor([[hx, hy], [hy, hx]], dtype=f64, device=device)
        # The widest that bounding box gets (at any heading): the widened window's diagonal.
        self._window_span_m = 2.0 * float(np.hypot(hx, hy))
        self._lower_upper = torch.tensor([[-1.0], [1.0]], dtype=f64, device=device)
        self._line_channels = [spec.layers.index(n) for n in self.line_layers]
        # Line channels as runs of consecutive channels [first, stop), each cleared at once.
        self._line_channel_runs: list[tuple[int, int]] = []
        for channel in sorted(self._line_channels):
            if self._line_channel_runs and self._line_channel_runs[-1][1] == channel:
                self._line_channel_runs[-1] = (self._line_channel_runs[-1][0], channel + 1)
            else:
                self._line_channel_runs.append((channel, channel + 1))
        self._fill_channels = [spec.layers.index(n) for n in self.fill_layers]
        # Plane of an item of layer l of agent a: a * table[l, 0] + table[l, 1], per layout of
        # the winding buffer (``row_sums``): lines: the first pixel of the agent's channel in
        # ``out``; fills: the offset of the agent's plane a * F + l in the winding buffer,
        # (a * F + l) * W with rows outermost, (a * F + l) * W * (H + 1) with columns.
        fills = len(self.fill_layers)
        lines = [[spec.num_channels * h * w, c * h * w] for c in self._line_channels]
        self._plane_tables = {
            row_sums: torch.tensor(
                [[fills * size, layer * size] for layer in range(fills)] + lines,
                dtype=torch.int64,
                device=device,
            )
            for row_sums, size in ((True, w), (False, w * (h + 1)))
        }
        self._steps: dict[int, torch.Tensor] = {}  # K -> (2, K) 0..K-1 and whether > 0

    def table(self, geometry: MapGeometry) -> MapTable:
        """The ``MapTable`` of one map's drawn layers, on this drawer's device."""
        return MapTable.build(geometry, self.layers, self.device)

    def bins_per_axis(self, table: MapTable) -> int:
        """Most bins a window's bounding box spans along an axis: a side of length L spans at
        most floor(L / bin) + 2 bins, and the side is at most the widened window's diagonal."""
        return int(self._window_span_m // table.smallest_bin_m) + 2

    def draw(
        self,
        table: MapTable,
        poses: torch.Tensor,
        out: torch.Tensor,
        map_index: torch.Tensor | None = None,
        finite: torch.Tensor | None = None,
        zeroed: bool = False,
    ) -> bool:
        """Write the drawn layers' channels of ``out`` (N, C, H, W) for city poses (N, 3) float64
        on ``table``'s map ``map_index`` (N,) int64 (None: map 0); ``zeroed``: ``out`` comes
        zeroed, so its line channels are not cleared again.

        Returns False, having drawn nothing, when ``finite`` (a bool tensor on the device, e.g.
        whether every pose of the call is finite) is given and False: it is read with the first
        stage's total, so checking costs no extra wait for the device.
        """
        n = len(poses)
        if n == 0 or not self.layers:
            return True
        h, w = self.spec.size_px
        cos, sin = torch.cos(poses[:, 2]), torch.sin(poses[:, 2])
        matrices = raster_from_city(self._raster_from_agent, poses, cos, sin)  # (N, 3, 3)
        grid = (  # (N, 6) ``MapTable.map_grid`` of each agent's map
            table.map_grid[:1].expand(n, -1)
            if map_index is None
            else table.map_grid.index_select(0, map_index)
        )
        # Stage 1: (agent, bin) cells on a fixed (2, N, K, K) grid, fill items' bins first.
        cells = self._bins(table, poses, torch.stack([cos, sin], 1), grid)
        ends = torch.cumsum(cells.count, 0)
        totals = _split_view(ends, len(ends) // 2)
        if finite is not None:
            totals = torch.where(finite, totals, -1)
        fill_entries, entries = _split_totals(_read_totals(totals), len(ends) // 2)
        if entries < 0:
            return False
        # Stage 2: (agent, item) pairs, each item once (in the first of its bins under the
        # window) -> their segment counts.
        owner = torch.repeat_interleave(cells.count, output_size=entries)
        at = self._steps_to(entries) + (cells.start - ends + cells.count).index_select(0, owner)
        item = table.bin_item.index_select(0, at)
        agent = torch.div(owner, cells.per_agent, rounding_mode="floor") % n
        first = (table.item_lo.index_select(0, item) >= cells.need.index_select(0, owner)).all(1)
        seg_count = torch.where(first, table.item_count.index_select(0, item), 0)
        layer = table.item_layer.index_select(0, item)
        scale_base = self._plane_tables[self.row_sums].index_select(0, layer)
        plane = torch.addcmul(scale_base[:, 1], agent, scale_base[:, 0])
        seg_ends = torch.cumsum(seg_count, 0)
        segments, fill_segments = 0, 0
        if entries:
            read = _read_totals(_split_view(seg_ends, fill_entries))
            fill_segments, segments = _split_totals(read, fill_entries)
        # Stage 3: (agent, segment) -> pixel coordinates (fills' segments first) -> one table of
        # rules of pixels: the fills' column crossings, then the lines' supercovers.
        pair = torch.repeat_interleave(seg_count, output_size=segments)
        start = table.item_first.index_select(0, item) - seg_ends + seg_count
        seg = self._steps_to(segments) + start.index_select(0, pair)
        agent = agent.index_select(0, pair)
        plane = plane.index_select(0, pair)
        points = self._pixels(columns_at(table.points, seg), matrices, poses, agent)
        crossings = crossing_counts(points[..., :fill_segments], w)
        cover = supercover_counts(points[..., fill_segments:], w, h)
        tables = self._rule_tables(crossings, cover, plane, fill_segments)
        blocks = self._blocks(tables)
        # Stage 4: crossings into the winding buffer, touched pixels straight into ``out``.
        winding = self._winding(n) if self.fill_layers else None
        if not zeroed:
            for run_start, run_stop in self._line_channel_runs:
                out[:, run_start:run_stop].zero_()
        if self.device.type == "cpu":
            self._write_end_pixels(cover, plane[fill_segments:], out)
        for table_index, block in blocks:
            self._expand(tables[table_index], block, out, winding)
        if winding is not None:
            self._write_fills(out, winding)
        return True

    def _write_end_pixels(self, cover: Supercover, plane: torch.Tensor, out: torch.Tensor) -> None:
        """On the CPU, the line segments' two end pixels (``Supercover.end_cells``; plane (S,)
        of each segment) written into ``out`` without expanding their rules (``_rule_tables``
        leaves them out there)."""
        h, w = self.spec.size_px
        # Segments clipped away write 0 through a maximum: no pixel changes, and no wait to
        # find the kept ones.
        value = cover.keep.to(out.dtype) * (255 if out.dtype == torch.uint8 else 1)
        for row, col in cover.end_cells(w, h):
            flat = torch.add(col.to(torch.int64), row.to(torch.int64), alpha=w)
            flat += plane
            out.view(-1).scatter_reduce_(0, flat, value, "amax")

    def _rule_tables(
        self, crossings: Crossings, cover: Supercover, plane: torch.Tensor, fill_segments: int
    ) -> list[_RuleTable]:
        """Stage 3's rules as the tables stage 4 expands, for the fill segments' ``crossings``
        and the line segments' ``cover``, with the segments' planes (S,): on accelerators one
        table of all rules (one expansion); on the CPU one per part (the fills' crossings, then
        the supercover's grid-line rules; its end pixels are ``_write_end_pixels``'), each used
        as it is, without the copies joining them takes."""
        if self.device.type != "cpu":
            parts = [crossings.rules, *cover.parts]
            planes = [plane[:fill_segments]] + [plane[fill_segments:]] * SUPERCOVER_RULES
            rules = PixelRules.joined(parts)
            return [
                _RuleTable(
                    rules=rules,
                    ends=torch.cumsum(rules.count, 0),
                    plane=torch.cat(planes),
                    sign=crossings.sign,
                    fill_rules=fill_segments,
                    row_rules_start=fill_segments + cover.row_rules_start,
                )
            ]
        grid_line_rules = cover.parts[2:]  # along columns, then along rows
        parts = [crossings.rules, *grid_line_rules]
        planes = [plane[:fill_segments]] + [plane[fill_segments:]] * len(grid_line_rules)
        tables = []
        for index, (part, part_plane) in enumerate(zip(parts, planes, strict=True)):
            rules = PixelRules.joined([part])
            if len(rules.count):
                tables.append(
                    _RuleTable(
                        rules=rules,
                        ends=torch.cumsum(rules.count, 0),
                        plane=part_plane,
                        sign=crossings.sign,
                        fill_rules=len(rules.count) if index == 0 else 0,
                        row_rules_start=0 if index == len(parts) - 1 else len(rules.count),
                    )
                )
        return tables

    def _expand(
        self, table: _RuleTable, block: _Block, out: torch.Tensor, winding: torch.Tensor | None
    ) -> None:
        """Stage 4 for one block of rules: its crossings into the winding buffer (when drawing
        fills), its line pixels into ``out`` (N, C, H, W)."""
        h, w = self.spec.size_px
        ends = table.ends[block.rules]
        if block.elements.start:
            ends = ends - block.elements.start
        size = block.elements.stop - block.elements.start
        owner, k = ramp_tensor(table.rules.count[block.rules], ends, size)
        if block.rules.start:
            owner += block.rules.start
        entered, other = stepped_at(table.rules, owner, k)
        target = table.plane.index_select(0, owner)
        if block.fills and winding is not None:
            crossing = slice(block.fill_elements)
            col, row = crossing_cells(entered[crossing], other[crossing], h)
            sign = table.sign.index_select(0, owner[crossing])
            self._add_crossings(winding, len(out), target[crossing], row, col, sign)
        if block.lines:
            pixel = slice(block.fill_elements, None)
            row_rule = owner[pixel] >= table.row_rules_start
            row, col = supercover_cells(entered[pixel], other[pixel], row_rule, w, h)
            # Each cast floors its coordinate (both are >= 0) to the pixel's column, row.
            flat = torch.add(col.to(torch.int64), row.to(torch.int64), alpha=w)
            flat += target[pixel]
            on = 255 if out.dtype == torch.uint8 else 1
            if self.device.type == "cpu":  # a scatter of maxima: 1.0-1.4x index_fill_'s speed
                out.view(-1).scatter_reduce_(
                    0, flat, torch.full_like(flat, on, dtype=out.dtype), "amax"
                )
            else:
                out.view(-1).index_fill_(0, flat, on)

    def _blocks(self, tables: list[_RuleTable]) -> list[tuple[int, _Block]]:
        """Stage 3's totals on the host (the third read) as the blocks of rules stage 4 expands,
        each with the index of its table: one block on accelerators; on the CPU blocks of about
        ``CPU_BLOCK_ELEMENTS`` elements, so that each block's arrays stay in cache (their
        bounds are each table's ``ends`` every ``CPU_BLOCK_RULES`` rules, read in the same
        copy)."""
        if not tables:
            return []
        if self.device.type != "cpu":
            (table,) = tables
            totals = _read_totals(_split_view(table.ends, table.fill_rules))
            crossings, elements = _split_totals(totals, table.fill_rules)
            block = _Block(
                slice(0, len(table.ends)),
                slice(0, elements),
                crossings,
                bool(self.fill_layers),
                bool(self.line_layers),
            )
            return [(0, block)]
        marks = [t.ends[CPU_BLOCK_RULES - 1 :: CPU_BLOCK_RULES] for t in tables]
        read = _read_totals(torch.cat(marks + [t.ends[-1:] for t in tables]))
        totals = read[-len(tables) :]
        blocks = []
        for index, table in enumerate(tables):
            fills = table.fill_rules > 0
            # Rules -> elements before them, at every CPU_BLOCK_RULES-th rule and at the end.
            ends = {CPU_BLOCK_RULES * (i + 1): e for i, e in enumerate(read[: len(marks[index])])}
            read = read[len(marks[index]) :]
            ends[len(table.ends)] = totals[index]
            first, before = 0, 0
            for rule in sorted(ends):
                elements = ends[rule]
                if elements - before >= CPU_BLOCK_ELEMENTS or rule == len(table.ends):
                    count = elements - before
                    block = _Block(
                        slice(first, rule),
                        slice(before, elements),
                        count if fills else 0,
                        fills,
                        not fills,
                    )
                    blocks.append((index, block))
                    first, before = rule, elements
        return blocks

    def _steps_to(self, count: int) -> torch.Tensor:
        """0..count-1 (int64) on the device."""
        return torch.arange(count, device=self.device)

    def _bins(
        self, table: MapTable, poses: torch.Tensor, cos_sin: torch.Tensor, grid: torch.Tensor
    ) -> _Cells:
        """Stage 1: the (2, N, K, K) cells, fill items' bins then line items', under each
        agent's window on its map (``_Cells``), for poses (N, 3), the cosines and sines (N, 2) of
        their headings and their maps' ``MapTable.map_grid`` rows (N, 6); cells off the window
        read the empty bin, as do all cells of a pose that is not finite."""
        k = self.bins_per_axis(table)
        if k not in self._steps:
            steps = torch.arange(k, dtype=torch.float64, device=self.device)
            self._steps[k] = torch.stack([steps, (steps > 0).to(steps.dtype)])
        step, inner = self._steps[k]  # 0..K-1, and 0 for the window's first column or row
        # The window's bounding box in the city frame: centre and half sides.
        centre = torch.addmm(poses[:, :2], cos_sin, self._window_mid)
        reach = cos_sin.abs() @ self._window_half
        box = torch.addcmul(centre[:, None], reach[:, None], self._lower_upper)  # (N, 2, 2)
        # A window off the map reads its edge bins (segments outside the raster: no pixels).
        bins = torch.floor((box - grid[:, None, :2]) / grid[:, None, 2:3])
        bins = torch.minimum(bins.clamp(min=0), grid[:, None, 3:5] - 1)
        steps = bins[:, 0, :, None] + step  # (N, 2 x/y, K) columns and rows
        valid = steps <= bins[:, 1, :, None]
        valid = valid[:, 1, :, None] & valid[:, 0, None, :]  # (N, K, K)
        fill_key = (steps[:, 1] * grid[:, 3:4] + grid[:, 5:6])[:, :, None] + steps[:, 0, None, :]
        line_key = fill_key + (grid[:, 3] * grid[:, 4])[:, None, None]
        empty_bin = len(table.bin_count) - 1
        keys = torch.where(valid, torch.stack([fill_key, line_key]), empty_bin)
        key = keys.to(torch.int64).view(-1)
        # A cell's bin is an item's first bin under the window when the item's first column
        # and row are at least the cell's ``need``: its bin's column and row, but 0 in the
        # window's first column and row (the item may start further out).
        needs = steps * inner
        need = torch.stack(
            [
                needs[None, :, 0, None, :].expand(2, -1, k, -1),
                needs[None, :, 1, :, None].expand(2, -1, -1, k),
            ],
            4,
        ).view(-1, 2)
        return _Cells(
            count=table.bin_count.index_select(0, key),
            start=table.bin_start.index_select(0, key),
            need=need,
            per_agent=k * k,
        )

    def _pixels(
        self, ends: torch.Tensor, matrices: torch.Tensor, poses: torch.Tensor, agent: torch.Tensor
    ) -> torch.Tensor:
        """Segments (4, S) city metres (rows x0, x1, y0, y1) of agents ``agent`` (S,) ->
        ``Points`` (2, 2, S) in ``self.coordinates``."""
        if self.coordinates == torch.float64:
            return to_pixels(matrices, agent, ends[:2], ends[2:])
        linear = matrices[:, :2, :2]
        at_px = (linear @ poses[:, :2, None]) + matrices[:, :2, 2:]  # the agent's pixel
        rows = torch.cat([linear, at_px], 2).reshape(-1, 6).T
        rows = rows.to(self.coordinates, memory_format=torch.contiguous_format)
        at = columns_at(poses[:, :2].T, agent)  # (2, S) the agent's x, y
        rel = (ends.view(2, 2, -1) - at[:, None]).to(self.coordinates)
        return moved(columns_at(rows, agent), rel[0], rel[1])

    def _winding(self, n: int) -> torch.Tensor:
        """The int8 winding buffer of all fill layers of ``n`` agents, zeroed (layout: see
        ``_write_fills``)."""
        h, w = self.spec.size_px
        count = n * len(self.fill_layers) * w * (h + 1)
        return empty_tensor((count,), torch.int8, self.device, zeroed=True)

    def _add_crossings(
        self,
        winding: torch.Tensor,
        n: int,
        plane: torch.Tensor,
        row: torch.Tensor,
        col: torch.Tensor,
        sign: torch.Tensor,
    ) -> None:
        """Add each crossing's sign (int8 +-1) to the winding buffer of ``n`` agents at its row
        and column (float, whole numbers) of its plane (int64 offset of ``agent * F + fill
        layer``). Row and column are combined in float (float64 with rows outermost; exact)."""
        h, w = self.spec.size_px
        if self.row_sums:  # (H + 1, N, F, W), rows N * F * W apart: in float64
            in_plane = torch.add(col.to(torch.float64), row, alpha=n * len(self.fill_layers) * w)
        else:  # (N, F, W, H + 1)
            in_plane = torch.add(row, col, alpha=h + 1)
        winding.index_add_(0, in_plane.to(torch.int64).add_(plane), sign)

    def _write_fills(self, out: torch.Tensor, winding: torch.Tensor) -> None:
        """Each fill's mask from the winding buffer: a running sum down the rows, non-zero, into
        its channel of ``out`` (N, C, H, W). int8 wraps at 256: a pixel reads outside only if a
        multiple of 256 pieces of one layer covered it.

        Layout: with ``row_sums`` (the CPU) rows outermost, (H + 1, N, F, W): the sum is one
        vector add per row and the channels are written row by row (torch's cumsum along an
        outer axis is ~40x slower there); otherwise (N, F, W, H + 1): one scan per column, one
        kernel, as GPUs want it, and the channels written transposed.
        """
        n, _, h, w = out.shape
        count = len(self.fill_layers)
        if self.row_sums:
            rows = winding.view(h + 1, n, count, w)
            for i in range(1, h):
                rows[i].add_(rows[i - 1])
            summed = rows[:h].permute(1, 2, 0, 3)  # (N, F, H, W)
        else:
            columns = winding.view(n, count, w, h + 1).cumsum(3, dtype=torch.int8)
            summed = columns[..., :h].transpose(2, 3)
        inside = summed.ne_(0)  # (N, F, H, W) int8 1 inside, in place
        for k, channel in enumerate(self._fill_channels):
            if out.dtype == torch.uint8:
                # -1 written into the channel's bytes as int8 is 255 as uint8.
                torch.neg(inside[:, k], out=out[:, channel].view(torch.int8))
            else:
                out[:, channel].copy_(inside[:, k])


@dataclass(frozen=True)
class _RuleTable:
    """Rules of pixels (R,) of a chunk expanded together (``VectorDrawer._rule_tables``): all of
    them (the fills' crossings, then the lines' supercovers), or one part.

    Attributes:
        rules: the ``PixelRules``; ends: (R,) int64 their counts' running totals.
        plane: (R,) int64 each rule's plane offset (``VectorDrawer._plane_tables``).
        sign: (F,) int8 direction in u of the fill segments' edges.
        fill_rules: the first ``fill_rules`` rules are crossings (their edges' index).
        row_rules_start: the first rule stepping along rows (lines' rule 3; R if none).
    """

    rules: PixelRules
    ends: torch.Tensor
    plane: torch.Tensor
    sign: torch.Tensor
    fill_rules: int
    row_rules_start: int


@dataclass(frozen=True)
class _Block:
    """Rules of stage 4 expanded together: ``rules`` (indices into the rule table), their
    ``elements`` (indices into the expansion), the first ``fill_elements`` of which are
    crossings; ``fills``, ``lines``: whether the block holds fill rules, line rules."""

    rules: slice
    elements: slice
    fill_elements: int
    fills: bool
    lines: bool


@dataclass(frozen=True)
class _Cells:
    """Stage 1's (agent, bin) cells, flat (2 * N * K * K,): fill items' bins, then line items'.

    Attributes:
        count: items in the cell's bin (0 off the window); start: its first entry in
            ``MapTable.bin_item``; need: (2 * N * K * K, 2) float64 (column, row) an item's first
            bin must reach for the cell to be its first under the window; per_agent: K * K.
    """

    count: torch.Tensor
    start: torch.Tensor
    need: torch.Tensor
    per_agent: int


def _split_view(ends: torch.Tensor, split: int) -> torch.Tensor:
    """A view (no kernel) of running totals ``ends`` (L,) at ``split`` and at the end:
    ``ends[split - 1]`` and ``ends[-1]``, or ``ends[-1]`` alone when ``split`` is 0 or L
    (``_split_totals`` reads either)."""
    last = len(ends) - 1
    if 0 < split <= last:
        return ends[split - 1 :: last - split + 1]
    return ends[last:]


def _split_totals(values: list[int], split: int) -> tuple[int, int]:
    """(total of the first ``split`` counts, total of all) from the values of ``_split_view``."""
    if len(values) == 2:
        return values[0], values[1]
    return (0 if split == 0 else values[0]), values[0]


def _read_totals(totals: torch.Tensor) -> list[int]:
    """(T,) int64 totals on the host, in one copy: the one wait for the device of a stage."""
    if totals.device.type == "meta":
        return [META_TOTAL] * len(totals)
    return totals.to("cpu", copy=True).tolist()
