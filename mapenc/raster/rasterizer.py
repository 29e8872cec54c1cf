"""Rasterizer: a VectorMap (and optionally a Scenario) + city-frame poses -> (N, C, H, W) rasters.

Four modes draw the map layers (``RASTER_MODES``):
- ``exact`` (default): every agent's raster drawn from the vectors (``mapenc.raster.exact``);
- ``fast``: map layers drawn once into a fine global raster, then sampled per agent by
  nearest neighbour (``mapenc.raster.fast``); agrees with ``exact`` to IoU >= 0.95 on filled
  layers;
- ``torch``: on a torch device (CUDA when present): fill and line layers drawn from the vectors
  with the exact mode's rules, all of them in one pass (``mapenc.raster.device_draw``; equal to
  exact on the CPU), the other map layers sampled from the fast mode's drawing cut into tiles
  (``mapenc.raster.tiles``); ``rasterize_tensor`` returns rasters on the device without a host
  round trip, and city-scale maps keep only the tiles in use;
- ``auto``: per call, ``exact`` for fewer than ``AUTO_FAST_POSES`` poses, else ``fast`` (its
  set-up, drawing the whole map once, is then paid back).
Scene layers (``agents``, ``ego``, ``history``) are always drawn exactly from the scenario.

Values (``mapenc.raster.values``): float output holds binary layers in {0, 1}, heading layers in
[-1, 1], distance and history in [0, 1]; ``dtype=np.uint8`` holds the same content as 0/255
(binary), ``round(128 + 127 * value)`` (heading) and ``round(255 * value)`` (distance, history).

Memory: batches are drawn in chunks of at most ``CHUNK_POSES`` poses and ``CHUNK_PIXELS``
pixels (the torch mode: chunks sized from the device's free memory on CUDA), and a request whose
output and working memory would not fit ``max_raster_bytes()`` (on CUDA: the device's free
memory) is refused with a ``RasterSizeError`` giving the figure, before anything is allocated or
copied.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, DTypeLike, NDArray

from mapenc.errors import ConfigError, PoseError, RasterSizeError
from mapenc.geometry import check_poses
from mapenc.maps.types import Scenario, VectorMap
from mapenc.raster.device_draw import MapTable, VectorDrawer
from mapenc.raster.exact import LayerPairs, paint_polygons
from mapenc.raster.fast import FastSettings, GlobalLayers
from mapenc.raster.layers import LAYERS, ExactBatch
from mapenc.raster.mapgeom import MapGeometry, Pieces, window_corners
from mapenc.raster.rgb import to_rgb
from mapenc.raster.scene import scene_boxes
from mapenc.raster.segments import Segments
from mapenc.raster.spec import FloatArray, RasterSpec
from mapenc.raster.tiles import DeviceTiles, TorchSettings, resolve_device
from mapenc.raster.values import empty_tensor, numpy_dtype, torch_dtype

Mode = Literal["exact", "fast", "torch", "auto"]
RASTER_MODES: tuple[str, ...] = ("exact", "fast", "torch", "auto")
MODES = RASTER_MODES  # the older name
# Poses per call from which the auto mode draws with fast: where the fast mode's set-up (drawing
# the map once) is paid back by its cheaper poses. Measured by benchmarks/raster_modes.py --parts
# crossover (one thread, 4 x 224 x 224 uint8, batch 256), since the exact mode's per-map set-up
# is numpy pieces: AV2 forecasting map 145 poses, INTERACTION DR_USA_Intersection_EP0 38, NGSIM
# Lankershim 51, Peachtree 84, US101 74; this is the median. An AV2 or Waymo scene's few dozen
# agents stay exact; INTERACTION and NGSIM recordings (thousands of poses on one map) go fast.
AUTO_FAST_POSES = 74
OUTPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint8))
# Poses drawn together (bounds the working memory, e.g. the distance layer's padded rasters).
CHUNK_PIXELS = 2**23
CHUNK_POSES = 1024
# Working memory per pixel of a chunk (the exact mode's heading codes, winding numbers and the
# distance layer's padded transform, with room to spare).
WORKING_BYTES_PER_PIXEL = 32
# The torch mode's working memory per pixel of a chunk on a device: winding and line buffers
# (4 B), the fills' masks, and the per-crossing and per-touched-pixel tables, with room to spare.
DEVICE_WORKING_BYTES_PER_PIXEL = 64
# Poses drawn together by the torch mode on the CPU: a chunk's tables and winding buffer stay
# within the last-level cache (at 224 x 224, 64 poses took 0.55-0.75x the time of 256 on the AV2
# maps), and the fixed cost of a chunk is spread over enough poses.
TORCH_CPU_CHUNK = 64


def max_raster_bytes() -> int:
    """Most memory a rasterize call may use: half of the machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # no sysconf: a generous fixed figure
        return 16 * 2**30


