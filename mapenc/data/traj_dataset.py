"""A torch Dataset of trajectory samples whose rasters are cached as uint8 in a memory-mapped file.

The rasters of every sample are drawn once into a verified cache file (``mapenc.data.raster_cache``:
keyed by the content of the scenarios, the samples, the spec, the task and the Rasterizer mode),
so a later run (or epoch, or worker) with the same data reads the file instead of rasterizing.
Without a cache folder the rasters are drawn into memory instead (a streamed scenario's samples,
used once).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from mapenc.data.device_rasters import SceneRasterizers
from mapenc.data.raster_cache import _rasterize_into as rasterize_into
from mapenc.data.raster_cache import cached_rasters, raster_cache_key
from mapenc.data.trajectory import TrajSamples, TrajTask
from mapenc.errors import ConfigError, DataError
from mapenc.maps.polylines import AgentPolylines, PolylineSpec, map_polylines, polylines_around
from mapenc.maps.types import Scenario
from mapenc.raster import LAYERS, RasterSpec
from mapenc.raster.rasterizer import Mode

__all__ = ["TrajectoryDataset", "raster_cache_key", "uint8_decoding"]


def uint8_decoding(spec: RasterSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, 1, 1) scale and offset with ``float = uint8 * scale + offset`` for each layer.

    Inverts each layer's uint8 codec (``Layer.codec``).
    """
    codecs = [LAYERS[name].codec for name in spec.layers]
    scale = torch.tensor([1.0 / c.scale for c in codecs])
    offset = torch.tensor([-c.offset / c.scale for c in codecs])
    return scale.view(-1, 1, 1), offset.view(-1, 1, 1)


def agent_polylines(
    samples: TrajSamples, scenarios: Sequence[Scenario], spec: PolylineSpec
) -> AgentPolylines:
    """The map polylines of every sample, in its agent frame (``mapenc.maps.polylines``)."""
    n, p, k = len(samples), spec.max_polylines, spec.points
    out = AgentPolylines(
        points=np.zeros((n, p, k, 2), dtype=np.float32),
        mask=np.zeros((n, p, k), dtype=bool),
        types=np.zeros((n, p), dtype=np.int64),
    )
    for index in np.unique(samples.scenario_index):
        rows = np.flatnonzero(samples.scenario_index == index)
        pieces = map_polylines(scenarios[int(index)].map, spec)
        seen = polylines_around(pieces, samples.pose[rows], spec)
        out.points[rows], out.mask[rows], out.types[rows] = seen.points, seen.mask, seen.types
    return out


