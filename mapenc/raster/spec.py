"""RasterSpec: the one object that owns the pixel maths of agent-centred rasters.

Frames (DESIGN.md, "Frames and pixels"):
- city frame: the map's metric frame (metres, float64);
- agent frame: origin at the agent, +x along its heading, +y to its left (metres);
- raster pixel coordinates ``(u, v)``: ``u`` runs along columns (left to right), ``v`` along rows
  (top to bottom), in pixels; pixel ``(i, j)`` covers ``u in [j, j + 1)``, ``v in [i, i + 1)``, so
  its centre is ``(j + 0.5, i + 0.5)``. The agent faces +u (right) and its left (+y) is up (-v).

With ``s = pixel_size_m``, ``(H, W) = size_px`` and ``(ax, ay) = agent_at``, the centre of pixel
``(i, j)`` lies in the agent frame at ``x = (j + 0.5) * s - ax * W * s``,
``y = ay * H * s - (i + 0.5) * s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mapenc.checks import FieldChecks
from mapenc.errors import ConfigError
from mapenc.geometry import check_poses, inverse_matrices_from_poses, transform_points

FloatArray = NDArray[np.float64]

DEFAULT_LAYERS: tuple[str, ...] = ("drivable_area", "lane_boundaries", "centerlines", "crosswalks")


@dataclass(frozen=True)
class RasterSpec:
    """Size, resolution, agent placement and layers of an agent-centred raster.

    Attributes:
        size_px: (H, W) in pixels.
        pixel_size_m: edge of one (square) pixel in metres.
        agent_at: (ax, ay), the agent's position as fractions of W (from the left) and H (from
            the top); the default puts it a quarter in from the left, half-way down.
        layers: layer names, one channel each, in order (see ``mapenc.raster.list_layers()``).
        distance_clip_m: ``distance_to_centerline`` saturates at this distance (metres).
        history_steps: number of past frames (the current one included) in the ``history`` layer.
    """

    size_px: tuple[int, int] = (224, 224)
    pixel_size_m: float = 0.5
    agent_at: tuple[float, float] = (0.25, 0.5)
    layers: tuple[str, ...] = DEFAULT_LAYERS
    distance_clip_m: float = 5.0
    history_steps: int = 10

    def __post_init__(self) -> None:
        from mapenc.raster.layers import LAYERS

        h, w = _whole_pair(self.size_px, "size_px")
        if h <= 0 or w <= 0:
            raise ConfigError(
                f"RasterSpec.size_px must be two positive ints (H, W), got {self.size_px}"
            )
        if not _finite_pair(self.agent_at) or not all(0.0 <= v <= 1.0 for v in self.agent_at):
            raise ConfigError(
                "RasterSpec.agent_at must be two fractions of the width and height in [0, 1], "
                f"got {self.agent_at}"
            )
        (
            FieldChecks(self)
            .number("pixel_size_m", above=0)
            .number("distance_clip_m", above=0)
            .number("history_steps", integer=True, minimum=1)
            .done()
        )
        if not self.layers:
            raise ConfigError("RasterSpec.layers is empty")
        unknown = [name for name in self.layers if name not in LAYERS]
        if unknown:
            raise ConfigError(f"unknown raster layers {unknown}; known: {sorted(LAYERS)}")
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"RasterSpec.layers repeats a layer: {self.layers}")
        object.__setattr__(self, "size_px", (h, w))
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "agent_at", (float(self.agent_at[0]), float(self.agent_at[1])))
        object.__setattr__(self, "pixel_size_m", float(self.pixel_size_m))

    @property
    def height(self) -> int:
        return self.size_px[0]

    @property
    def width(self) -> int:
        return self.size_px[1]

    @property
    def num_channels(self) -> int:
        return len(self.layers)

    @property
    def extent_m(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the raster's area in the agent frame (metres)."""
        s, (h, w), (ax, ay) = self.pixel_size_m, self.size_px, self.agent_at
        return (-ax * w * s, -(1.0 - ay) * h * s, (1.0 - ax) * w * s, ay * h * s)

    @property
    def radius_m(self) -> float:
        """Largest distance from the agent to a corner of the raster (metres)."""
        xmin, ymin, xmax, ymax = self.extent_m
        return float(np.hypot(max(-xmin, xmax), max(-ymin, ymax)))

    def raster_from_agent(self) -> FloatArray:
        """(3, 3) homogeneous matrix: agent-frame metres -> raster pixel coordinates (u, v)."""
        s, (h, w), (ax, ay) = self.pixel_size_m, self.size_px, self.agent_at
        return np.array([[1.0 / s, 0.0, ax * w], [0.0, -1.0 / s, ay * h], [0.0, 0.0, 1.0]])

    def raster_from_city(self, poses: ArrayLike) -> FloatArray:
        """(N, 3, 3) matrices: city-frame metres -> pixel coordinates (u, v) of each agent's raster.

        Args:
            poses: (N, 3) city-frame ``[x, y, heading]`` (metres, rad); NaN/inf raise PoseError.
        The product is formed in float64, so city coordinates of 1e6 m keep sub-millimetre
        precision.
        """
        return self.raster_from_agent() @ inverse_matrices_from_poses(poses)

    def pixel_axes_agent(self) -> tuple[FloatArray, FloatArray]:
        """Agent-frame x (W,) of the pixel columns' centres and y (H,) of the rows' (metres)."""
        s, (h, w), (ax, ay) = self.pixel_size_m, self.size_px, self.agent_at
        x = (np.arange(w, dtype=np.float64) + 0.5) * s - ax * w * s
        y = ay * h * s - (np.arange(h, dtype=np.float64) + 0.5) * s
        return x, y

    def pixel_centers_agent(self) -> FloatArray:
        """(H, W, 2) agent-frame (x, y) of every pixel centre (metres)."""
        x, y = self.pixel_axes_agent()
        return np.stack(np.broadcast_arrays(x[None, :], y[:, None]), axis=-1)

    def window_corners_city(self, poses: ArrayLike) -> FloatArray:
        """(N, 4, 2) city-frame corners of each agent's raster area (metres)."""
        p = check_poses(poses)
        xmin, ymin, xmax, ymax = self.extent_m
        corners = np.array([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]])
        return transform_points(p, np.broadcast_to(corners, (len(p), 4, 2)))


