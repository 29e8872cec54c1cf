"""Boxes of tracked agents for the scene layers (``agents``, ``ego``, ``history``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from mapenc.errors import PoseError
from mapenc.geometry import transform_points
from mapenc.maps.types import Scenario
from mapenc.raster.segments import GeometryArray


def box_polygons(
    xy: NDArray[np.float64],
    heading: NDArray[np.float64],
    length: NDArray[np.float64],
    width: NDArray[np.float64],
) -> GeometryArray:
    """(M,) rectangles centred at ``xy`` (M, 2) with the given heading (rad) and size (metres)."""
    along = np.array([1.0, 1.0, -1.0, -1.0])[None, :] * 0.5 * length[:, None]
    across = np.array([1.0, -1.0, -1.0, 1.0])[None, :] * 0.5 * width[:, None]
    poses = np.concatenate([xy, heading[:, None]], axis=1)
    return shapely.polygons(transform_points(poses, np.stack([along, across], axis=-1)))


@dataclass(frozen=True)
class SceneBoxes:
    """Agents' boxes at one or more time steps, city frame.

    Attributes:
        geoms: (M,) polygons, in drawing order.
        track: (M,) index into ``Scenario.tracks`` of each box's agent.
        value: (M,) value burned (1 for the current step, fading with age in ``history``).
    """

    geoms: GeometryArray
    track: NDArray[np.intp]
    value: NDArray[np.float64]


def scene_boxes(scenario: Scenario, t: int, steps: int = 1) -> SceneBoxes:
    """Boxes of every agent valid at steps ``t - steps + 1 .. t``, oldest first.

    The box of step ``t - k`` carries the value ``(steps - k) / steps``: 1 now, fading with age.
    """
    if not 0 <= t < scenario.num_steps:
        raise PoseError(
            f"{scenario.source or 'scenario'}: time step {t} outside 0..{scenario.num_steps - 1}"
        )
    geoms, tracks, values = [], [], []
    lengths = np.array([tr.length for tr in scenario.tracks], dtype=np.float64)
    widths = np.array([tr.width for tr in scenario.tracks], dtype=np.float64)
    for step in range(max(0, t - steps + 1), t + 1):
        idx = np.array([k for k, tr in enumerate(scenario.tracks) if tr.valid[step]], dtype=np.intp)
        if len(idx) == 0:
            continue
        xy = np.stack([scenario.tracks[k].xy[step] for k in idx])
        heading = np.array([scenario.tracks[k].heading[step] for k in idx])
        geoms.append(box_polygons(xy, heading, lengths[idx], widths[idx]))
        tracks.append(idx)
        values.append(np.full(len(idx), (steps - (t - step)) / steps))
    if not geoms:
        return SceneBoxes(np.empty(0, dtype=object), np.empty(0, dtype=np.intp), np.empty(0))
    return SceneBoxes(np.concatenate(geoms), np.concatenate(tracks), np.concatenate(values))
