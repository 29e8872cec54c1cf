"""Exact rasterization: every agent's raster drawn from the vector geometry, in numpy.

All agents of a batch are drawn together: per layer the pieces meeting each agent's window are
found once for all agents (``mapenc.raster.mapgeom.Pieces.meeting``: ``LayerPairs``), every
segment of every (agent, geometry) pair is moved into that agent's pixel coordinates in float64,
and then (the binary layers of one kind all in one pass):

- binary fill layers (``fill_polygons``): a pixel is on when its centre lies inside a polygon
  (non-zero winding over the map's oriented polygons, half-open at edges);
- valued fills (``paint_polygons``: lane quads, agent boxes): each polygon paints its value on
  the pixel centres inside it (even-odd), later polygons on top;
- line layers (``burn_lines``): every pixel a segment touches is on (its supercover, what
  ``rasterio.features.rasterize(all_touched=True)`` burns).

Fills work on column scan-lines: each edge is intersected with the centre lines of the pixel
columns it spans, so the work grows with the edges' extent in pixels, not with the raster size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from mapenc.geometry.ragged import ramp
from mapenc.raster.segments import (
    SUPERCOVER_RULES,
    PixelRules,
    Segments,
    columns_at,
    crossing_cells,
    crossing_counts,
    ramp_tensor,
    stepped_at,
    supercover_cells,
    supercover_counts,
    to_pixels,
)

__all__ = [
    "LayerPairs",
    "Segments",
    "burn_lines",
    "fill_polygons",
    "paint_polygons",
]


@dataclass(frozen=True)
class LayerPairs:
    """One layer's geometry to draw in a batch of rasters: geometry ``geom_idx[k]`` of
    ``segments`` in agent ``agent_idx[k]``'s raster, for every k (``Pieces.meeting``)."""

    segments: Segments
    agent_idx: NDArray[np.intp]
    geom_idx: NDArray[np.intp]


