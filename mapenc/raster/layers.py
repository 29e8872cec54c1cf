"""The layer registry: each layer object owns its drawing, its uint8 codec and its colour.

Kinds of layer (one class each; adding a layer is one entry in ``LAYERS``):
- ``fill``: polygons, a pixel is on when its centre lies inside (drivable area, crosswalks);
- ``line``: polylines, every pixel the line touches is on (boundaries, centerlines);
- ``heading``: over each lane's area, sin or cos of the lane's direction minus the agent's
  heading, 0 outside lanes. Lanes are cut into quads between consecutive boundary samples, each
  carrying the direction of its piece of centerline. Where lanes overlap, the lane listed later in
  ``VectorMap.lanes`` wins (it is drawn last);
- ``distance``: metres from the pixel centre to the nearest centerline pixel, clipped at
  ``RasterSpec.distance_clip_m`` and divided by it (0 on a centerline, 1 far away);
- ``scene``: boxes of tracked agents from a ``Scenario`` at a time step (``agents``: the others
  now, ``ego``: the raster's own agent, ``history``: every agent over the past
  ``RasterSpec.history_steps`` frames, older frames fainter); drawn by ``Rasterizer``.

Each map layer draws itself two ways: ``draw_exact`` into a batch of agent rasters (exact mode),
and ``draw_codes`` into a north-up fine grid of uint8 codes (the fast and torch modes sample those;
``decode_table`` turns codes into output values relative to each agent's heading).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import shapely
import torch
from numpy.typing import NDArray
from scipy.ndimage import distance_transform_edt
from shapely.geometry.base import BaseGeometry

from mapenc.maps.types import FloatArray, Lane, VectorMap
from mapenc.raster.exact import LayerPairs, burn_lines, fill_polygons, paint_polygons
from mapenc.raster.grid import NorthUpGrid
from mapenc.raster.mapgeom import MapGeometry, window_corners
from mapenc.raster.values import SIGNED, UNIT, Codec, torch_dtype, write_binary


class LayerSpec(Protocol):
    """What drawing a layer reads of a ``RasterSpec`` (which checks its layer names against
    ``LAYERS``, so this module does not import it)."""

    @property
    def size_px(self) -> tuple[int, int]: ...

    @property
    def pixel_size_m(self) -> float: ...

    @property
    def distance_clip_m(self) -> float: ...


HEADING_CODES = 255  # lane direction bins of a heading code grid (code 0: no lane)
Colour = tuple[float, float, float]


@dataclass
class ExactBatch:
    """What the exact drawing of one batch of agent rasters shares between layers.

    Attributes:
        geometry: the map's geometry.
        spec: the raster spec.
        poses: (N, 3) city-frame poses.
        raster_from_city: (N, 3, 3) city metres -> pixel coordinates (``RasterSpec.raster_from_city``).
        out: (N, C, H, W) output, float or uint8, written in place.
        fills, lines: (channel, pairs) of the binary fill and line layers, queued by their
            ``draw_exact`` and drawn by ``draw_binary``, each kind in one pass.
    """

    geometry: MapGeometry
    spec: LayerSpec
    poses: NDArray[np.float64]
    raster_from_city: NDArray[np.float64]
    out: NDArray[Any]
    shared: dict[str, Any] = field(default_factory=dict)
    fills: list[tuple[int, LayerPairs]] = field(default_factory=list)
    lines: list[tuple[int, LayerPairs]] = field(default_factory=list)

    def draw_binary(self) -> None:
        """Draw the queued binary layers (each writes only its own channel): all fill layers in
        one pass, all line layers in another."""
        if self.fills:
            inside = fill_polygons(
                [pairs for _, pairs in self.fills], self.raster_from_city, self.spec.size_px
            )
            for (channel, _), layer_inside in zip(self.fills, inside, strict=True):
                write_binary(self.out[:, channel], layer_inside)
        if self.lines:
            on = 255 if self.out.dtype == np.uint8 else 1.0
            burn_lines(
                self.out,
                on,
                self.raster_from_city,
                [pairs for _, pairs in self.lines],
                [channel for channel, _ in self.lines],
            )
        self.fills.clear()
        self.lines.clear()

    @property
    def windows(self) -> NDArray[np.float64]:
        """(N, 4, 2) city-frame corners of each raster's window (``window_corners``)."""
        if "windows" not in self.shared:
            self.shared["windows"] = window_corners(self.raster_from_city, self.spec.size_px)
        return self.shared["windows"]


