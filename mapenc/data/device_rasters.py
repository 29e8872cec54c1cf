"""Rasters drawn on the model's device, per batch, with no cache: the torch raster mode's data side.

``SceneRasterizers`` turns a batch's city-frame poses and scenario indices into float rasters on
the poses' device; maps with the same content (e.g. NGSIM recordings of one location) are one
map. When every layer of the spec is a fill or line layer, the maps of a batch (AV2 and Waymo
batches hold many small maps) are joined into one segment table with map offsets and drawn in
one pass (``mapenc.raster.device_draw``); otherwise each map has its torch-mode ``Rasterizer``.
Either way at most ``max_device_maps`` maps stay on a device, the least recently used leaving
first, so an epoch over thousands of maps does not fill the GPU. The trajectory model calls it
inside its map branch (``TrajectoryCVAE.map_rasters``), so rasters never pass through the host
or a DataLoader worker.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import shapely
import torch

from mapenc.errors import ConfigError, PoseError
from mapenc.maps.types import Scenario, VectorMap
from mapenc.raster import LAYERS, Rasterizer, RasterSpec
from mapenc.raster.device_draw import MapTable, VectorDrawer
from mapenc.raster.mapgeom import MapGeometry
from mapenc.raster.rasterizer import device_chunk
from mapenc.raster.values import empty_tensor

_T = TypeVar("_T")
# Maps kept on each device (their segment tables or rasterizers), least recently used out first:
# an AV2 map's table is a few hundred kB, a city's tens of MB.
MAX_DEVICE_MAPS = 256


def map_digest(vector_map: VectorMap) -> str:
    """SHA-256 of a map's drawn content: lane geometry, crosswalks and drivable area."""
    h = hashlib.sha256()
    for lane in vector_map.lanes:
        for polyline in (lane.centerline, lane.left_boundary, lane.right_boundary):
            h.update(np.ascontiguousarray(polyline, dtype=np.float64).tobytes())
        h.update(f"{lane.left_mark}{lane.right_mark}".encode())
    for polygon in [*vector_map.crosswalks, vector_map.area]:
        h.update(shapely.to_wkb(polygon))
    for edge in vector_map.road_edges:
        h.update(np.ascontiguousarray(edge, dtype=np.float64).tobytes())
    return h.hexdigest()


class SceneRasterizers:
    """Batch poses of many scenarios -> rasters on the poses' device.

    Args:
        scenarios: the scenarios a batch's ``scenario`` indices point into.
        spec: the raster spec (map layers only: scene layers need a time step per sample).
        max_device_maps: maps kept on a device at once (see the module docstring).
    """

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        spec: RasterSpec,
        max_device_maps: int = MAX_DEVICE_MAPS,
    ) -> None:
        self.spec = spec
        self.max_device_maps = max_device_maps
        digests = [map_digest(sc.map) for sc in scenarios]
        first = {d: k for k, d in reversed(list(enumerate(digests)))}
        # scenario -> index of the first scenario with the same map content
        self.map_of = torch.tensor([first[d] for d in digests], dtype=torch.int64)
        self.maps = {k: scenarios[k].map for k in set(first.values())}
        self.one_pass = all(LAYERS[n].kind in ("fill", "line") for n in spec.layers)
        self._rasterizers: OrderedDict[tuple[int, str], Rasterizer] = OrderedDict()
        self._tables: OrderedDict[tuple[int, str], MapTable] = OrderedDict()
        self._drawers: dict[str, VectorDrawer] = {}

    def rasterizer(self, map_index: int, device: torch.device) -> Rasterizer:
        """The torch-mode Rasterizer of map ``map_index`` on ``device`` (built on first use)."""
        key = (map_index, str(device))
        if key not in self._rasterizers:
            self._rasterizers[key] = Rasterizer(
                self.maps[map_index], self.spec, mode="torch", device=device
            )
        return _recent(self._rasterizers, key, self.max_device_maps)

    def table(self, map_index: int, device: torch.device) -> MapTable:
        """The segment table of map ``map_index`` on ``device`` (built on first use)."""
        key = (map_index, str(device))
        if key not in self._tables:
            geometry = MapGeometry(self.maps[map_index])
            self._tables[key] = self._drawer(device).table(geometry)
        return _recent(self._tables, key, self.max_device_maps)

    def _drawer(self, device: torch.device) -> VectorDrawer:
        if str(device) not in self._drawers:
            coordinates = torch.float64 if device.type == "cpu" else torch.float32
            drawer = VectorDrawer(self.spec, self.spec.layers, device, coordinates)
            self._drawers[str(device)] = drawer
        return self._drawers[str(device)]

    def __call__(self, pose: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 rasters on ``pose.device`` for city poses (N, 3) of scenarios (N,)."""
        device = pose.device
        maps = self.map_of.to(device)[scenario]
        shape = (len(pose), self.spec.num_channels, *self.spec.size_px)
        out = empty_tensor(shape, torch.float32, device)
        distinct, map_index = torch.unique(maps, return_inverse=True)
        in_batch = distinct.tolist()  # the batch's one read of map ids
        if not self.one_pass:
            for k, map_id in enumerate(in_batch):
                rows = torch.nonzero(map_index == k).view(-1)
                drawn = self.rasterizer(map_id, device).rasterize_tensor(pose[rows], torch.float32)
                out[rows] = drawn
            return out
        if len(in_batch) > self.max_device_maps:
            raise ConfigError(
                f"a batch on {len(in_batch)} maps, over max_device_maps={self.max_device_maps}"
            )
        table = MapTable.concat([self.table(k, device) for k in in_batch])
        poses = pose.to(torch.float64)
        finite = torch.isfinite(poses).all()
        chunk = device_chunk(self.spec, device, len(pose), out.dtype)
        for start in range(0, len(pose), chunk):
            part = slice(start, start + chunk)
            check = finite if start == 0 else None
            if not self._drawer(device).draw(table, poses[part], out[part], map_index[part], check):
                raise PoseError("poses has NaN or inf values")
        return out


def _recent(cache: OrderedDict[tuple[int, str], _T], key: tuple[int, str], keep: int) -> _T:
    """``cache[key]``, marked most recently used; the least recently used beyond ``keep`` go."""
    cache.move_to_end(key)
    while len(cache) > keep:
        cache.popitem(last=False)
    return cache[key]
