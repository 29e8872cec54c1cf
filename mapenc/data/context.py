"""What a trajectory model sees besides the agent's past and its raster: its kind, its neighbours,
and the anchors it predicts residuals around.

- **Kind**: ``kind_index`` maps a track kind to one of ``KIND_GROUPS`` (vehicle, pedestrian,
  cyclist), or ``len(KIND_GROUPS)`` for any other kind.
- **Neighbours**: the ``max_neighbours`` nearest other agents observed at the prediction step
  and the step before, within ``NEIGHBOUR_RADIUS_M``: ``[x, y, vx, vy, 1]`` in the agent frame
  (metres, m/s; the last column marks a real neighbour, rows without one are zeros).
- **Anchors**: ``"lane"`` (lane-following modes where a lane matches, kinematic elsewhere) or
  ``"kinematic"`` (constant accelerations) for vehicles and cyclists, walking modes (turns and
  changes of pace) for pedestrians, see ``mapenc.data.anchors``; with ``standing``, mode 0 is at
  rest (the model's standing mode) and the others are the first ``modes - 1`` of those.

``ContextDataset`` wraps a ``TrajectoryDataset`` and adds the items ``kind`` () int64,
``neighbours`` (M, 5) float32 and ``anchors`` (K, F, 2) float32. ``ContextSettings.dataset``
builds both from samples and their scenarios: for a whole split in memory, or for one streamed
scenario at a time (``mapenc.data.streaming``), the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from mapenc.data.anchors import (
    KINEMATIC_ACCELERATIONS,
    kinematic_forecast,
    lane_following_forecast,
    last_step_velocity,
    walking_forecast,
)
from mapenc.data.traj_dataset import TrajectoryDataset
from mapenc.data.trajectory import TrajSamples, TrajTask
from mapenc.errors import ConfigError
from mapenc.geometry import inverse_transform_points, rotate_vectors
from mapenc.maps.polylines import PolylineSpec
from mapenc.maps.types import Scenario
from mapenc.raster import RasterSpec
from mapenc.raster.rasterizer import Mode

KIND_GROUPS: dict[str, tuple[str, ...]] = {
    "vehicle": ("vehicle", "car", "truck", "bus", "taxi"),
    "pedestrian": ("pedestrian",),
    "cyclist": ("cyclist", "motorcyclist", "bicycle"),
}
NUM_KINDS = len(KIND_GROUPS) + 1
PEDESTRIAN = list(KIND_GROUPS).index("pedestrian")
NEIGHBOUR_RADIUS_M = 40.0
NEIGHBOUR_FEATURES = 5
AnchorKind = Literal["lane", "kinematic"]


def kind_index(kind: str) -> int:
    """Index of the kind's group in ``KIND_GROUPS``; ``len(KIND_GROUPS)`` for any other kind."""
    for index, members in enumerate(KIND_GROUPS.values()):
        if kind.lower() in members:
            return index
    return len(KIND_GROUPS)


def neighbour_features(
    samples: TrajSamples, scenarios: Sequence[Scenario], max_neighbours: int
) -> NDArray[np.float32]:
    """(N, max_neighbours, 5) nearest neighbours of each sample (see the module docstring);
    velocities over the scene's last step."""
    out = np.zeros((len(samples), max_neighbours, NEIGHBOUR_FEATURES), dtype=np.float32)
    if max_neighbours == 0:
        return out
    for index, scenario in enumerate(scenarios):
        rows = np.flatnonzero(samples.scenario_index == index)
        if rows.size == 0:
            continue
        ids = [track.id for track in scenario.tracks]
        xy = np.stack([track.xy for track in scenario.tracks])  # (A, T, 2)
        valid = np.stack([track.valid for track in scenario.tracks])  # (A, T)
        for row in rows:
            t = int(samples.time_step[row])
            present = valid[:, t] & valid[:, t - 1]
            present[ids.index(samples.track_ids[row])] = False
            if not present.any():
                continue
            pose = samples.pose[row : row + 1]
            velocity = (xy[present, t] - xy[present, t - 1]) / scenario.dt
            local = inverse_transform_points(pose, xy[present, t][None])[0]
            local_v = rotate_vectors(-pose[:, 2], velocity[None])[0]
            distance = np.linalg.norm(local, axis=-1)
            order = np.argsort(distance)
            order = order[distance[order] <= NEIGHBOUR_RADIUS_M][:max_neighbours]
            out[row, : order.size, :2] = local[order]
            out[row, : order.size, 2:4] = local_v[order]
            out[row, : order.size, 4] = 1.0
    return out