class TrajectoryDataset(Dataset[dict[str, torch.Tensor]]):
    """Samples with their rasters; items are dicts of float32 tensors (agent frame, metres).

    Item keys: ``past`` (P, 2), ``past_heading`` (P,), ``velocity`` (2,), ``future`` (F, 2),
    ``raster`` (C, H, W) decoded to the Rasterizer's float scale, ``index`` () int64; with
    ``polylines`` also ``polyline_points`` (M, K, 2) float32, ``polyline_mask`` (M, K) bool and
    ``polyline_types`` (M,) int64 (``mapenc.maps.polylines.AgentPolylines``).
    With ``mode="torch"`` there is no cache and no ``raster``: items carry the agent's city
    ``pose`` (3,) float64 and its ``scenario`` () int64 instead, and the model draws the rasters
    on its own device (``device_rasters``, a ``SceneRasterizers``).

    Args:
        samples: the samples (from ``samples_from_scenarios``).
        scenarios: the scenarios ``samples.scenario_index`` points into (their maps are drawn).
        spec: raster size and layers.
        task: the task the samples were cut for (part of the cache key).
        cache_dir: folder of the memmap cache (created when missing); None: the rasters are
            drawn into memory, no file is written.
        mode: Rasterizer mode: "exact" or "fast" build the cache, "torch" draws per batch.
        progress: show a progress bar while rasterizing.
        polylines: also give each sample its map polylines, cut and windowed by this spec.
    """

    def __init__(
        self,
        samples: TrajSamples,
        scenarios: Sequence[Scenario],
        spec: RasterSpec,
        task: TrajTask,
        cache_dir: str | os.PathLike[str] | None,
        mode: Mode = "fast",
        progress: bool = True,
        polylines: PolylineSpec | None = None,
    ) -> None:
        if len(samples) == 0:
            raise DataError("TrajectoryDataset needs at least one sample")
        self.samples = samples
        self.spec = spec
        self.shape = (len(samples), spec.num_channels, *spec.size_px)
        self.mode = mode
        self.device_rasters: SceneRasterizers | None = None
        self.cache_path: Path | None = None
        self._rasters: NDArray[np.uint8] | None = None
        if mode == "torch":
            if any(LAYERS[name].from_scenario for name in spec.layers):
                raise ConfigError(
                    "raster mode 'torch' draws map layers only; drop the scene layers"
                )
            self.device_rasters = SceneRasterizers(scenarios, spec)
        elif cache_dir is None:
            self._rasters = np.empty(self.shape, dtype=np.uint8)
            rasterize_into(self._rasters, samples, scenarios, spec, mode, progress)
        else:
            self.cache_path = cached_rasters(
                Path(cache_dir), samples, scenarios, spec, task, mode, progress
            )
        self._scale, self._offset = uint8_decoding(spec)
        self.polylines = agent_polylines(samples, scenarios, polylines) if polylines else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict[str, Any]:
        # Workers reopen the memmap themselves instead of receiving a pickled copy of it.
        state = self.__dict__.copy()
        if self.cache_path is not None:
            state["_rasters"] = None
        return state

    @property
    def rasters(self) -> NDArray[np.uint8]:
        """(N, C, H, W) uint8: memory-mapped read-only (opened on first use in each process), or
        in memory without a cache folder."""
        if self._rasters is None:
            if self.cache_path is None:
                raise ConfigError("raster mode 'torch' keeps no rasters; use uint8_raster(index)")
            self._rasters = np.memmap(self.cache_path, dtype=np.uint8, mode="r", shape=self.shape)
        return self._rasters

    def uint8_raster(self, index: int) -> NDArray[np.uint8]:
        """(C, H, W) uint8 raster of sample ``index`` (from the cache, or drawn on the CPU)."""
        if self.device_rasters is None:
            return np.asarray(self.rasters[index])
        pose = torch.from_numpy(self.samples.pose[index : index + 1])
        scenario = torch.from_numpy(self.samples.scenario_index[index : index + 1]).long()
        drawn = self.device_rasters(pose, scenario)[0]
        return self._encode(drawn)

    def _encode(self, raster: torch.Tensor) -> NDArray[np.uint8]:
        """Float (C, H, W) -> the uint8 codes (inverse of ``uint8_decoding``)."""
        return torch.round((raster - self._offset) / self._scale).to(torch.uint8).numpy()

    def raster(self, index: int) -> torch.Tensor:
        """(C, H, W) float32 raster of sample ``index``."""
        raw = torch.from_numpy(np.array(self.uint8_raster(index)))
        return raw.float() * self._scale + self._offset

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = self.samples
        item = {
            "past": torch.from_numpy(s.past[index]),
            "past_heading": torch.from_numpy(s.past_heading[index]),
            "velocity": torch.from_numpy(s.velocity[index]),
            "future": torch.from_numpy(s.future[index]),
            "index": torch.tensor(index, dtype=torch.int64),
        }
        if self.device_rasters is None:
            item["raster"] = self.raster(index)
        else:
            item["pose"] = torch.from_numpy(s.pose[index])
            item["scenario"] = torch.tensor(int(s.scenario_index[index]), dtype=torch.int64)
        if self.polylines is not None:
            item["polyline_points"] = torch.from_numpy(self.polylines.points[index])
            item["polyline_mask"] = torch.from_numpy(self.polylines.mask[index])
            item["polyline_types"] = torch.from_numpy(self.polylines.types[index])
        return item