def check_raster_bytes(n: int, spec: RasterSpec, dtype: DTypeLike) -> None:
    """Refuse (RasterSizeError giving the figure) a call whose (n, C, H, W) output plus the
    working memory of one chunk (``WORKING_BYTES_PER_PIXEL``) would not fit ``max_raster_bytes``."""
    h, w = spec.size_px
    output = n * spec.num_channels * h * w * np.dtype(dtype).itemsize
    chunk = min(n, max(1, min(CHUNK_POSES, CHUNK_PIXELS // (h * w))))
    needed = output + chunk * h * w * WORKING_BYTES_PER_PIXEL
    limit = max_raster_bytes()
    if needed > limit:
        raise RasterSizeError(
            f"{n} rasters of {spec.num_channels} x {h} x {w} {np.dtype(dtype)} need about "
            f"{needed / 2**30:.1f} GiB ({output / 2**30:.1f} GiB output), over the "
            f"{limit / 2**30:.1f} GiB allowed (half the memory): fewer poses per call, or a "
            "smaller size_px"
        )


def device_chunk(spec: RasterSpec, device: torch.device, n: int, dtype: torch.dtype) -> int:
    """Poses the torch mode draws together on ``device``; RasterSizeError when (n, C, H, W)
    rasters of ``dtype`` and one chunk's working memory do not fit (CUDA: the device's free
    memory, as ``torch.cuda.mem_get_info`` reports it; elsewhere ``check_raster_bytes``)."""
    (h, w), nc = spec.size_px, spec.num_channels
    # Flat pixel indices of a chunk's buffers stay int32.
    chunk = max(1, min(n, (2**31 - 1) // (nc * (h + 1) * w)))
    if device.type != "cuda":
        check_raster_bytes(n, spec, numpy_dtype(dtype))
        return min(chunk, TORCH_CPU_CHUNK) if device.type == "cpu" else chunk
    free, _ = torch.cuda.mem_get_info(device)
    output = n * nc * h * w * dtype.itemsize
    per_pose = h * w * DEVICE_WORKING_BYTES_PER_PIXEL
    if output + min(n, 1) * per_pose > free:
        raise RasterSizeError(
            f"{n} rasters of {nc} x {h} x {w} {dtype} need about "
            f"{(output + per_pose) / 2**30:.2f} GiB on {device} (output "
            f"{output / 2**30:.2f} GiB), over the {free / 2**30:.2f} GiB free there: fewer "
            "poses per call, or a smaller size_px"
        )
    return max(1, min(chunk, (free - output) // per_pose))


class Rasterizer:
    """Agent-centred rasters of one map.

    Args:
        vector_map: the map (city frame). With a scenario and no map, the scenario's map is used.
        spec: size, resolution, agent placement and layers.
        mode: "exact", "fast", "torch" or "auto" (see the module docstring).
        scenario: the tracks the scene layers (agents, ego, history) are drawn from.
        fast_settings: resolution of the fast mode's global raster (``FastSettings``).
        device: the torch mode's device ("auto"/None: CUDA when present, else the CPU).
        torch_settings: resolution, tiles and chunks of the torch mode (``TorchSettings``).
    """

    def __init__(
        self,
        vector_map: VectorMap | None = None,
        spec: RasterSpec | None = None,
        mode: Mode = "exact",
        scenario: Scenario | None = None,
        fast_settings: FastSettings | None = None,
        device: str | torch.device | None = None,
        torch_settings: TorchSettings | None = None,
    ) -> None:
        if vector_map is None:
            if scenario is None:
                raise ConfigError("Rasterizer needs a map or a scenario")
            vector_map = scenario.map
        if mode not in RASTER_MODES:
            raise ConfigError(f"Rasterizer mode must be one of {RASTER_MODES}, got {mode!r}")
        self.map = vector_map
        self.spec = spec or RasterSpec()
        self.mode = mode
        self.scenario = scenario
        self.geometry = MapGeometry(vector_map)
        self.device = resolve_device(device) if mode == "torch" else torch.device("cpu")
        scene = [n for n in self.spec.layers if LAYERS[n].from_scenario]
        if scene and scenario is None:
            raise ConfigError(f"layers {scene} need a scenario: Rasterizer(..., scenario=...)")
        map_layers = tuple(n for n in self.spec.layers if not LAYERS[n].from_scenario)
        self._map_layers = map_layers
        self._fast_settings = fast_settings
        self._fast: GlobalLayers | None = None
        self._tiles: DeviceTiles | None = None
        self._vectors: VectorDrawer | None = None
        self._table: MapTable | None = None
        if mode == "fast" and map_layers:
            self._fast = GlobalLayers(self.geometry, self.spec, map_layers, fast_settings)
        if mode == "torch":
            settings = torch_settings or TorchSettings()
            drawn = tuple(n for n in map_layers if LAYERS[n].binary and settings.binary == "draw")
            sampled = tuple(n for n in map_layers if n not in drawn)
            if drawn:
                coordinates = settings.coordinate_dtype(self.device)
                self._vectors = VectorDrawer(self.spec, drawn, self.device, coordinates)
                self._table = self._vectors.table(self.geometry)
            if sampled:
                self._tiles = DeviceTiles(self.geometry, self.spec, sampled, settings, self.device)

    @property
    def layers(self) -> tuple[str, ...]:
        return self.spec.layers

    @property
    def num_channels(self) -> int:
        return self.spec.num_channels

    def to_rgb(self, raster: NDArray[Any]) -> NDArray[np.uint8]:
        """(C, H, W) or (N, C, H, W) raster of this rasterizer -> uint8 RGB picture(s)."""
        return to_rgb(raster, self.spec.layers)

    def raster_from_city(self, poses: ArrayLike) -> FloatArray:
        """(N, 3, 3) city metres -> pixel coordinates (u, v); see ``RasterSpec.raster_from_city``."""
        return self.spec.raster_from_city(poses)

    def rasterize(
        self,
        poses: ArrayLike,
        dtype: DTypeLike = np.float32,
        *,
        t: int | None = None,
        track_ids: list[str] | None = None,
        out: NDArray[Any] | None = None,
    ) -> NDArray[Any]:
        """Rasters around each pose.

        Args:
            poses: (N, 3) city-frame ``[x, y, heading]`` (metres, rad), or one (3,) pose.
            dtype: np.float32 (default), np.float64 or np.uint8 (see the module docstring).
            t: time step of the scene layers (needed when the spec has any).
            track_ids: (N,) the track each pose belongs to: its own box is the ``ego`` layer and is
                left out of ``agents``. Needed for ``ego``.
            out: optional C-contiguous (N, C, H, W) array of ``dtype`` to write into (it is
                cleared first); reusing one buffer across calls saves the page faults of fresh
                memory.
        Returns: (N, C, H, W) array, channels in ``spec.layers`` order (``out`` when given).
        Raises RasterSizeError, before allocating, when the output would not fit in memory.
        """
        p = check_poses(poses)
        out_dtype = np.dtype(dtype)
        if out_dtype not in OUTPUT_DTYPES:
            raise ConfigError(f"rasterize dtype must be float32, float64 or uint8, got {out_dtype}")
        n, (h, w), nc = len(p), self.spec.size_px, self.spec.num_channels
        if out is None:
            check_raster_bytes(n, self.spec, out_dtype)
            out = np.zeros((n, nc, h, w), dtype=out_dtype)
        elif out.shape != (n, nc, h, w) or out.dtype != out_dtype or not out.flags.c_contiguous:
            raise ConfigError(
                f"out must be a C-contiguous {(n, nc, h, w)} {out_dtype} array, got {out.shape} {out.dtype}"
            )
        else:
            out.fill(0)
        if self.mode == "torch":
            self._rasterize_on_device(p, out, t, track_ids)
            return out
        fast = self._fast if self.mode == "fast" else None
        if self.mode == "auto" and n >= AUTO_FAST_POSES and self._map_layers:
            fast = self._auto_fast()
        chunk = max(1, min(CHUNK_POSES, CHUNK_PIXELS // (h * w)))
        for start in range(0, n, chunk):
            part = slice(start, min(start + chunk, n))
            ids = track_ids[part] if track_ids is not None else None
            self._draw(p[part], out[part], t, ids, fast)
        return out

    def _auto_fast(self) -> GlobalLayers:
        """The auto mode's fast drawing of the map layers, built on first use."""
        if self._fast is None:
            self._fast = GlobalLayers(
                self.geometry, self.spec, self._map_layers, self._fast_settings
            )
        return self._fast

    def _rasterize_on_device(
        self, poses: FloatArray, out: NDArray[Any], t: int | None, track_ids: list[str] | None
    ) -> None:
        """The torch mode's ``rasterize``: drawn into one tensor on the device (``out``'s own
        memory on the CPU), copied to ``out`` once."""
        dtype = torch_dtype(out.dtype)
        chunk = device_chunk(self.spec, self.device, len(poses), dtype)
        if self.device.type == "cpu":  # ``out`` comes zeroed
            cpu_out = torch.from_numpy(out)
            self._draw_tensor(torch.from_numpy(poses), cpu_out, chunk, t, track_ids, zeroed=True)
            return
        drawn = torch.empty(out.shape, dtype=dtype, device=self.device)
        self._draw_tensor(torch.from_numpy(poses).to(self.device), drawn, chunk, t, track_ids)
        out[...] = drawn.cpu().numpy()

    def rasterize_tensor(
        self,
        poses: torch.Tensor | ArrayLike,
        dtype: torch.dtype = torch.float32,
        *,
        t: int | None = None,
        track_ids: list[str] | None = None,
    ) -> torch.Tensor:
        """Rasters around each pose as a tensor on this rasterizer's device (``self.device``).

        Args:
            poses: (N, 3) city-frame ``[x, y, heading]`` (tensor on any device, or array-like);
                taken as float64.
            dtype: torch.float32 (default), torch.float64 or torch.uint8.
            t, track_ids: as in ``rasterize`` (scene layers are drawn on the host and copied).
        Returns: (N, C, H, W) tensor on ``self.device``. In the torch mode the map layers are drawn
        on the device: fill and line layers wait for the device three times per chunk (sizes of
        their expansions), sampled layers once per call (the distinct tile ids).
        Raises RasterSizeError before copying anything when the rasters would not fit the
        device's free memory (CUDA) or the host's (``max_raster_bytes``).
        """
        if dtype not in (torch.float32, torch.float64, torch.uint8):
            raise ConfigError(
                f"rasterize_tensor dtype must be float32, float64 or uint8, got {dtype}"
            )
        if self.mode != "torch":
            host = poses.detach().cpu().numpy() if isinstance(poses, torch.Tensor) else poses
            drawn = self.rasterize(host, numpy_dtype(dtype), t=t, track_ids=track_ids)
            return torch.from_numpy(drawn)
        if not isinstance(poses, torch.Tensor):
            poses = torch.from_numpy(check_poses(poses))
        if poses.ndim == 1 and poses.shape[0] == 3:
            poses = poses[None]
        if poses.ndim != 2 or poses.shape[1] != 3:
            raise PoseError(
                f"poses must have shape (N, 3) [x, y, heading], got {tuple(poses.shape)}"
            )
        n, (h, w), nc = len(poses), self.spec.size_px, self.spec.num_channels
        chunk = device_chunk(self.spec, self.device, n, dtype)
        p = poses.to(device=self.device, dtype=torch.float64)
        out = empty_tensor((n, nc, h, w), dtype, self.device)
        self._draw_tensor(p, out, chunk, t, track_ids)
        return out

    def _draw_tensor(
        self,
        poses: torch.Tensor,
        out: torch.Tensor,
        chunk: int,
        t: int | None,
        track_ids: list[str] | None,
        zeroed: bool = False,
    ) -> None:
        """The torch mode: every channel of ``out`` (N, C, H, W) on the device for poses (N, 3)
        float64 there (``zeroed``: ``out`` comes zeroed); PoseError when a pose is not finite."""
        n, _, h, w = out.shape
        if n == 0:
            return
        finite = poses.abs().amax() < torch.inf  # NaN propagates through amax: False
        if self._vectors is not None and self._table is not None:
            for start in range(0, n, chunk):
                part = slice(start, start + chunk)
                check = finite if start == 0 else None
                drawn = self._vectors.draw(
                    self._table, poses[part], out[part], finite=check, zeroed=zeroed
                )
                if not drawn:
                    raise PoseError("poses has NaN or inf values")
        elif not bool(finite):
            raise PoseError("poses has NaN or inf values")
        if self._tiles is not None:
            self._tiles.sample(poses, out)
        scene = [c for c, name in enumerate(self.spec.layers) if LAYERS[name].from_scenario]
        if scene:
            host = np.zeros((n, len(self.spec.layers), h, w), dtype=numpy_dtype(out.dtype))
            self._draw_scene(self.spec.raster_from_city(poses.cpu().numpy()), host, t, track_ids)
            out[:, scene] = torch.from_numpy(host[:, scene]).to(self.device)

    def _draw(
        self,
        poses: FloatArray,
        out: NDArray[Any],
        t: int | None,
        track_ids: list[str] | None,
        fast: GlobalLayers | None,
    ) -> None:
        """Draw one chunk of poses into ``out`` (cleared): map layers with ``fast`` when given,
        else exactly."""
        if len(poses) == 0:
            return
        raster_from_city = self.spec.raster_from_city(poses)
        if fast is not None:
            fast.sample(poses, out)
        else:
            batch = ExactBatch(self.geometry, self.spec, poses, raster_from_city, out)
            for c, name in enumerate(self.spec.layers):
                if not LAYERS[name].from_scenario:
                    LAYERS[name].draw_exact(batch, c)
            batch.draw_binary()
        self._draw_scene(raster_from_city, out, t, track_ids)

    def rasterize_tracks(
        self, track_ids: list[str], t: int, dtype: DTypeLike = np.float32
    ) -> tuple[FloatArray, NDArray[Any]]:
        """Rasters of the scenario's tracks ``track_ids`` at step ``t``: returns (poses (N, 3), rasters)."""
        if self.scenario is None:
            raise ConfigError("rasterize_tracks needs Rasterizer(..., scenario=...)")
        steps = self.scenario.num_steps
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= t < steps:
            raise ConfigError(
                f"rasterize_tracks: t={t!r} is not a step of the scenario (0..{steps - 1})"
            )
        poses = np.array(
            [[*self.scenario.track(i).xy[t], self.scenario.track(i).heading[t]] for i in track_ids],
            dtype=np.float64,
        ).reshape(-1, 3)
        return poses, self.rasterize(poses, dtype, t=t, track_ids=track_ids)

    def _box_of(self, box_track: NDArray[np.intp], track: int, t: int) -> int:
        """Index of track ``track``'s box among the boxes of step ``t``; PoseError if it has none."""
        found = np.flatnonzero(box_track == track)
        if len(found) == 0:
            assert self.scenario is not None
            name = self.scenario.tracks[track].id
            raise PoseError(
                f"{self.scenario.source or 'scenario'}: track {name} not observed at step {t}"
            )
        return int(found[0])

    def _draw_scene(
        self,
        raster_from_city: FloatArray,
        out: NDArray[Any],
        t: int | None,
        track_ids: list[str] | None,
    ) -> None:
        """The scene layers (agents, ego, history) from the scenario at step ``t``."""
        names = [(c, n) for c, n in enumerate(self.spec.layers) if LAYERS[n].from_scenario]
        if not names:
            return
        assert self.scenario is not None
        if t is None:
            raise ConfigError(f"layers {[n for _, n in names]} need the time step t")
        n, _, h, w = out.shape
        if track_ids is not None and len(track_ids) != n:
            raise ConfigError(f"{len(track_ids)} track_ids for {n} poses")
        index = {tr.id: k for k, tr in enumerate(self.scenario.tracks)}
        own = np.array([index[self.scenario.track(i).id] for i in track_ids or []], dtype=np.intp)
        windows = window_corners(raster_from_city, (h, w))
        for c, name in names:
            steps = self.spec.history_steps if name == "history" else 1
            boxes = scene_boxes(self.scenario, t, steps)
            segments = Segments.of(boxes.geoms)
            if name == "ego":
                if track_ids is None:
                    raise ConfigError("the ego layer needs track_ids, one per pose")
                agent_idx = np.arange(n)
                box_idx = np.array([self._box_of(boxes.track, k, t) for k in own], dtype=np.intp)
            else:
                agent_idx, box_idx = Pieces.of(segments).meeting(windows)
                if name == "agents" and track_ids is not None:
                    others = boxes.track[box_idx] != own[agent_idx]
                    agent_idx, box_idx = agent_idx[others], box_idx[others]
            painted = np.zeros((n, h, w))
            paint_polygons(
                painted,
                boxes.value[box_idx],
                LayerPairs(segments, agent_idx, box_idx),
                raster_from_city,
            )
            out[:, c] = LAYERS[name].codec.encode(painted, out.dtype)