def make_anchors(
    samples: TrajSamples,
    scenarios: Sequence[Scenario],
    task: TrajTask,
    modes: int,
    kind: AnchorKind,
    standing: bool = False,
) -> NDArray[np.float32]:
    """(N, modes, F, 2) anchors, agent frame: ``kind`` ("lane" or "kinematic") modes for
    vehicles and cyclists, walking modes for pedestrians; with ``standing``, mode 0 at rest."""
    moving = modes - 1 if standing else modes
    velocity = last_step_velocity(samples, task.dt)
    if kind == "lane":
        anchors = lane_following_forecast(samples, scenarios, task, moving)
    elif kind == "kinematic":
        # Without a standing mode the hardest braking comes first to go; with one, it stands.
        accelerations = KINEMATIC_ACCELERATIONS[-moving:] if standing else KINEMATIC_ACCELERATIONS
        forecast = kinematic_forecast(velocity, task.future_steps, task.dt, accelerations)
        anchors = forecast[:, np.arange(moving) % forecast.shape[1]]
    else:
        raise ConfigError(f"anchors must be 'lane' or 'kinematic', got {kind!r}")
    walking = np.array([kind_index(k) == PEDESTRIAN for k in samples.kinds], dtype=bool)
    if walking.any():
        walks = walking_forecast(velocity[walking], task.future_steps, task.dt)
        anchors[walking] = walks[:, np.arange(moving) % walks.shape[1]]
    if standing:
        anchors = np.concatenate([np.zeros_like(anchors[:, :1]), anchors], axis=1)
    return anchors.astype(np.float32)


class ContextDataset(Dataset[dict[str, torch.Tensor]]):
    """A TrajectoryDataset's items plus ``kind``, ``neighbours`` and ``anchors`` (see module)."""

    def __init__(
        self,
        base: TrajectoryDataset,
        scenarios: Sequence[Scenario],
        task: TrajTask,
        modes: int,
        anchors: AnchorKind,
        max_neighbours: int,
        standing: bool = False,
    ) -> None:
        self.base = base
        self.samples = base.samples
        self.kinds = torch.tensor([kind_index(k) for k in base.samples.kinds], dtype=torch.int64)
        self.neighbours = torch.from_numpy(
            neighbour_features(base.samples, scenarios, max_neighbours)
        )
        self.anchors = torch.from_numpy(
            make_anchors(base.samples, scenarios, task, modes, anchors, standing)
        )

    def __len__(self) -> int:
        return len(self.base)

    def raster(self, index: int) -> torch.Tensor:
        """(C, H, W) float32 raster of sample ``index``."""
        return self.base.raster(index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.base[index]
        item["kind"] = self.kinds[index]
        item["neighbours"] = self.neighbours[index]
        item["anchors"] = self.anchors[index]
        return item


@dataclass(frozen=True)
class ContextSettings:
    """Everything that turns samples into ``ContextDataset`` items besides the samples and their
    scenarios.

    Attributes:
        spec: raster size and layers.
        task: the task the samples were cut for.
        mode: Rasterizer mode (``TrajectoryDataset``).
        modes: anchors per sample.
        anchors: "lane" or "kinematic" (module docstring).
        max_neighbours: neighbour rows per sample.
        standing: mode 0 at rest.
        polylines: also give each sample its map polylines, cut and windowed by this spec.
    """

    spec: RasterSpec
    task: TrajTask
    mode: Mode
    modes: int
    anchors: AnchorKind
    max_neighbours: int
    standing: bool = False
    polylines: PolylineSpec | None = None

    def dataset(
        self,
        samples: TrajSamples,
        scenarios: Sequence[Scenario],
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> ContextDataset:
        """The ContextDataset of ``samples`` (cut from ``scenarios``); rasters cached in
        ``cache_dir``, or drawn into memory when it is None."""
        base = TrajectoryDataset(
            samples,
            scenarios,
            self.spec,
            self.task,
            cache_dir,
            mode=self.mode,
            progress=progress,
            polylines=self.polylines,
        )
        return ContextDataset(
            base,
            scenarios,
            self.task,
            self.modes,
            self.anchors,
            self.max_neighbours,
            self.standing,
        )
