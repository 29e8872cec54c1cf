"""Rasters drawn on the model's device, per batch, with no cache: the torch raster mode's data side.

``SceneRasterizers`` holds one torch-mode ``Rasterizer`` per distinct map of a list of scenarios
(maps with the same content, e.g. NGSIM recordings of one location, share one) and turns a batch's
city-frame poses and scenario indices into float rasters on the poses' device. The trajectory
model calls it inside its map branch (``TrajectoryCVAE.map_rasters``), so rasters never pass
through the host or a DataLoader worker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import shapely
import torch

from mapenc.maps.types import Scenario, VectorMap
from mapenc.raster import Rasterizer, RasterSpec


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
    """

    def __init__(self, scenarios: Sequence[Scenario], spec: RasterSpec) -> None:
        self.spec = spec
        digests = [map_digest(sc.map) for sc in scenarios]
        first = {d: k for k, d in reversed(list(enumerate(digests)))}
        # scenario -> index of the first scenario with the same map content
        self.map_of = torch.tensor([first[d] for d in digests], dtype=torch.int64)
        self.maps = {k: scenarios[k].map for k in set(first.values())}
        self._rasterizers: dict[tuple[int, str], Rasterizer] = {}

    def rasterizer(self, map_index: int, device: torch.device) -> Rasterizer:
        """The torch-mode Rasterizer of map ``map_index`` on ``device`` (built on first use)."""
        key = (map_index, str(device))
        if key not in self._rasterizers:
            self._rasterizers[key] = Rasterizer(
                self.maps[map_index], self.spec, mode="torch", device=device
            )
        return self._rasterizers[key]

    def __call__(self, pose: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 rasters on ``pose.device`` for city poses (N, 3) of scenarios (N,)."""
        device = pose.device
        maps = self.map_of.to(device)[scenario]
        out = torch.empty((len(pose), self.spec.num_channels, *self.spec.size_px), device=device)
        for map_index in torch.unique(maps).tolist():
            rows = torch.nonzero(maps == map_index).view(-1)
            drawn = self.rasterizer(map_index, device).rasterize_tensor(pose[rows], torch.float32)
            out[rows] = drawn
        return out
