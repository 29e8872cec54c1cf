"""The raster cache: every sample's raster drawn once into a raw uint8 file, verified on reuse.

``<folder>/rasters-<key>.u8`` holds a raw ``(N, C, H, W)`` uint8 array and ``rasters-<key>.json``
beside it its shape, layers, spec and the SHA-256 of the ``.u8`` content.

- The key (``raster_cache_key``) hashes everything that changes a raster: the content of each
  scenario (map geometry and tracks, whatever file they came from), the samples (poses, scenario,
  time step, track id), the spec, the task and the Rasterizer mode. Editing a map or a tracks
  file, even keeping its size and time stamp, gives a new key.
- A cache is used only when its metadata is a regular file (never a link), names the expected
  shape, and the ``.u8`` content matches the stored digest; otherwise it is rebuilt, with a
  warning. The digest is checked once per process per file.
- Files are created exclusively under temporary names and renamed into place (a planted link is
  replaced, never written through); temporary files of killed builds are removed at the next
  start (``mapenc.safeio.remove_stale_temporaries``). The folder may be shared by several users
  and runs.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import mmap
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from mapenc.data.trajectory import TrajSamples, TrajTask
from mapenc.errors import DataError
from mapenc.maps.types import Scenario
from mapenc.progress import progress_bar
from mapenc.raster import LAYERS, Rasterizer, RasterSpec
from mapenc.raster.rasterizer import Mode
from mapenc.safeio import (
    ensure_folder,
    remove_stale_temporaries,
    write_atomic,
    write_bytes_atomic,
)

CACHE_VERSION = 2
# Bytes hashed per call while checking a cache file, so memory stays bounded.
_HASH_CHUNK = 1 << 24
# (path, size, mtime, inode) of cache files whose digest this process has already checked.
_VERIFIED: set[tuple[str, int, int, int]] = set()
# Fields that say where a value was read from, not what it holds: left out of content digests.
_WHERE_FROM = ("source", "provenance")


def content_digest(value: Any) -> str:
    """SHA-256 (hex) of a scenario, map or any value built of dataclasses, arrays, geometries,
    enums, sequences, mappings and scalars. ``source`` and ``provenance`` fields (where a value was
    read from) are left out, so the digest changes with the content only."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    """Feed ``value`` into the hash ``h``, each item tagged with its kind so no two differ alike."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"<{type(value).__name__}".encode())
        for field in dataclasses.fields(value):
            if field.name not in _WHERE_FROM:
                h.update(field.name.encode())
                _feed(h, getattr(value, field.name))
        h.update(b">")
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        h.update(f"<array {array.dtype.str} {array.shape}>".encode())
        h.update(array.tobytes())
    elif isinstance(value, BaseGeometry):
        h.update(b"<geometry>")
        h.update(value.wkb)
    elif isinstance(value, enum.Enum):
        h.update(f"<enum {value.value!r}>".encode())
    elif isinstance(value, list | tuple):
        h.update(f"<seq {len(value)}".encode())
        for item in value:
            _feed(h, item)
        h.update(b">")
    elif isinstance(value, dict):
        h.update(f"<map {len(value)}".encode())
        for key in sorted(value, key=repr):
            _feed(h, key)
            _feed(h, value[key])
        h.update(b">")
    else:
        h.update(f"<{type(value).__name__} {value!r}>".encode())


def raster_cache_key(
    samples: TrajSamples,
    scenarios: Sequence[Scenario],
    spec: RasterSpec,
    task: TrajTask,
    mode: Mode = "fast",
) -> str:
    """SHA-256 (hex, 32 chars) of everything that changes a cached raster (see the module
    docstring). The mode is part of it: "fast" and "exact" rasters differ slightly at edges, and a
    model must be evaluated on rasters drawn the way its training rasters were."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, mode, asdict(spec), asdict(task)]).encode())
    for scenario in scenarios:
        h.update(content_digest(scenario).encode())
    _feed(h, [samples.pose, samples.scenario_index, samples.time_step, samples.track_ids])
    return h.hexdigest()[:32]


def _has_scene_layers(spec: RasterSpec) -> bool:
    return any(LAYERS[name].from_scenario for name in spec.layers)


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's content, read in bounded chunks."""
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def open_cache_folder(folder: Path) -> Path:
    """``folder``, created when missing, with stale temporary files removed; DataError when it
    cannot be a folder (a file in its way, no permission)."""
    ensure_folder(folder, "the raster cache folder", DataError)
    remove_stale_temporaries(folder)
    return folder