def _joined(arrays: list[NDArray[Any]], axis: int = 0) -> NDArray[Any]:
    """``np.concatenate(arrays, axis)``, without a copy for one array."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=axis)


def _column_crossings(
    layers: Sequence[LayerPairs], raster_from_city: NDArray[np.float64], size_px: tuple[int, int]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], NDArray[np.int16]]:
    """Where polygon edges cross the centre lines of pixel columns.

    Returns (pair, column, row, sign) per crossing: the (agent, polygon) pair (numbered across
    ``layers`` in order), the column j whose centre line u = j + 0.5 the edge crosses (half-open
    in u), the first row whose centre lies at or below the crossing (clipped to 0..H), and the
    edge's direction in u (+1 / -1). The arithmetic is the torch mode's
    (``mapenc.raster.segments``).
    """
    h, w = size_px
    seg_pair, points = _pixel_segments(layers, raster_from_city)
    crossings = crossing_counts(points, w)
    rules = PixelRules.joined([crossings.rules])
    edge, k = ramp_tensor(rules.count)
    col, row = crossing_cells(*stepped_at(rules, edge, k), h)
    return (
        seg_pair[edge.numpy()],
        col.long().numpy(),
        row.long().numpy(),
        crossings.sign.index_select(0, edge).numpy().astype(np.int16),
    )


def _pixel_segments(
    layers: Sequence[LayerPairs], raster_from_city: NDArray[np.float64]
) -> tuple[NDArray[np.intp], torch.Tensor]:
    """(pair of each segment, ``Points`` (2, 2, S)) of every segment of every (agent, geometry)
    pair of ``layers``, pairs numbered across the layers in order, in that agent's pixel
    coordinates (float64 tensors on numpy's memory)."""
    pairs, segs, first_pair = [], [], 0
    for layer in layers:
        seg_pair, seg = layer.segments.for_pairs(layer.agent_idx, layer.geom_idx)
        pairs.append(seg_pair + first_pair)
        segs.append(seg)
        first_pair += len(layer.agent_idx)
    seg_pair = _joined(pairs)
    agent_idx = _joined([layer.agent_idx for layer in layers])
    xy = torch.empty((4, len(seg_pair)), dtype=torch.float64)  # (4, S) x0, x1, y0, y1
    at = 0
    for layer, seg in zip(layers, segs, strict=True):  # each layer's rows gathered in place
        columns_at(
            torch.from_numpy(layer.segments.ends), torch.from_numpy(seg), xy[:, at : at + len(seg)]
        )
        at += len(seg)
    points = to_pixels(
        torch.from_numpy(np.ascontiguousarray(raster_from_city, dtype=np.float64)),
        torch.from_numpy(agent_idx[seg_pair]),
        xy[:2],
        xy[2:],
    )
    return seg_pair, points


def paint_polygons(
    canvas: NDArray[Any],
    values: NDArray[Any],
    pairs: LayerPairs,
    raster_from_city: NDArray[np.float64],
) -> None:
    """Paint ``values[k]`` on the pixel centres inside polygon ``pairs.geom_idx[k]`` of agent
    ``pairs.agent_idx[k]``'s raster, in order (later pairs on top).

    Args:
        canvas: C-contiguous (N, H, W) array written in place.
        values: (M,) one value per (agent, polygon) pair.
    Within a column, a polygon's crossings sorted by row pair up into the spans it covers
    (even-odd rule, half-open like ``fill_polygons``).
    """
    _, h, w = canvas.shape
    pair, col, row, _ = _column_crossings([pairs], raster_from_city, (h, w))
    key = pair * w + col
    order = np.lexsort((row, key))  # by pair (drawing order), column, then row
    key, row = key[order], row[order]
    span, k = ramp(row[1::2] - row[0::2])
    span_key = key[0::2][span]
    span_pair = span_key // w
    flat = (pairs.agent_idx[span_pair] * h + row[0::2][span] + k) * w + span_key % w
    canvas.reshape(-1)[flat] = values[span_pair]  # repeated pixels keep the last value


def fill_polygons(
    layers: Sequence[LayerPairs], raster_from_city: NDArray[np.float64], size_px: tuple[int, int]
) -> NDArray[np.bool_]:
    """(L, N, H, W) True where the pixel centre lies inside one of the agent's polygons of
    layer l (``layers``: L layers drawn in one pass).

    Args:
        layers: each layer's oriented polygon rings (``Segments.of``) and (agent, polygon)
            pairs.
        raster_from_city: (N, 3, 3) city -> pixel coordinates of each agent's raster.
        size_px: (H, W).
    Returns a view of an (H, L, N, W) array. Each edge adds its direction (+-1) where it crosses
    a column's centre line, in the first row whose centre lies at or below the crossing; a
    running sum down the rows (one vector add per row for the whole batch and every layer) gives
    the winding number at each pixel centre. A centre exactly on an edge counts when the edge
    lies above it, so polygons sharing an edge never both claim a pixel.
    """
    h, w = size_px
    n, stacked = len(raster_from_city), len(layers) * len(raster_from_city)
    pair, col, row, sign = _column_crossings(layers, raster_from_city, size_px)
    # (layer, agent) of each pair, numbered layer * N + agent: the column block it adds to.
    block = _joined([pairs.agent_idx + at * n for at, pairs in enumerate(layers)])
    winding = np.zeros((h + 1, stacked * w), dtype=np.int16)
    np.add.at(winding.reshape(-1), (row * stacked + block[pair]) * w + col, sign)
    for i in range(1, h):
        np.add(winding[i], winding[i - 1], out=winding[i])
    return (winding[:h] != 0).reshape(h, len(layers), n, w).transpose(1, 2, 0, 3)


def burn_lines(
    out: NDArray[Any],
    value: float,
    raster_from_city: NDArray[np.float64],
    layers: Sequence[LayerPairs],
    channels: Sequence[int],
) -> None:
    """Set every pixel of ``out[:, channels[l]]`` (``out``: C-contiguous (N, C, H, W)) that an
    agent's line segments of ``layers[l]`` touch to ``value``, every layer in one pass.

    Segments are clipped to the raster; a segment touches the pixels it starts and ends in and
    every pixel it enters by crossing a pixel-grid line: its supercover. The arithmetic is the
    torch mode's (``mapenc.raster.segments``), run here on numpy's memory.
    """
    _, nc, h, w = out.shape
    seg_pair, points = _pixel_segments(layers, raster_from_city)
    cover = supercover_counts(points, w, h)
    pair_base = _joined(
        [(pairs.agent_idx * nc + c) * h for pairs, c in zip(layers, channels, strict=True)]
    )
    base = pair_base[seg_pair]  # (S,) row 0 of each segment's channel
    flat_out = out.reshape(-1)
    # The two end pixels of each kept segment, not expanded.
    kept = np.flatnonzero(cover.keep.numpy())
    for row, col in cover.end_cells(w, h):
        row_kept, col_kept = row.long().numpy()[kept], col.long().numpy()[kept]
        flat_out[(base[kept] + row_kept) * w + col_kept] = value
    # The grid-line rules rule by rule (each expanded as it is): joining them into one table
    # first costs copies and a per-pixel choice of axis that take longer than the pixels.
    for rule in range(2, SUPERCOVER_RULES):
        rules = PixelRules.joined([cover.parts[rule]])
        owner, k = ramp_tensor(rules.count)
        entered, other = stepped_at(rules, owner, k)
        steps_rows = torch.tensor(rule == SUPERCOVER_RULES - 1)
        row_t, col_t = supercover_cells(entered, other, steps_rows, w, h)
        flat_out[(base[owner.numpy()] + row_t.long().numpy()) * w + col_t.long().numpy()] = value
