"""A torch Dataset of trajectory samples whose rasters are cached as uint8 in a memory-mapped file.

The rasters of every sample are drawn once into a verified cache file (``mapenc.data.raster_cache``:
keyed by the content of the scenarios, the samples, the spec, the task and the Rasterizer mode),
so a later run (or epoch, or worker) with the same data reads the file instead of rasterizing.
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

from mapenc.data.raster_cache import cached_rasters, raster_cache_key
from mapenc.data.trajectory import TrajSamples, TrajTask
from mapenc.errors import DataError
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


class TrajectoryDataset(Dataset[dict[str, torch.Tensor]]):
    """Samples with their rasters; items are dicts of float32 tensors (agent frame, metres).

    Item keys: ``past`` (P, 2), ``past_heading`` (P,), ``velocity`` (2,), ``future`` (F, 2),
    ``raster`` (C, H, W) decoded to the Rasterizer's float scale, ``index`` () int64.

    Args:
        samples: the samples (from ``samples_from_scenarios``).
        scenarios: the scenarios ``samples.scenario_index`` points into (their maps are drawn).
        spec: raster size and layers.
        task: the task the samples were cut for (part of the cache key).
        cache_dir: folder of the memmap cache (created when missing).
        mode: Rasterizer mode for building the cache ("fast" or "exact").
        progress: show a progress bar while rasterizing.
    """

    def __init__(
        self,
        samples: TrajSamples,
        scenarios: Sequence[Scenario],
        spec: RasterSpec,
        task: TrajTask,
        cache_dir: str | os.PathLike[str],
        mode: Mode = "fast",
        progress: bool = True,
    ) -> None:
        if len(samples) == 0:
            raise DataError("TrajectoryDataset needs at least one sample")
        self.samples = samples
        self.spec = spec
        self.shape = (len(samples), spec.num_channels, *spec.size_px)
        self.cache_path = cached_rasters(
            Path(cache_dir), samples, scenarios, spec, task, mode, progress
        )
        self._scale, self._offset = uint8_decoding(spec)
        self._rasters: NDArray[np.uint8] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict[str, Any]:
        # Workers reopen the memmap themselves instead of receiving a pickled copy of it.
        state = self.__dict__.copy()
        state["_rasters"] = None
        return state

    @property
    def rasters(self) -> NDArray[np.uint8]:
        """(N, C, H, W) uint8, memory-mapped read-only (opened on first use in each process)."""
        if self._rasters is None:
            self._rasters = np.memmap(self.cache_path, dtype=np.uint8, mode="r", shape=self.shape)
        return self._rasters

    def raster(self, index: int) -> torch.Tensor:
        """(C, H, W) float32 raster of sample ``index``."""
        raw = torch.from_numpy(np.array(self.rasters[index]))
        return raw.float() * self._scale + self._offset

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = self.samples
        return {
            "past": torch.from_numpy(s.past[index]),
            "past_heading": torch.from_numpy(s.past_heading[index]),
            "velocity": torch.from_numpy(s.velocity[index]),
            "future": torch.from_numpy(s.future[index]),
            "raster": self.raster(index),
            "index": torch.tensor(index, dtype=torch.int64),
        }