def cached_rasters(
    folder: Path,
    samples: TrajSamples,
    scenarios: Sequence[Scenario],
    spec: RasterSpec,
    task: TrajTask,
    mode: Mode = "fast",
    progress: bool = True,
) -> Path:
    """The verified ``.u8`` cache of these samples in ``folder``, built first when missing or
    damaged. Raises DataError when the folder is unusable or the cache cannot be written."""
    open_cache_folder(folder)
    key = raster_cache_key(samples, scenarios, spec, task, mode)
    path = folder / f"rasters-{key}.u8"
    shape = (len(samples), spec.num_channels, *spec.size_px)
    problem = _cache_problem(path, shape)
    if problem is None:
        return path
    if problem != "missing":
        warnings.warn(f"{path}: {problem}; rebuilding it", stacklevel=2)
    try:
        digest = build_raster_cache(path, samples, scenarios, spec, mode, progress)
        meta = {"shape": list(shape), "layers": list(spec.layers), "spec": asdict(spec)}
        meta["sha256"] = digest
        write_bytes_atomic(_meta_path(path), json.dumps(meta, indent=1).encode())
    except OSError as err:
        raise DataError(f"{path}: cannot write the raster cache ({err.strerror or err})") from None
    return path


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _cache_problem(path: Path, shape: tuple[int, ...]) -> str | None:
    """Why the cache at ``path`` cannot be used ("missing", a damage), or None when it can."""
    meta_path = _meta_path(path)
    if not (path.exists() or meta_path.exists()):
        return "missing"
    try:
        fd = os.open(meta_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            meta = json.loads(handle.read(1 << 20))
        info = os.lstat(path)
    except (OSError, ValueError):
        return "metadata missing, unreadable or a link"
    if not isinstance(meta, dict) or meta.get("shape") != list(shape):
        return "metadata does not describe this cache"
    if not os.path.isfile(path) or os.path.islink(path):
        return "not a regular file"
    if info.st_size != int(np.prod(shape)):
        return f"{info.st_size} bytes, expected {int(np.prod(shape))}"
    stamp = (str(path), info.st_size, info.st_mtime_ns, info.st_ino)
    if stamp not in _VERIFIED:
        if file_digest(path) != meta.get("sha256"):
            return "content does not match its stored digest (damaged)"
        _VERIFIED.add(stamp)
    return None


def build_raster_cache(
    path: Path,
    samples: TrajSamples,
    scenarios: Sequence[Scenario],
    spec: RasterSpec,
    mode: Mode = "fast",
    progress: bool = True,
) -> str:
    """Rasterize every sample into the raw uint8 file ``path`` (N, C, H, W), atomically; returns
    the SHA-256 of its content. Raises OSError from the file system."""
    shape = (len(samples), spec.num_channels, *spec.size_px)
    digest = hashlib.sha256()

    def fill(handle: IO[bytes]) -> None:
        handle.truncate(int(np.prod(shape)))
        with mmap.mmap(handle.fileno(), 0) as buffer:
            cache = np.frombuffer(buffer, dtype=np.uint8).reshape(shape)
            _rasterize_into(cache, samples, scenarios, spec, mode, progress)
            buffer.flush()
            del cache  # the map cannot close while an array views it
            digest.update(buffer)

    write_atomic(path, fill)
    info = os.lstat(path)
    _VERIFIED.add((str(path), info.st_size, info.st_mtime_ns, info.st_ino))
    return digest.hexdigest()


def _rasterize_into(
    cache: np.ndarray,
    samples: TrajSamples,
    scenarios: Sequence[Scenario],
    spec: RasterSpec,
    mode: Mode,
    progress: bool,
) -> None:
    """Fill ``cache`` (N, C, H, W) uint8: one ``rasterize`` call per scenario, or per scenario and
    time step when the spec has scene layers; one scenario's geometry in memory at a time."""
    scene = _has_scene_layers(spec)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (s, t) in enumerate(zip(samples.scenario_index, samples.time_step, strict=True)):
        groups.setdefault((int(s), int(t) if scene else 0), []).append(i)
    rasterizers: dict[int, Rasterizer] = {}
    bar = progress_bar(groups.items(), desc="rasterize", enabled=progress, leave=False)
    for (s, t), rows in bar:
        if s not in rasterizers:
            rasterizers.clear()
            sc = scenarios[s]
            rasterizers[s] = Rasterizer(sc.map, spec, mode=mode, scenario=sc)
        idx = np.asarray(rows)
        kwargs: dict[str, Any] = {}
        if scene:
            kwargs = {"t": t, "track_ids": [samples.track_ids[i] for i in rows]}
        cache[idx] = rasterizers[s].rasterize(samples.pose[idx], dtype=np.uint8, **kwargs)
