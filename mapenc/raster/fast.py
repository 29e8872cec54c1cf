"""Fast rasterization: draw the map once into a fine north-up global raster, then sample it.

Set-up (once per map): every map layer is drawn with the exact machinery into a global raster
of pixel size ``pixel_size_m / oversample`` covering the map plus a margin of the raster's
radius, stored as uint8 codes (binary: 0/1; heading: 0 outside lanes, else 1 + the lane
direction in 255 bins; distance: 255 * clipped distance / clip). Line layers are widened by
``oversample // 2`` global pixels (binary dilation) so that sampling never drops a line; they
come out up to about one output pixel thicker than in ``exact``.

Binary layers (fill, line) share one global byte, one bit each, so a single gather samples all
of them; heading and distance layers have one byte array each.

Per agent: the flat int32 index of the global pixel under each output pixel centre is built from
a small per-agent table (``GlobalLayers.pixel_index``: exact heading, position to 1/16 of a global
pixel); then, per chunk of agents, one gather per byte array (torch ``index_select``, which takes
int32 indices as they are) samples the raster (nearest neighbour, so binary layers stay binary),
and the bits are unpacked in place into the output while still cached; heading layers are decoded
with a per-agent 256-entry lookup table (relative to the agent's exact heading).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from mapenc.errors import ConfigError
from mapenc.maps.types import VectorMap
from mapenc.raster.grid import NorthUpGrid
from mapenc.raster.layers import LAYERS
from mapenc.raster.mapgeom import MapGeometry
from mapenc.raster.spec import RasterSpec
from mapenc.raster.values import write_binary

CHUNK = 8  # agents sampled and unpacked together in ``GlobalLayers.sample``
PHASES = 2  # sub-cell steps of the row offsets in ``GlobalLayers.pixel_index``


@dataclass(frozen=True)
class FastSettings:
    """Resolution trade-offs of the fast mode.

    Attributes:
        oversample: global raster pixels per output pixel, along each axis (lowered, with a
            warning, for maps whose global raster would not fit ``max_global_pixels``).
        max_global_pixels: refuse maps whose global raster would have more pixels (memory guard:
            set-up needs about 8 bytes per pixel, sampling 1 byte per pixel and array).
    """

    oversample: int = 3
    max_global_pixels: int = 100_000_000


class GlobalLayers:
    """The global raster of a map's layers (``grid``: north-up, ``cell_m`` cells)."""

    def __init__(
        self,
        geometry: MapGeometry,
        spec: RasterSpec,
        layers: tuple[str, ...],
        settings: FastSettings | None = None,
    ) -> None:
        self.spec = spec
        self.layers = layers
        self.settings = settings or FastSettings()
        if self.settings.oversample < 1:
            raise ConfigError(f"FastSettings out of range: {self.settings}")
        self.oversample = self._fitting_oversample(geometry.map)
        self.grid = self._grid(geometry.map.bounds, spec.pixel_size_m / self.oversample)
        widen = self.oversample // 2
        binary = [name for name in layers if LAYERS[name].binary]
        self.bit_of = {name: bit for bit, name in enumerate(binary)}
        self.bits = np.zeros(self.grid.num_cells, dtype=np.uint8)
        for name, bit in self.bit_of.items():
            drawn = LAYERS[name].draw_codes(geometry, self.grid, spec, widen)
            self.bits |= drawn.reshape(-1) << np.uint8(bit)
        self.codes = {
            name: LAYERS[name].draw_codes(geometry, self.grid, spec, widen).reshape(-1)
            for name in layers
            if name not in self.bit_of
        }
        x_agent, y_agent = spec.pixel_axes_agent()
        self._x_cells = x_agent / self.grid.cell_m  # (W,) agent-frame x of the columns, in cells
        self._y_cells = y_agent / self.grid.cell_m  # (H,) agent-frame y of the rows, in cells

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    def _grid(self, bounds: tuple[float, float, float, float], cell_m: float) -> NorthUpGrid:
        """The global grid covering ``bounds`` plus a margin of the raster's radius."""
        xmin, ymin, xmax, ymax = bounds
        margin = int(np.ceil(self.spec.radius_m / cell_m)) + 2
        shape = (
            int(np.ceil((ymax - ymin) / cell_m)) + 2 * margin,
            int(np.ceil((xmax - xmin) / cell_m)) + 2 * margin,
        )
        return NorthUpGrid(xmin - margin * cell_m, ymax + margin * cell_m, cell_m, shape)

    def _fitting_oversample(self, vector_map: VectorMap) -> int:
        """``settings.oversample``, lowered (with a warning) until the global raster fits
        ``settings.max_global_pixels``; ConfigError when even 1 does not fit."""
        for oversample in range(self.settings.oversample, 0, -1):
            grid = self._grid(vector_map.bounds, self.spec.pixel_size_m / oversample)
            if grid.num_cells <= self.settings.max_global_pixels:
                if oversample < self.settings.oversample:
                    warnings.warn(
                        f"{vector_map.source or 'map'}: fast mode oversample lowered to {oversample} "
                        "to fit FastSettings.max_global_pixels",
                        stacklevel=4,
                    )
                return oversample
        rows, cols = grid.shape
        raise ConfigError(
            f"{vector_map.source or 'map'}: fast mode needs a {rows} x {cols} global raster, over "
            "FastSettings.max_global_pixels; use mode='exact' or mode='torch' (tiled), or raise "
            "the limit"
        )

    def pixel_index(self, poses: NDArray[np.float64]) -> Iterator[NDArray[np.signedinteger[Any]]]:
        """For each chunk of ``CHUNK`` poses, (size, H, W) flat index of the global pixel under
        each output pixel centre (int32 unless the global raster needs int64; the buffer is
        reused from one chunk to the next).

        The global column (and row) of pixel (i, j) is ``floor(row_part[i] + col_part[j])``;
        splitting ``row_part`` into an integer and a fraction rounded to one of ``PHASES`` steps
        makes the index a lookup in a (PHASES**2, W) table plus a per-row offset (heading exact,
        position within ``1 / (2 * PHASES)`` global pixel). Agents near the raster's edge are
        clamped into its empty margin.
        """
        n = len(poses)
        hg, wg = self.shape
        x0, y1, cell = self.grid.x0, self.grid.y1, self.grid.cell_m
        c, s = np.cos(poses[:, 2])[:, None], np.sin(poses[:, 2])[:, None]
        phase = ((np.arange(PHASES) + 0.5) / PHASES)[None, :, None]
        table_u = np.floor(phase + (c * self._x_cells)[:, None, :]).astype(np.int64)  # (N, P, W)
        table_v = np.floor(phase - (s * self._x_cells)[:, None, :]).astype(np.int64)
        # Agents far outside the raster are moved to just outside it (all in its empty margin),
        # so that no integer overflows (a pose at 1e20 m).
        reach = self.spec.radius_m / cell + 2
        u_agent = np.clip((poses[:, 0:1] - x0) / cell, -reach, wg + reach)
        v_agent = np.clip((y1 - poses[:, 1:2]) / cell, -reach, hg + reach)
        row_u = u_agent - s * self._y_cells  # (N, H) global column
        row_v = v_agent - c * self._y_cells  # (N, H) global row
        base_u, base_v = np.floor(row_u), np.floor(row_v)
        phase_u = ((row_u - base_u) * PHASES).astype(np.intp)
        phase_v = ((row_v - base_v) * PHASES).astype(np.intp)
        base_u, base_v = base_u.astype(np.int64), base_v.astype(np.int64)
        low_u = base_u.min(axis=1) + table_u.min(axis=(1, 2))
        high_u = base_u.max(axis=1) + table_u.max(axis=(1, 2))
        low_v = base_v.min(axis=1) + table_v.min(axis=(1, 2))
        high_v = base_v.max(axis=1) + table_v.max(axis=(1, 2))
        inside = (low_u >= 0) & (high_u < wg) & (low_v >= 0) & (high_v < hg)
        dtype = np.int32 if hg * wg < 2**31 else np.int64
        combined = (
            (table_v[:, :, None, :] * wg + table_u[:, None, :, :])
            .reshape(n, -1, self.spec.width)
            .astype(dtype)
        )
        row_table = phase_v * PHASES + phase_u
        row_start = (base_v * wg + base_u).astype(dtype)[:, :, None]
        index = np.empty((CHUNK, *self.spec.size_px), dtype=dtype)
        for start in range(0, n, CHUNK):
            for k, a in enumerate(range(start, min(start + CHUNK, n))):
                if inside[a]:
                    np.add(combined[a][row_table[a]], row_start[a], out=index[k])
                else:
                    u = np.clip(table_u[a][phase_u[a]] + base_u[a, :, None], 0, wg - 1)
                    v = np.clip(table_v[a][phase_v[a]] + base_v[a, :, None], 0, hg - 1)
                    np.add(v * wg, u, out=index[k])
            yield index[: min(CHUNK, n - start)]

    def sample(self, poses: NDArray[np.float64], out: NDArray[Any]) -> None:
        """Fill ``out`` (N, C, H, W) at the channels of ``self.layers`` for city poses (N, 3).

        Agents go in chunks of ``CHUNK``: one gather per byte array and chunk, and the sampled
        bits are unpacked while still cached.
        """
        n, _, h, w = out.shape
        bits = np.empty((CHUNK, h, w), dtype=np.uint8)
        coded = {name: np.empty((n, h, w), dtype=np.uint8) for name in self.codes}
        start = 0
        for index in self.pixel_index(poses):
            chunk = slice(start, start + len(index))
            flat = torch.from_numpy(index.reshape(-1))
            _gather(self.bits, flat, bits[: len(index)])
            for name, buf in coded.items():
                _gather(self.codes[name], flat, buf[chunk])
            for name, bit in self.bit_of.items():
                _unpack(bits[: len(index)], bit, out[chunk, self.spec.layers.index(name)])
            start = chunk.stop
        for name, buf in coded.items():
            target = out[:, self.spec.layers.index(name)]
            lut = LAYERS[name].decode_table(poses[:, 2], out.dtype)
            if lut.ndim == 1:
                np.take(lut, buf, out=target)
            else:
                per_agent = buf.astype(np.intp) + 256 * np.arange(n)[:, None, None]
                np.take(lut.reshape(-1), per_agent, out=target)


def _gather(source: NDArray[np.uint8], index: torch.Tensor, out: NDArray[np.uint8]) -> None:
    """``out[...] = source[index]`` for a flat index tensor and a C-contiguous ``out``.

    torch's ``index_select`` takes int32 indices (numpy's ``take`` would copy them to int64) and
    is as fast as ``take`` per element.
    """
    torch.index_select(torch.from_numpy(source), 0, index, out=torch.from_numpy(out).view(-1))


def _unpack(bits: NDArray[np.uint8], bit: int, target: NDArray[Any]) -> None:
    """Write bit ``bit`` of ``bits`` into a binary layer (uint8 0/255 or float 0/1)."""
    if target.dtype != np.uint8:
        write_binary(target, np.bitwise_and(bits, np.uint8(1 << bit)) != 0)
        return
    # In place in the output: (bits >> bit) & 1, then 1 -> 255 in uint8 arithmetic.
    np.right_shift(bits, np.uint8(bit), out=target)
    np.bitwise_and(target, np.uint8(1), out=target)
    np.negative(target, out=target)
