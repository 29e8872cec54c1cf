"""Rasterizer: a VectorMap (and optionally a Scenario) + city-frame poses -> (N, C, H, W) rasters.

Three modes draw the map layers (``RASTER_MODES``):
- ``exact`` (default): every agent's raster drawn from the vectors (``mapenc.raster.exact``);
- ``fast``: map layers drawn once into a fine global raster, then sampled per agent by
  nearest neighbour (``mapenc.raster.fast``); agrees with ``exact`` to IoU >= 0.95 on filled
  layers;
- ``torch``: the fast mode's drawing, cut into tiles kept on a torch device (CUDA when present)
  and sampled there (``mapenc.raster.tiles``); ``rasterize_tensor`` returns rasters on the
  device without a host round trip, and city-scale maps keep only the tiles in use.
Scene layers (``agents``, ``ego``, ``history``) are always drawn exactly from the scenario.

Values (``mapenc.raster.values``): float output holds binary layers in {0, 1}, heading layers in
[-1, 1], distance and history in [0, 1]; ``dtype=np.uint8`` holds the same content as 0/255
(binary), ``round(128 + 127 * value)`` (heading) and ``round(255 * value)`` (distance, history).

Memory: batches are drawn in chunks of at most ``CHUNK_POSES`` poses and ``CHUNK_PIXELS``
pixels, and a request whose
output and working memory would not fit ``max_raster_bytes()`` is refused with a ``RasterSizeError`` giving the
figure, before anything is allocated.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, DTypeLike, NDArray
from shapely.strtree import STRtree

from mapenc.errors import ConfigError, PoseError, RasterSizeError
from mapenc.geometry import check_poses
from mapenc.maps.types import Scenario, VectorMap
from mapenc.raster.exact import Segments, paint_polygons, query_pairs, windows_city
from mapenc.raster.fast import FastSettings, GlobalLayers
from mapenc.raster.layers import LAYERS, ExactBatch
from mapenc.raster.mapgeom import MapGeometry
from mapenc.raster.rgb import to_rgb
from mapenc.raster.scene import scene_boxes
from mapenc.raster.spec import FloatArray, RasterSpec
from mapenc.raster.tiles import DeviceTiles, TorchSettings, resolve_device
from mapenc.raster.values import numpy_dtype, torch_dtype

Mode = Literal["exact", "fast", "torch"]
RASTER_MODES: tuple[str, ...] = ("exact", "fast", "torch")
MODES = RASTER_MODES  # the older name
OUTPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint8))
# Poses drawn together (bounds the working memory, e.g. the distance layer's padded rasters).
CHUNK_PIXELS = 2**23
CHUNK_POSES = 1024
# Working memory per pixel of a chunk (the exact mode's heading codes, winding numbers and the
# distance layer's padded transform, with room to spare).
WORKING_BYTES_PER_PIXEL = 32


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


class Rasterizer:
    """Agent-centred rasters of one map.

    Args:
        vector_map: the map (city frame). With a scenario and no map, the scenario's map is used.
        spec: size, resolution, agent placement and layers.
        mode: "exact", "fast" or "torch" (see the module docstring).
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
        self._fast: GlobalLayers | None = None
        self._tiles: DeviceTiles | None = None
        if mode == "fast" and map_layers:
            self._fast = GlobalLayers(self.geometry, self.spec, map_layers, fast_settings)
        if mode == "torch" and map_layers:
            self._tiles = DeviceTiles(
                self.geometry, self.spec, map_layers, torch_settings, self.device
            )

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
        chunk = max(1, min(CHUNK_POSES, CHUNK_PIXELS // (h * w)))
        for start in range(0, n, chunk):
            part = slice(start, min(start + chunk, n))
            ids = track_ids[part] if track_ids is not None else None
            self._draw(p[part], out[part], t, ids)
        return out

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
        on the device: nothing but the few distinct tile ids of the batch goes to the host.
        """
        if dtype not in (torch.float32, torch.float64, torch.uint8):
            raise ConfigError(
                f"rasterize_tensor dtype must be float32, float64 or uint8, got {dtype}"
            )
        if self._tiles is None and self.mode != "torch":
            host = poses.detach().cpu().numpy() if isinstance(poses, torch.Tensor) else poses
            drawn = self.rasterize(host, numpy_dtype(dtype), t=t, track_ids=track_ids)
            return torch.from_numpy(drawn)
        p = self._device_poses(poses)
        n, (h, w), nc = len(p), self.spec.size_px, self.spec.num_channels
        check_raster_bytes(n, self.spec, numpy_dtype(dtype))
        out = torch.zeros((n, nc, h, w), dtype=dtype, device=self.device)
        if n and self._tiles is not None:
            self._tiles.sample(p, out)
        scene = [c for c, name in enumerate(self.spec.layers) if LAYERS[name].from_scenario]
        if n and scene:
            host = np.zeros((n, nc, h, w), dtype=numpy_dtype(dtype))
            self._draw_scene(self.spec.raster_from_city(p.cpu().numpy()), host, t, track_ids)
            out[:, scene] = torch.from_numpy(host[:, scene]).to(self.device)
        return out

    def _device_poses(self, poses: torch.Tensor | ArrayLike) -> torch.Tensor:
        """(N, 3) float64 poses on the device; PoseError when not (N, 3) or not finite."""
        if not isinstance(poses, torch.Tensor):
            return torch.from_numpy(check_poses(poses)).to(self.device)
        p = poses.to(device=self.device, dtype=torch.float64)
        if p.ndim == 1 and p.shape[0] == 3:
            p = p[None]
        if p.ndim != 2 or p.shape[1] != 3:
            raise PoseError(f"poses must have shape (N, 3) [x, y, heading], got {tuple(p.shape)}")
        if not bool(torch.isfinite(p).all()):
            raise PoseError("poses has NaN or inf values")
        return p

    def _draw(
        self,
        poses: FloatArray,
        out: NDArray[Any],
        t: int | None,
        track_ids: list[str] | None,
    ) -> None:
        """Draw one chunk of poses into ``out`` (cleared)."""
        if len(poses) == 0:
            return
        raster_from_city = self.spec.raster_from_city(poses)
        if self._fast is not None:
            self._fast.sample(poses, out)
        elif self._tiles is not None:
            tensor = self.rasterize_tensor(
                torch.from_numpy(poses), torch_dtype(out.dtype), t=t, track_ids=track_ids
            )
            out[...] = tensor.cpu().numpy()
            return
        else:
            batch = ExactBatch(self.geometry, self.spec, poses, raster_from_city, out)
            for c, name in enumerate(self.spec.layers):
                if not LAYERS[name].from_scenario:
                    LAYERS[name].draw_exact(batch, c)
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
        windows = windows_city(raster_from_city, (h, w))
        for c, name in names:
            steps = self.spec.history_steps if name == "history" else 1
            boxes = scene_boxes(self.scenario, t, steps)
            if name == "ego":
                if track_ids is None:
                    raise ConfigError("the ego layer needs track_ids, one per pose")
                agent_idx = np.arange(n)
                box_idx = np.array([self._box_of(boxes.track, k, t) for k in own], dtype=np.intp)
            else:
                agent_idx, box_idx = query_pairs(STRtree(boxes.geoms), windows)
                if name == "agents" and track_ids is not None:
                    others = boxes.track[box_idx] != own[agent_idx]
                    agent_idx, box_idx = agent_idx[others], box_idx[others]
            painted = np.zeros((n, h, w))
            segments = Segments.of(boxes.geoms)
            paint_polygons(
                painted, boxes.value[box_idx], segments, agent_idx, box_idx, raster_from_city
            )
            out[:, c] = LAYERS[name].codec.encode(painted, out.dtype)