@dataclass(frozen=True)
class Layer:
    """One raster channel: how it is drawn, stored as uint8 and shown.

    Attributes:
        name: the channel's name.
        description: one line for ``list_layers`` and pictures.
        colour: RGB (0..1) in pictures.
        faint: opacity in pictures (layers that cover large areas are blended in faintly).
        geometry: the city-frame shapes a fill or line layer draws, as shapely geometries.
        polylines: a line layer's lines as (K, 2) city-frame point arrays (what it draws;
            ``geometry`` gives them as LineStrings).
    """

    name: str
    description: str
    colour: Colour
    faint: float = 1.0
    kind: ClassVar[str] = ""
    codec: ClassVar[Codec] = UNIT
    binary: ClassVar[bool] = False  # values are 0 or 1 only (the fast mode packs them in bits)
    background_code: ClassVar[int] = 0  # code of a grid cell far from any geometry
    geometry: Callable[[VectorMap], list[BaseGeometry]] | None = None
    polylines: Callable[[VectorMap], list[FloatArray]] | None = None

    def __post_init__(self) -> None:
        if self.polylines is not None and self.geometry is None:
            polylines = self.polylines
            object.__setattr__(self, "geometry", lambda m: _lines(polylines(m)))

    @property
    def fills(self) -> bool:
        return self.kind == "fill"

    @property
    def from_scenario(self) -> bool:
        return self.kind == "scene"

    def intensity(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """(..., H, W) decoded float values -> intensity in [0, 1] for pictures."""
        return np.clip(values, 0.0, 1.0)

    def draw_exact(self, batch: ExactBatch, channel: int) -> None:
        """Draw this layer into ``batch.out[:, channel]`` from the vectors."""
        raise NotImplementedError(f"layer {self.name} is drawn from a scenario")

    def halo_cells(self, spec: LayerSpec, cell_m: float, widen: int) -> int:
        """Cells beyond a grid's edge whose geometry changes the codes inside it."""
        return 0

    def draw_codes(
        self, geometry: MapGeometry, grid: NorthUpGrid, spec: LayerSpec, widen: int
    ) -> NDArray[np.uint8]:
        """(rows, cols) uint8 codes of this layer on a north-up grid (see ``decode_table``);
        line layers are widened by ``widen`` cells so that sampling never drops them."""
        raise NotImplementedError(f"layer {self.name} is drawn from a scenario")

    def code_values(self, codes: torch.Tensor, heading: torch.Tensor) -> torch.Tensor:
        """Float value of each code (256,) float64: (256,), or (N, 256) for headings (N,)."""
        return codes.clamp(max=1.0)

    def decode_table_tensor(self, heading: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Code -> output value (dtype, on heading's device): (256,), or (N, 256) per agent."""
        codes = torch.arange(256, dtype=torch.float64, device=heading.device)
        values = self.code_values(codes, heading.to(torch.float64))
        return self.codec.encode_tensor(values, dtype)

    def decode_table(self, heading: NDArray[np.float64], dtype: np.dtype[Any]) -> NDArray[Any]:
        """``decode_table_tensor`` for numpy headings and an output dtype."""
        table = self.decode_table_tensor(torch.from_numpy(heading), torch_dtype(dtype))
        return table.numpy()


@dataclass(frozen=True)
class FillLayer(Layer):
    kind: ClassVar[str] = "fill"
    binary: ClassVar[bool] = True

    def draw_exact(self, batch: ExactBatch, channel: int) -> None:
        """Queued: ``ExactBatch.draw_binary`` draws every fill layer of the batch at once."""
        pieces = batch.geometry.pieces(self)
        batch.fills.append((channel, LayerPairs(pieces.segments, *pieces.meeting(batch.windows))))

    def draw_codes(
        self, geometry: MapGeometry, grid: NorthUpGrid, spec: LayerSpec, widen: int
    ) -> NDArray[np.uint8]:
        pieces = geometry.pieces(self)
        idx = pieces.in_box(grid.box_city())
        inside = fill_polygons(
            [LayerPairs(pieces.segments, np.zeros_like(idx), idx)],
            grid.raster_from_city(),
            grid.shape,
        )
        return inside.reshape(grid.shape).astype(np.uint8)


def _line_cells(geometry: MapGeometry, layer: Layer, grid: NorthUpGrid) -> NDArray[np.bool_]:
    """(rows, cols) True on every grid cell a line layer's geometry touches."""
    lines = np.zeros((1, 1, *grid.shape), dtype=np.uint8)
    pieces = geometry.pieces(layer)
    idx = pieces.in_box(grid.box_city())
    raster_from_city = grid.raster_from_city()
    burn_lines(
        lines, 1, raster_from_city, [LayerPairs(pieces.segments, np.zeros_like(idx), idx)], [0]
    )
    return lines[0, 0].astype(bool)


def _dilate(mask: NDArray[np.bool_], iterations: int) -> NDArray[np.bool_]:
    """``scipy.ndimage.binary_dilation`` by the 4-neighbour cross, ``iterations`` times, as ORs
    of shifted slices (several times faster on a whole global raster)."""
    for _ in range(iterations):
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        mask = grown
    return mask


@dataclass(frozen=True)
class LineLayer(Layer):
    kind: ClassVar[str] = "line"
    binary: ClassVar[bool] = True

    def draw_exact(self, batch: ExactBatch, channel: int) -> None:
        """Queued: ``ExactBatch.draw_binary`` draws every line layer of the batch at once."""
        pieces = batch.geometry.pieces(self)
        batch.lines.append((channel, LayerPairs(pieces.segments, *pieces.meeting(batch.windows))))

    def halo_cells(self, spec: LayerSpec, cell_m: float, widen: int) -> int:
        return widen + 1

    def draw_codes(
        self, geometry: MapGeometry, grid: NorthUpGrid, spec: LayerSpec, widen: int
    ) -> NDArray[np.uint8]:
        return _dilate(_line_cells(geometry, self, grid), widen).astype(np.uint8)


@dataclass(frozen=True)
class HeadingLayer(Layer):
    """sin or cos (``component``) of the lane direction relative to the agent's heading."""

    kind: ClassVar[str] = "heading"
    codec: ClassVar[Codec] = SIGNED
    component: str = "sin"

    def fn(self, angle: Any) -> Any:
        """sin or cos of angles (numpy array or tensor)."""
        if isinstance(angle, torch.Tensor):
            return torch.sin(angle) if self.component == "sin" else torch.cos(angle)
        return np.sin(angle) if self.component == "sin" else np.cos(angle)

    def intensity(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.abs(values) * (values != 0)

    def draw_exact(self, batch: ExactBatch, channel: int) -> None:
        """Look up the relative direction of the (agent, quad) pair painted on each pixel:
        sin/cos are taken once per pair, not per pixel."""
        if "quad_codes" not in batch.shared:
            batch.shared["quad_codes"] = _paint_quad_pairs(batch)
        codes, agent_idx, quad_idx = batch.shared["quad_codes"]
        relative = batch.geometry.quads[0].heading[quad_idx] - batch.poses[agent_idx, 2]
        values = np.concatenate([[0.0], self.fn(relative)])
        np.take(self.codec.encode(values, batch.out.dtype), codes, out=batch.out[:, channel])

    def draw_codes(
        self, geometry: MapGeometry, grid: NorthUpGrid, spec: LayerSpec, widen: int
    ) -> NDArray[np.uint8]:
        """Lane direction code per cell (1 + direction in ``HEADING_CODES`` bins, 0: no lane);
        later lanes on top, as in the exact mode."""
        quads, pieces = geometry.quads
        idx = pieces.in_box(grid.box_city())
        codes = np.zeros(grid.shape, dtype=np.uint8)
        direction = np.rint(quads.heading[idx] / (2 * np.pi) * HEADING_CODES).astype(np.int64)
        values = (1 + direction % HEADING_CODES).astype(np.uint8)
        raster_from_city = grid.raster_from_city()
        paint_polygons(
            codes[None],
            values,
            LayerPairs(pieces.segments, np.zeros_like(idx), idx),
            raster_from_city,
        )
        return codes

    def code_values(self, codes: torch.Tensor, heading: torch.Tensor) -> torch.Tensor:
        lane_dir = (codes - 1) * 2 * np.pi / HEADING_CODES
        values = self.fn(lane_dir[None, :] - heading[:, None])
        return torch.where(codes[None, :] > 0, values, 0.0)


def _paint_quad_pairs(
    batch: ExactBatch,
) -> tuple[NDArray[np.int32], NDArray[np.intp], NDArray[np.intp]]:
    """(N, H, W) index + 1 of the (agent, lane quad) pair on each pixel (0: none; later lanes
    on top), and the pairs' agent and quad indices."""
    n, _, h, w = batch.out.shape
    codes = np.zeros((n, h, w), dtype=np.int32)
    pieces = batch.geometry.quads[1]
    agent_idx, quad_idx = pieces.meeting(batch.windows)
    pair_code = np.arange(1, len(quad_idx) + 1, dtype=np.int32)
    pairs = LayerPairs(pieces.segments, agent_idx, quad_idx)
    paint_polygons(codes, pair_code, pairs, batch.raster_from_city)
    return codes, agent_idx, quad_idx


@dataclass(frozen=True)
class DistanceLayer(Layer):
    """Distance to the nearest pixel of the ``to`` line layer, clipped and scaled to [0, 1]."""

    kind: ClassVar[str] = "distance"
    background_code: ClassVar[int] = 255
    to: str = "centerlines"

    def intensity(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return 1.0 - values

    def draw_exact(self, batch: ExactBatch, channel: int) -> None:
        """Each raster is padded by the clip distance, so lines just outside it count and the
        padded rasters, stacked, are too far apart to see each other's lines."""
        n = len(batch.raster_from_city)
        (h, w), s, clip = batch.spec.size_px, batch.spec.pixel_size_m, batch.spec.distance_clip_m
        pad = int(np.ceil(clip / s)) + 1
        shift = np.array([[1.0, 0.0, pad], [0.0, 1.0, pad], [0.0, 0.0, 1.0]])
        padded = shift @ batch.raster_from_city
        lines = np.zeros((n, 1, h + 2 * pad, w + 2 * pad), dtype=np.uint8)
        target = LAYERS[self.to]
        pieces = batch.geometry.pieces(target)
        agent_idx, piece_idx = pieces.meeting(window_corners(padded, lines.shape[2:]))
        burn_lines(lines, 1, padded, [LayerPairs(pieces.segments, agent_idx, piece_idx)], [0])
        if not lines.any():
            batch.out[:, channel] = self.codec.encode(np.ones((n, h, w)), batch.out.dtype)
            return
        stacked = lines.reshape(n * (h + 2 * pad), w + 2 * pad)
        dist_px = distance_transform_edt(stacked == 0).reshape(n, h + 2 * pad, w + 2 * pad)
        dist_m = dist_px[:, pad : pad + h, pad : pad + w] * s
        batch.out[:, channel] = self.codec.encode(np.minimum(dist_m, clip) / clip, batch.out.dtype)

    def halo_cells(self, spec: LayerSpec, cell_m: float, widen: int) -> int:
        return int(np.ceil(spec.distance_clip_m / cell_m)) + 1

    def draw_codes(
        self, geometry: MapGeometry, grid: NorthUpGrid, spec: LayerSpec, widen: int
    ) -> NDArray[np.uint8]:
        """255 * (distance to the nearest line cell, clipped) / clip."""
        lines = _line_cells(geometry, LAYERS[self.to], grid)
        if not lines.any():
            return np.full(grid.shape, self.background_code, dtype=np.uint8)
        dist = np.asarray(distance_transform_edt(~lines)) * grid.cell_m
        clip = spec.distance_clip_m
        return np.rint(255 * np.minimum(dist, clip) / clip).astype(np.uint8)

    def code_values(self, codes: torch.Tensor, heading: torch.Tensor) -> torch.Tensor:
        return codes / 255.0


@dataclass(frozen=True)
class SceneLayer(Layer):
    """Boxes of a scenario's agents (see the module docstring); ``component`` names which."""

    kind: ClassVar[str] = "scene"
    component: str = "agents"


def _lines(polylines: list[FloatArray]) -> list[BaseGeometry]:
    if not polylines:
        return []
    owner = np.repeat(np.arange(len(polylines)), [len(p) for p in polylines])
    return list(shapely.linestrings(np.concatenate(polylines), indices=owner))


def _boundaries(m: VectorMap, keep: Callable[[Lane, str], bool]) -> list[FloatArray]:
    """Lane boundaries whose mark passes ``keep``; a boundary shared by neighbouring lanes (in
    either direction) is kept once, the first time it comes. Boundaries offset from each lane's
    own centerline (``VectorMap.boundaries_offset``: Waymo) are not searched for shared ones
    (a line drawn twice lights the same pixels; the search would cost more than it saves)."""
    lines = [lane.left_boundary for lane in m.lanes if keep(lane, "left")]
    lines += [lane.right_boundary for lane in m.lanes if keep(lane, "right")]
    if m.boundaries_offset:
        return lines
    seen: set[bytes] = set()
    unique = []
    for line in lines:
        key = min(line.tobytes(), line[::-1].tobytes())
        if key not in seen:
            seen.add(key)
            unique.append(line)
    return unique


def _solid(lane: Lane, side: str) -> bool:
    mark = lane.left_mark if side == "left" else lane.right_mark
    return mark.is_solid


def _dashed(lane: Lane, side: str) -> bool:
    mark = lane.left_mark if side == "left" else lane.right_mark
    return mark.is_dashed


LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in [
        FillLayer(
            "drivable_area",
            "drivable area",
            (0.35, 0.35, 0.35),
            geometry=lambda m: m.drivable_parts,
        ),
        FillLayer(
            "crosswalks",
            "pedestrian crossings",
            (0.95, 0.85, 0.2),
            geometry=lambda m: list(m.crosswalks),
        ),
        LineLayer(
            "lane_boundaries",
            "lane boundaries and road edges",
            (0.95, 0.95, 0.95),
            polylines=lambda m: _boundaries(m, lambda _lane, _side: True) + list(m.road_edges),
        ),
        LineLayer(
            "lane_boundaries_solid",
            "boundaries not to be crossed (solid, double solid, curb)",
            (1.0, 1.0, 1.0),
            polylines=lambda m: _boundaries(m, _solid) + list(m.road_edges),
        ),
        LineLayer(
            "lane_boundaries_dashed",
            "boundaries that may be crossed (dashed and mixed marks)",
            (0.7, 0.7, 0.95),
            polylines=lambda m: _boundaries(m, _dashed),
        ),
        LineLayer(
            "centerlines",
            "lane centerlines",
            (0.3, 0.6, 1.0),
            polylines=lambda m: [lane.centerline for lane in m.lanes],
        ),
        HeadingLayer(
            "lane_heading_sin", "sin(lane direction - agent heading)", (0.6, 0.2, 0.6), 0.25
        ),
        HeadingLayer(
            "lane_heading_cos",
            "cos(lane direction - agent heading)",
            (0.2, 0.6, 0.3),
            0.25,
            component="cos",
        ),
        DistanceLayer(
            "distance_to_centerline",
            "distance to nearest centerline / clip",
            (0.15, 0.3, 0.45),
            0.3,
        ),
        SceneLayer("agents", "other agents' boxes now", (0.2, 0.85, 0.3)),
        SceneLayer("ego", "the agent's own box", (1.0, 0.25, 0.2), component="ego"),
        SceneLayer(
            "history",
            "all boxes over the past frames, fading",
            (0.9, 0.5, 0.3),
            component="history",
        ),
    ]
}


def map_geometry(vector_map: VectorMap, name: str) -> list[BaseGeometry]:
    """City-frame geometry a fill or line layer burns (unsplit); [] for other kinds."""
    layer = LAYERS[name]
    return layer.geometry(vector_map) if layer.geometry is not None else []


def list_layers() -> list[str]:
    """Names of every layer a RasterSpec may ask for."""
    return list(LAYERS)
