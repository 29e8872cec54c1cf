"""A torch Dataset of trajectory samples whose rasters are cached as uint8 in a memory-mapped file.

The rasters of every sample are drawn once (one ``Rasterizer.rasterize`` call per scenario, or per
scenario and time step when the spec has scene layers) into ``<cache_dir>/<key>.u8``, a raw
``(N, C, H, W)`` uint8 array, with ``<key>.json`` beside it. ``key`` hashes the data sources, the
raster spec, the task, the Rasterizer mode and the sample positions, so a later run (or epoch, or
worker) with the same data reads the file instead of rasterizing again. Files are written to a temporary name and
renamed, so an interrupted build leaves no half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset
from tqdm import tqdm

from mapenc.data.trajectory import TrajSamples, TrajTask
from mapenc.errors import DataError
from mapenc.maps.types import Scenario
from mapenc.raster import LAYERS, Rasterizer, RasterSpec
from mapenc.raster.rasterizer import Mode

CACHE_VERSION = 1


def raster_cache_key(
    samples: TrajSamples,
    scenarios: Sequence[Scenario],
    spec: RasterSpec,
    task: TrajTask,
    mode: Mode = "fast",
) -> str:
    """SHA-256 (hex, 24 chars) of the sources, spec, task, Rasterizer mode and sample poses.

    The mode is part of the key: "fast" and "exact" rasters differ slightly at edges, and a model
    must be evaluated on rasters drawn the way its training rasters were.
    """
    sources = []
    for sc in scenarios:
        path = Path(sc.source) if sc.source else None
        stat = path.stat() if path is not None and path.is_file() else None
        sources.append([sc.source, stat.st_size if stat else 0, stat.st_mtime_ns if stat else 0])
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, mode, sources, asdict(spec), asdict(task)]).encode())
    h.update(np.ascontiguousarray(samples.pose).tobytes())
    h.update(np.ascontiguousarray(samples.scenario_index).tobytes())
    return h.hexdigest()[:24]


def uint8_decoding(spec: RasterSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, 1, 1) scale and offset with ``float = uint8 * scale + offset`` for each layer.

    Inverts each layer's uint8 codec (``Layer.codec``).
    """
    codecs = [LAYERS[name].codec for name in spec.layers]
    scale = torch.tensor([1.0 / c.scale for c in codecs])
    offset = torch.tensor([-c.offset / c.scale for c in codecs])
    return scale.view(-1, 1, 1), offset.view(-1, 1, 1)


def _has_scene_layers(spec: RasterSpec) -> bool:
    return any(LAYERS[name].from_scenario for name in spec.layers)


def build_raster_cache(
    path: Path,
    samples: TrajSamples,
    scenarios: Sequence[Scenario],
    spec: RasterSpec,
    mode: Mode = "fast",
    progress: bool = True,
) -> None:
    """Rasterize every sample into the raw uint8 file ``path`` (N, C, H, W), atomically."""
    shape = (len(samples), spec.num_channels, *spec.size_px)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    cache = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
    scene = _has_scene_layers(spec)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (s, t) in enumerate(zip(samples.scenario_index, samples.time_step, strict=True)):
        groups.setdefault((int(s), int(t) if scene else 0), []).append(i)
    rasterizers: dict[int, Rasterizer] = {}
    for (s, t), rows in tqdm(groups.items(), desc="rasterize", disable=not progress, leave=False):
        if s not in rasterizers:
            rasterizers.clear()  # one scenario's geometry in memory at a time
            sc = scenarios[s]
            rasterizers[s] = Rasterizer(sc.map, spec, mode=mode, scenario=sc)
        idx = np.asarray(rows)
        kwargs: dict[str, Any] = {}
        if scene:
            kwargs = {"t": t, "track_ids": [samples.track_ids[i] for i in rows]}
        cache[idx] = rasterizers[s].rasterize(samples.pose[idx], dtype=np.uint8, **kwargs)
    cache.flush()
    del cache
    os.replace(tmp, path)


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
        folder = Path(cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        key = raster_cache_key(samples, scenarios, spec, task, mode)
        self.cache_path = folder / f"rasters-{key}.u8"
        meta_path = self.cache_path.with_suffix(".json")
        if not (self.cache_path.is_file() and meta_path.is_file()):
            build_raster_cache(self.cache_path, samples, scenarios, spec, mode, progress)
            meta = {"shape": list(self.shape), "layers": list(spec.layers), "spec": asdict(spec)}
            meta_path.write_text(json.dumps(meta, indent=1))
        expected = int(np.prod(self.shape))
        if self.cache_path.stat().st_size != expected:
            raise DataError(
                f"{self.cache_path}: {self.cache_path.stat().st_size} bytes, expected {expected}; "
                "delete it to rebuild"
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
