"""Torch rasterization: the map pre-drawn into overlapping device-resident tiles, then sampled.

Set-up: nothing is drawn up front. The map's north-up fine grid (cells of ``pixel_size_m /
oversample``, as in the fast mode) is cut into tiles ``stride`` cells apart and ``stride +
2 * reach`` cells wide, where ``reach`` bounds the distance (in cells) from an agent to any of its
raster's pixel centres. Tiles overlap by ``2 * reach``, so every agent's whole raster lies inside
one tile: the one holding the corner ``(agent - reach)``. A tile is drawn (with the layers' own
``draw_codes``, the fast mode's drawing) the first time an agent needs it, and kept on the device
in an atlas of at most ``TorchSettings.max_device_tiles`` tiles (least recently used out first);
tiles with no geometry are never stored (they read as the background cell). A city-scale map thus
costs memory only for the tiles its agents visit.

Per batch, on the device: agent poses -> tile ids (the only transfer to the host: the few distinct
tile ids, so that missing tiles can be drawn) -> per-agent tables -> the flat index of the atlas
cell under every output pixel centre -> one gather per byte array (binary layers share one byte, a
bit each) -> bits unpacked, codes decoded through per-agent lookup tables (heading relative to the
agent's exact heading). Nearest-neighbour sampling keeps binary layers binary. The index is built
like the fast mode's (a per-agent (PHASES**2, W) table of row offsets plus a per-row start), so a
pixel costs one table copy, one add and one gather per byte array.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from mapenc.errors import ConfigError
from mapenc.raster.grid import NorthUpGrid
from mapenc.raster.layers import LAYERS
from mapenc.raster.mapgeom import MapGeometry
from mapenc.raster.spec import RasterSpec

PHASES = 2  # sub-cell steps of the per-row offsets (position within 1 / (2 * PHASES) cell)
CPU_CHUNK = 8  # agents gathered together on the CPU: their index stays in cache
DEVICE_CHUNK_PIXELS = 2**27  # pixels gathered together on accelerators (512 MiB of int32 index)


@dataclass(frozen=True)
class TorchSettings:
    """Resolution and memory of the torch mode.

    Attributes:
        oversample: tile cells per output pixel, along each axis.
        tile_cells: distance between tile origins (cells); tiles are this plus twice the
            raster's reach wide.
        max_device_tiles: tiles kept on the device at once (each ``(tile_cells + 2 * reach)**2``
            bytes per byte array: one for all binary layers, one per heading/distance layer).
        chunk: agents gathered together (None: 8 on the CPU, 2**27 pixels' worth elsewhere).
        binary: "draw" (default): fill and line layers drawn per batch from their vectors on
            the device, pixel for pixel as in the exact mode (``mapenc.raster.device_draw``);
            "sample": sampled from the tiles like the other layers, several times faster on the
            CPU, but lines come out about a pixel thinner or thicker than exact (IoU ~0.75 with
            it, like the fast mode) and polygon edges move by up to half a cell.
        coordinates: pixel coordinates of drawn layers: "float64" (the exact mode's arithmetic:
            rasters equal exact's bit for bit), "float32" (after a float64 shift to the agent:
            half the memory traffic; a pixel centre within ~1e-5 px of an edge may flip) or
            "auto" (default): float64 on the CPU, float32 on accelerators.
    """

    oversample: int = 3
    tile_cells: int = 2048
    max_device_tiles: int = 16
    chunk: int | None = None
    binary: str = "draw"
    coordinates: str = "auto"

    def __post_init__(self) -> None:
        if min(self.oversample, self.tile_cells, self.max_device_tiles, self.chunk or 1) < 1:
            raise ConfigError(f"TorchSettings values must be >= 1, got {self}")
        if self.binary not in ("draw", "sample"):
            raise ConfigError(
                f"TorchSettings.binary must be 'draw' or 'sample', got {self.binary!r}"
            )
        if self.coordinates not in ("auto", "float32", "float64"):
            raise ConfigError(
                "TorchSettings.coordinates must be 'auto', 'float32' or 'float64', got "
                f"{self.coordinates!r}"
            )

    def coordinate_dtype(self, device: torch.device) -> torch.dtype:
        """The dtype of drawn layers' pixel coordinates on ``device``."""
        if self.coordinates == "auto":
            return torch.float64 if device.type == "cpu" else torch.float32
        return torch.float64 if self.coordinates == "float64" else torch.float32


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto": CUDA when present, else the CPU; a CUDA device without CUDA is an error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"unknown torch device {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device")
    return dev


class DeviceTiles:
    """The map's layers as device-resident tiles (see the module docstring)."""

    def __init__(
        self,
        geometry: MapGeometry,
        spec: RasterSpec,
        layers: tuple[str, ...],
        settings: TorchSettings | None,
        device: torch.device,
    ) -> None:
        self.geometry, self.spec, self.device = geometry, spec, device
        self.settings = settings or TorchSettings()
        self.layers = layers
        self.oversample = self.settings.oversample
        cell = spec.pixel_size_m / self.oversample
        self.reach = int(np.ceil(spec.radius_m / cell)) + 2
        self.stride = self.settings.tile_cells
        self.size = self.stride + 2 * self.reach
        xmin, ymin, xmax, ymax = geometry.map.bounds
        margin = 2 * self.reach
        rows = int(np.ceil((ymax - ymin) / cell)) + 2 * margin
        cols = int(np.ceil((xmax - xmin) / cell)) + 2 * margin
        self.grid = NorthUpGrid(xmin - margin * cell, ymax + margin * cell, cell, (rows, cols))
        # Agents within reach of the map have tile rows/cols 0..count-1; others see background.
        self.tile_rows = (rows - 2 * self.reach) // self.stride + 1
        self.tile_cols = (cols - 2 * self.reach) // self.stride + 1
        self.bit_of = {n: b for b, n in enumerate(n for n in layers if LAYERS[n].binary)}
        self.arrays = (["bits"] if self.bit_of else []) + [
            n for n in layers if n not in self.bit_of
        ]
        self.background = {n: LAYERS[n].background_code for n in layers if n not in self.bit_of}
        self.background["bits"] = 0
        self.halo = max(
            [LAYERS[n].halo_cells(spec, cell, self.oversample // 2) for n in layers] + [0]
        )
        self._slot_of: OrderedDict[int, int] = OrderedDict()  # resident tile -> atlas slot (LRU)
        self._empty: set[int] = set()  # tiles drawn and found to hold only background
        self._atlas: dict[str, torch.Tensor] = {}
        self._slots = 0
        self._grow(0)
        self.index_dtype = torch.int32
        if 1 + self.settings.max_device_tiles * self.size**2 >= 2**31:
            self.index_dtype = torch.int64
        x_axis, y_axis = spec.pixel_axes_agent()
        self._x_cells = torch.as_tensor(x_axis / cell, device=device)  # (W,) float64
        self._y_cells = torch.as_tensor(y_axis / cell, device=device)  # (H,) float64

    @property
    def resident_tiles(self) -> int:
        return len(self._slot_of)

    def tile_bytes(self) -> int:
        """Device bytes of one stored tile (all its byte arrays)."""
        return self.size**2 * len(self.arrays)

    def _draw_tile(self, key: int) -> dict[str, np.ndarray] | None:
        """The byte arrays (size * size,) of tile ``key``; None when it holds only background."""
        row, col = divmod(key, self.tile_cols)
        tile = self.grid.sub(row * self.stride, col * self.stride, (self.size, self.size))
        padded, h = tile.padded(self.halo), self.halo
        drawn: dict[str, np.ndarray] = {}
        bits = np.zeros((self.size, self.size), dtype=np.uint8)
        for name in self.layers:
            codes = LAYERS[name].draw_codes(self.geometry, padded, self.spec, self.oversample // 2)
            codes = codes[h : h + self.size, h : h + self.size]
            if name in self.bit_of:
                bits |= codes << np.uint8(self.bit_of[name])
            else:
                drawn[name] = codes
        if self.bit_of:
            drawn["bits"] = bits
        if all((a == self.background[n]).all() for n, a in drawn.items()):
            return None
        return {n: np.ascontiguousarray(a).reshape(-1) for n, a in drawn.items()}

    def _store(self, arrays: dict[str, np.ndarray], keep: set[int]) -> int:
        """Copy one tile into a free atlas slot (evicting the least recently used tile not in
        ``keep``, or growing the atlas); returns the slot."""
        used = set(self._slot_of.values())
        free = [s for s in range(self._slots) if s not in used]
        if not free and self._slots >= self.settings.max_device_tiles:
            victim = next(k for k in self._slot_of if k not in keep)
            free = [self._slot_of.pop(victim)]
        if not free:
            self._grow(min(max(1, 2 * self._slots), self.settings.max_device_tiles))
            free = [s for s in range(self._slots) if s not in used]
        slot = free[0]
        start = 1 + slot * self.size**2
        for name, array in arrays.items():
            self._atlas[name][start : start + self.size**2].copy_(torch.from_numpy(array))
        return slot

    def _grow(self, slots: int) -> None:
        """Enlarge every atlas to ``slots`` tiles after the background cell at index 0."""
        for name in self.arrays:
            grown = torch.empty(1 + slots * self.size**2, dtype=torch.uint8, device=self.device)
            old = self._atlas.get(name)
            if old is not None:
                grown[: len(old)].copy_(old)
            else:
                grown[0] = self.background[name]
            self._atlas[name] = grown
        self._slots = slots

    def _slots_for(self, keys: list[int]) -> list[int]:
        """Atlas slot of each tile key (-1: background), drawing and storing missing tiles."""
        keep = {k for k in keys if k >= 0}
        slots = []
        for key in keys:
            if key < 0 or key in self._empty:
                slots.append(-1)
            elif key in self._slot_of:
                self._slot_of.move_to_end(key)
                slots.append(self._slot_of[key])
            else:
                arrays = self._draw_tile(key)
                if arrays is None:
                    self._empty.add(key)
                    slots.append(-1)
                    continue
                self._slot_of[key] = self._store(arrays, keep)
                slots.append(self._slot_of[key])
        return slots

    def _tile_keys(self, gu: torch.Tensor, gv: torch.Tensor) -> torch.Tensor:
        """(N,) tile key of agents at grid cell positions (gu, gv) (float64), -1 off the map."""
        col = torch.floor((gu - self.reach) / self.stride)
        row = torch.floor((gv - self.reach) / self.stride)
        on = (col >= 0) & (col < self.tile_cols) & (row >= 0) & (row < self.tile_rows)
        key = row.clamp(0, self.tile_rows - 1) * self.tile_cols + col.clamp(0, self.tile_cols - 1)
        return torch.where(on, key, -1.0).to(torch.int64)

    def sample(self, poses: torch.Tensor, out: torch.Tensor) -> None:
        """Fill the channels of ``self.layers`` in ``out`` (N, C, H, W) for poses (N, 3) float64,
        both on the device."""
        cell = self.grid.cell_m
        gu = (poses[:, 0] - self.grid.x0) / cell
        gv = (self.grid.y1 - poses[:, 1]) / cell
        if not self.arrays:
            return
        keys = self._tile_keys(gu, gv)
        unique, inverse = torch.unique(keys, return_inverse=True)
        unique_keys = unique.tolist()  # the one transfer to the host: distinct tile ids
        block = self.settings.max_device_tiles
        if sum(k >= 0 for k in unique_keys) <= block:
            self._sample_tiles(poses, gu, gv, keys, unique_keys, inverse, out)
            return
        for start in range(0, len(unique_keys), block):  # more tiles than fit: a block at a time
            part = torch.nonzero((inverse >= start) & (inverse < start + block)).view(-1)
            sub = out[part]
            self._sample_tiles(
                poses[part],
                gu[part],
                gv[part],
                keys[part],
                unique_keys[start : start + block],
                inverse[part] - start,
                sub,
            )
            out[part] = sub

    def _sample_tiles(
        self,
        poses: torch.Tensor,
        gu: torch.Tensor,
        gv: torch.Tensor,
        keys: torch.Tensor,
        unique_keys: list[int],
        inverse: torch.Tensor,
        out: torch.Tensor,
    ) -> None:
        """``sample`` for agents whose tiles (``unique_keys``) all fit on the device."""
        slot_of_key = torch.tensor(self._slots_for(unique_keys), device=self.device)
        slot = slot_of_key[inverse]
        on = slot >= 0
        col = keys.clamp(min=0) % self.tile_cols
        row = keys.clamp(min=0) // self.tile_cols
        # Positions within the agent's tile (cells); agents off the map get any in-range value.
        local_u = torch.where(on, gu - col * self.stride, float(self.reach))
        local_v = torch.where(on, gv - row * self.stride, float(self.reach))
        combined, row_sel, row_start = self._index_tables(poses[:, 2], local_u, local_v, slot)
        n = len(poses)
        chunk = self._chunk()
        _, _, h, w = out.shape
        for a0 in range(0, n, chunk):
            a1 = min(a0 + chunk, n)
            index = combined.index_select(0, row_sel[a0:a1].reshape(-1))
            index += row_start[a0:a1].reshape(-1, 1)
            flat = index.view(-1)
            for name in self.arrays:
                sampled = self._atlas[name].index_select(0, flat).view(a1 - a0, h, w)
                if name == "bits":
                    self._unpack(sampled, out[a0:a1])
                else:
                    self._decode(name, sampled, poses[a0:a1, 2], out[a0:a1])

    def _index_tables(
        self,
        heading: torch.Tensor,
        local_u: torch.Tensor,
        local_v: torch.Tensor,
        slot: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tables whose row copy plus start gives each pixel's flat atlas index.

        Returns combined (N * PHASES**2 + 1, W): per agent and sub-cell phase, the in-tile offset
        of every column (last row: zeros, for agents off the map); row_sel (N, H): the row of
        ``combined`` for each output row; row_start (N, H): the flat index its offsets add to.
        Column of pixel (i, j) = floor(U_i + c x_j), row = floor(V_i - s x_j), with
        U_i = u - s y_i, V_i = v - c y_i (cells; x_j, y_i the pixel centres in the agent frame).
        """
        n = len(heading)
        c, s = torch.cos(heading)[:, None], torch.sin(heading)[:, None]
        phase = ((torch.arange(PHASES, device=self.device) + 0.5) / PHASES)[None, :, None]
        table_u = torch.floor(phase + (c * self._x_cells)[:, None, :]).to(torch.int64)  # (N,P,W)
        table_v = torch.floor(phase - (s * self._x_cells)[:, None, :]).to(torch.int64)
        combined = (table_v[:, :, None, :] * self.size + table_u[:, None, :, :]).reshape(
            n * PHASES**2, -1
        )
        combined = torch.cat([combined, torch.zeros_like(combined[:1])]).to(self.index_dtype)
        start_u = local_u[:, None] - s * self._y_cells  # (N, H)
        start_v = local_v[:, None] - c * self._y_cells
        base_u, base_v = torch.floor(start_u), torch.floor(start_v)
        phase_u = ((start_u - base_u) * PHASES).to(torch.int64).clamp(max=PHASES - 1)
        phase_v = ((start_v - base_v) * PHASES).to(torch.int64).clamp(max=PHASES - 1)
        on = (slot >= 0)[:, None]
        agent_rows = torch.arange(n, device=self.device)[:, None] * PHASES**2
        row_sel = torch.where(on, agent_rows + phase_v * PHASES + phase_u, n * PHASES**2)
        first = 1 + slot.clamp(min=0)[:, None] * self.size**2
        start = first + base_v.to(torch.int64) * self.size + base_u.to(torch.int64)
        row_start = torch.where(on, start, 0).to(self.index_dtype)
        return combined, row_sel, row_start

    def _chunk(self) -> int:
        if self.settings.chunk is not None:
            return self.settings.chunk
        if self.device.type == "cpu":
            return CPU_CHUNK
        return max(1, DEVICE_CHUNK_PIXELS // (self.spec.height * self.spec.width))

    def _unpack(self, bits: torch.Tensor, out: torch.Tensor) -> None:
        """Write each binary layer's bit of ``bits`` (k, H, W) into its channel of ``out``."""
        for name, bit in self.bit_of.items():
            target = out[:, self.spec.layers.index(name)]
            if out.dtype == torch.uint8:
                target.copy_(bits).bitwise_right_shift_(bit).bitwise_and_(1).mul_(255)
            else:
                target.copy_(bits.bitwise_right_shift(bit).bitwise_and_(1))

    def _decode(
        self, name: str, codes: torch.Tensor, heading: torch.Tensor, out: torch.Tensor
    ) -> None:
        """Write a code layer (k, H, W) into its channel of ``out`` through its lookup table."""
        table = LAYERS[name].decode_table_tensor(heading, out.dtype)  # (256,) or (k, 256)
        index = codes.to(torch.int32)
        if table.ndim == 2:
            index += (torch.arange(len(codes), device=self.device, dtype=torch.int32) * 256)[
                :, None, None
            ]
        values = table.reshape(-1).index_select(0, index.view(-1))
        out[:, self.spec.layers.index(name)].copy_(values.view(codes.shape))