def points_to_pixels(raster_from_city: ArrayLike, points_city: ArrayLike) -> FloatArray:
    """Map city-frame points into pixel coordinates (u, v) of one or many rasters.

    Args:
        raster_from_city: (3, 3) or (N, 3, 3) from ``RasterSpec.raster_from_city``.
        points_city: (..., 2) city-frame metres; with N matrices the leading axis must be N
            (e.g. (N, T, 2) trajectories), with one matrix any shape (..., 2).
    Returns: float64 array of the points' shape, ``[..., 0] = u`` (column), ``[..., 1] = v`` (row);
    pixel ``(i, j)`` holds ``u in [j, j + 1)``, ``v in [i, i + 1)``.
    """
    m = np.asarray(raster_from_city, dtype=np.float64)
    pts = np.asarray(points_city, dtype=np.float64)
    if m.shape[-2:] != (3, 3) or pts.shape[-1:] != (2,):
        raise ConfigError(
            f"need (..., 3, 3) matrices and (..., 2) points, got {m.shape}, {pts.shape}"
        )
    if m.ndim == 3:
        if pts.shape[0] != m.shape[0]:
            raise ConfigError(f"{m.shape[0]} matrices but points for {pts.shape[0]} rasters")
        m = m.reshape(m.shape[:1] + (1,) * (pts.ndim - 2) + (3, 3))
    rot, shift = m[..., :2, :2], m[..., :2, 2]
    return np.einsum("...ab,...b->...a", rot, pts) + shift


def _finite_pair(value: object) -> bool:
    """Whether ``value`` is a sequence of two finite real numbers."""
    pair = _numbers(value)
    return pair is not None and len(pair) == 2 and all(np.isfinite(pair))


def _numbers(value: object) -> list[float] | None:
    """The items of a sequence as floats, or None when it is not a sequence of numbers."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        return None
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        return None


def _whole_pair(value: object, name: str) -> tuple[int, int]:
    """``value`` as two ints; ConfigError naming ``RasterSpec.name`` for anything but two whole
    numbers (``('a', 3)``, ``(64,)`` and ``(2.7, 3.9)`` are refused, never truncated)."""
    pair = _numbers(value)
    if pair is None or not _finite_pair(pair) or any(v != round(v) for v in pair):
        raise ConfigError(f"RasterSpec.{name} must be two whole numbers (H, W), got {value!r}")
    return round(pair[0]), round(pair[1])
