"""Rasterizer: a VectorMap (and optionally a Scenario) + city-frame poses -> (N, C, H, W) rasters.

Two modes draw the map layers:
- ``exact`` (default): every agent's raster drawn from the vectors (``mapenc.raster.exact``);
- ``fast``: map layers drawn once into a fine global raster, then sampled per agent by
  nearest neighbour (``mapenc.raster.fast``); agrees with ``exact`` to IoU >= 0.95 on filled
  layers.
Scene layers (``agents``, ``ego``, ``history``) are always drawn exactly from the scenario.

Values (``mapenc.raster.values``): float output holds binary layers in {0, 1}, heading layers in
[-1, 1], distance and history in [0, 1]; ``dtype=np.uint8`` holds the same content as 0/255
(binary), ``round(128 + 127 * value)`` (heading) and ``round(255 * value)`` (distance, history).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray
from scipy.ndimage import distance_transform_edt
from shapely.strtree import STRtree

from mapenc.errors import ConfigError, PoseError
from mapenc.geometry import check_poses
from mapenc.maps.types import Scenario, VectorMap
from mapenc.raster.exact import (
    Segments,
    burn_lines,
    fill_polygons,
    paint_polygons,
    query_pairs,
    windows_city,
)
from mapenc.raster.fast import FastSettings, GlobalLayers
from mapenc.raster.layers import LAYERS, MapGeometry
from mapenc.raster.rgb import to_rgb
from mapenc.raster.scene import scene_boxes
from mapenc.raster.spec import FloatArray, RasterSpec
from mapenc.raster.values import encode, write_binary

Mode = Literal["exact", "fast"]
MODES: tuple[str, ...] = ("exact", "fast")
OUTPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint8))


class Rasterizer:
    """Agent-centred rasters of one map.

    Args:
        vector_map: the map (city frame). With a scenario and no map, the scenario's map is used.
        spec: size, resolution, agent placement and layers.
        mode: "exact" or "fast" (see the module docstring).
        scenario: the tracks the scene layers (agents, ego, history) are drawn from.
        fast_settings: resolution of the fast mode's global raster (``FastSettings``).
    """

    def __init__(
        self,
        vector_map: VectorMap | None = None,
        spec: RasterSpec | None = None,
        mode: Mode = "exact",
        scenario: Scenario | None = None,
        fast_settings: FastSettings | None = None,
    ) -> None:
        if vector_map is None:
            if scenario is None:
                raise ConfigError("Rasterizer needs a map or a scenario")
            vector_map = scenario.map
        if mode not in MODES:
            raise ConfigError(f"Rasterizer mode must be one of {MODES}, got {mode!r}")
        self.map = vector_map
        self.spec = spec or RasterSpec()
        self.mode = mode
        self.scenario = scenario
        self.geometry = MapGeometry(vector_map)
        scene = [n for n in self.spec.layers if LAYERS[n].kind == "scene"]
        if scene and scenario is None:
            raise ConfigError(f"layers {scene} need a scenario: Rasterizer(..., scenario=...)")
        self._segment_cache: dict[str, Segments] = {}
        self._fast: GlobalLayers | None = None
        if mode == "fast":
            map_layers = tuple(n for n in self.spec.layers if LAYERS[n].kind != "scene")
            self._fast = GlobalLayers(self.geometry, self.spec, map_layers, fast_settings)

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
        """
        p = check_poses(poses)
        out_dtype = np.dtype(dtype)
        if out_dtype not in OUTPUT_DTYPES:
            raise ConfigError(f"rasterize dtype must be float32, float64 or uint8, got {out_dtype}")
        n, (h, w), nc = len(p), self.spec.size_px, self.spec.num_channels
        if out is None:
            out = np.zeros((n, nc, h, w), dtype=out_dtype)
        elif out.shape != (n, nc, h, w) or out.dtype != out_dtype or not out.flags.c_contiguous:
            raise ConfigError(
                f"out must be a C-contiguous {(n, nc, h, w)} {out_dtype} array, got {out.shape} {out.dtype}"
            )
        else:
            out.fill(0)
        if n == 0:
            return out
        mats = self.spec.raster_from_city(p)
        if self._fast is not None:
            self._fast.sample(p, out)
        else:
            self._draw_map_exact(p, mats, out)
        self._draw_scene(mats, out, t, track_ids)
        return out

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

    def _draw_map_exact(self, poses: FloatArray, mats: FloatArray, out: NDArray[Any]) -> None:
        h, w = out.shape[2:]
        windows = windows_city(mats, (h, w))
        on = 255 if out.dtype == np.uint8 else 1.0
        heading_done = False
        for c, name in enumerate(self.spec.layers):
            layer = LAYERS[name]
            if layer.kind in ("fill", "line"):
                _, tree = self.geometry.layer(name)
                agent_idx, geom_idx = query_pairs(tree, windows)
                segments = self._segments(name)
                if layer.kind == "fill":
                    inside = fill_polygons(segments, agent_idx, geom_idx, mats, (h, w))
                    write_binary(out[:, c], inside)
                else:
                    burn_lines(out, c, on, segments, agent_idx, geom_idx, mats)
            elif layer.kind == "heading" and not heading_done:
                self._draw_heading_exact(poses, mats, windows, out)
                heading_done = True
            elif layer.kind == "distance":
                out[:, c] = encode(self._distance_exact(mats), "distance", out.dtype)

    def _segments(self, name: str) -> Segments:
        """The straight segments of a fill or line layer (or of the "lane_quads"), built once."""
        if name not in self._segment_cache:
            geoms = (
                self.geometry.quads[0].quads
                if name == "lane_quads"
                else self.geometry.layer(name)[0]
            )
            self._segment_cache[name] = Segments.of(geoms)
        return self._segment_cache[name]

    def _draw_heading_exact(
        self, poses: FloatArray, mats: FloatArray, windows: Any, out: NDArray[Any]
    ) -> None:
        """Paint (agent, quad) pair index + 1 per pixel (later lanes on top), then look up the
        pair's relative direction: sin/cos are taken once per pair, not per pixel."""
        n, _, h, w = out.shape
        quads, tree = self.geometry.quads
        codes = np.zeros((n, h, w), dtype=np.int32)
        agent_idx, quad_idx = query_pairs(tree, windows)
        pair_code = np.arange(1, len(quad_idx) + 1, dtype=np.int32)
        paint_polygons(codes, pair_code, self._segments("lane_quads"), agent_idx, quad_idx, mats)
        relative = quads.heading[quad_idx] - poses[agent_idx, 2]
        for component, fn in (("sin", np.sin), ("cos", np.cos)):
            name = f"lane_heading_{component}"
            if name in self.spec.layers:
                lookup = encode(np.concatenate([[0.0], fn(relative)]), "heading", out.dtype)
                np.take(lookup, codes, out=out[:, self.spec.layers.index(name)])

    def _distance_exact(self, mats: FloatArray) -> NDArray[np.float64]:
        """(N, H, W) distance to the nearest centerline pixel / clip, in [0, 1].

        Each block is padded by the clip distance, so centerlines just outside the raster count
        and blocks are too far apart to see each other's lines within the clip distance.
        """
        n = len(mats)
        (h, w), s = self.spec.size_px, self.spec.pixel_size_m
        pad = int(np.ceil(self.spec.distance_clip_m / s)) + 1
        shift = np.array([[1.0, 0.0, pad], [0.0, 1.0, pad], [0.0, 0.0, 1.0]])
        padded = shift @ mats
        lines = np.zeros((n, 1, h + 2 * pad, w + 2 * pad), dtype=np.uint8)
        _, tree = self.geometry.layer("centerlines")
        agent_idx, geom_idx = query_pairs(tree, windows_city(padded, lines.shape[2:]))
        burn_lines(lines, 0, 1, self._segments("centerlines"), agent_idx, geom_idx, padded)
        if not lines.any():
            return np.ones((n, h, w))
        # One 2-D transform over the stacked rasters: their padding keeps them apart.
        stacked = lines.reshape(n * (h + 2 * pad), w + 2 * pad)
        dist_px = distance_transform_edt(stacked == 0).reshape(n, h + 2 * pad, w + 2 * pad)
        dist_m = dist_px[:, pad : pad + h, pad : pad + w] * s
        return np.minimum(dist_m, self.spec.distance_clip_m) / self.spec.distance_clip_m

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
        self, mats: FloatArray, out: NDArray[Any], t: int | None, track_ids: list[str] | None
    ) -> None:
        """The scene layers (agents, ego, history) from the scenario at step ``t``."""
        names = [(c, n) for c, n in enumerate(self.spec.layers) if LAYERS[n].kind == "scene"]
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
        windows = windows_city(mats, (h, w))
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
            paint_polygons(painted, boxes.value[box_idx], segments, agent_idx, box_idx, mats)
            out[:, c] = encode(painted, "history", out.dtype)
