"""Map polylines around agents, in each agent's frame: the input of the vector-map encoder.

``map_polylines(vector_map, spec)`` cuts every line of a map (lane centerlines, lane boundaries
once each, road edges and the drivable area's outline, crosswalk outlines) into short pieces of
``spec.segments`` equal segments of at most ``spec.spacing_m`` metres, once per map, in the city
frame. ``polylines_around(pieces, poses, spec)`` moves them into each agent's frame with the batched
SE(2) of ``mapenc.geometry`` and keeps, per agent, the ``spec.max_polylines`` pieces nearest to it
that reach into the window ``spec.extent_m`` (the same rectangle a RasterSpec covers): points
outside the window are masked, never moved. Cutting in the city frame, before any agent is known,
makes the result the same whatever frame the map is given in: turning the map and the agents
together leaves every agent's polylines unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from mapenc.errors import ConfigError
from mapenc.geometry import check_poses, inverse_transform_points
from mapenc.maps.types import VectorMap

FloatArray = NDArray[np.float64]

# The kind of each polyline, as an index into this tuple.
POLYLINE_TYPES: tuple[str, ...] = ("centerline", "lane_boundary", "road_edge", "crosswalk")
# Poses transformed together (bounds the (poses, pieces, points) array of one step).
_POSE_BATCH = 64
# Boundaries shared by two neighbouring lanes are kept once: endpoints rounded to this (metres).
_SHARED_TOL_M = 0.01


@dataclass(frozen=True)
class PolylineSpec:
    """Which polylines an agent sees and how they are cut.

    Attributes:
        extent_m: (xmin, ymin, xmax, ymax) of the window in the agent frame (metres); a
            RasterSpec's ``extent_m`` gives the raster's window.
        max_polylines: polylines kept per agent (the nearest ones).
        segments: segments per polyline (``segments + 1`` points).
        spacing_m: longest segment (metres); lines are resampled at equal steps up to this.
    """

    extent_m: tuple[float, float, float, float] = (-16.0, -32.0, 48.0, 32.0)
    max_polylines: int = 128
    segments: int = 5
    spacing_m: float = 4.0

    def __post_init__(self) -> None:
        xmin, ymin, xmax, ymax = (float(v) for v in self.extent_m)
        if not (xmin < 0.0 < xmax and ymin < 0.0 < ymax):
            raise ConfigError(
                f"PolylineSpec.extent_m={self.extent_m} must contain the agent (0, 0)"
            )
        if self.max_polylines < 1 or self.segments < 1 or not self.spacing_m > 0:
            raise ConfigError("PolylineSpec: max_polylines >= 1, segments >= 1, spacing_m > 0")
        object.__setattr__(self, "extent_m", (xmin, ymin, xmax, ymax))

    @property
    def points(self) -> int:
        """Points per polyline."""
        return self.segments + 1

    @property
    def radius_m(self) -> float:
        """Largest distance from the agent to a corner of the window (metres)."""
        xmin, ymin, xmax, ymax = self.extent_m
        return float(np.hypot(max(-xmin, xmax), max(-ymin, ymax)))


@dataclass(frozen=True)
class MapPolylines:
    """A map's lines cut into pieces, city frame.

    Attributes:
        points: (M, segments + 1, 2) float64 metres.
        valid: (M, segments + 1) bool; the last piece of a line ends early, its tail is False.
        types: (M,) int64 index into ``POLYLINE_TYPES``.
    """

    points: FloatArray
    valid: NDArray[np.bool_]
    types: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True)
class AgentPolylines:
    """The polylines N agents see, each in its own agent frame, nearest first, padded.

    Attributes:
        points: (N, max_polylines, segments + 1, 2) float32 metres, agent frame (0 where masked).
        mask: (N, max_polylines, segments + 1) bool: the point exists and lies in the window.
        types: (N, max_polylines) int64 index into ``POLYLINE_TYPES`` (0 for padding).
    """

    points: NDArray[np.float32]
    mask: NDArray[np.bool_]
    types: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.points.shape[0])


def _resample_at_spacing(line: FloatArray, spacing_m: float) -> FloatArray:
    """(K, 2) points at equal arc-length steps no longer than ``spacing_m``, ends kept."""
    steps = np.linalg.norm(np.diff(line, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    # Rounded first: a length that is a multiple of the spacing must not gain a point by noise.
    count = max(2, int(np.ceil(round(arc[-1] / spacing_m, 6))) + 1)
    at = np.linspace(0.0, arc[-1], count)
    return np.stack([np.interp(at, arc, line[:, 0]), np.interp(at, arc, line[:, 1])], axis=1)


def _cut(line: FloatArray, segments: int) -> list[FloatArray]:
    """Consecutive pieces of at most ``segments`` segments; neighbours share an end point."""
    return [line[start : start + segments + 1] for start in range(0, len(line) - 1, segments)]


def _boundary_key(line: FloatArray) -> tuple[float, ...]:
    ends = np.round(np.array([line[0], line[-1]]) / _SHARED_TOL_M).astype(np.int64)
    first, last = sorted([tuple(ends[0].tolist()), tuple(ends[1].tolist())])
    return (*first, *last, len(line))


def _canonical_ring(ring: FloatArray) -> FloatArray:
    """A closed ring (K, 2) (first point repeated last) started at a vertex chosen by its shape
    only (farthest from the centroid, then longest edges out and in, to the millimetre), so a
    ring cut into pieces gives the same pieces in any frame whatever vertex a polygon starts at."""
    vertices = np.asarray(ring[:-1], dtype=np.float64)
    if len(vertices) < 3:
        return np.asarray(ring, dtype=np.float64)
    edge_out = np.linalg.norm(np.roll(vertices, -1, axis=0) - vertices, axis=1)
    edge_in = np.roll(edge_out, 1)
    spread = np.linalg.norm(vertices - vertices.mean(axis=0), axis=1)
    keys = np.round(np.stack([spread, edge_out, edge_in]), 3)
    start = int(np.lexsort(keys[::-1])[-1])  # largest spread, then edge out, then edge in
    rolled = np.roll(vertices, -start, axis=0)
    return np.concatenate([rolled, rolled[:1]])


def _map_lines(vector_map: VectorMap) -> list[tuple[FloatArray, int]]:
    """Every line of the map with its type index (lane boundaries shared by neighbours once)."""
    kind = {name: i for i, name in enumerate(POLYLINE_TYPES)}
    lines: list[tuple[FloatArray, int]] = []
    seen: set[tuple[float, ...]] = set()
    for lane in vector_map.lanes:
        lines.append((lane.centerline, kind["centerline"]))
        for boundary in (lane.left_boundary, lane.right_boundary):
            key = _boundary_key(boundary)
            if key not in seen:
                seen.add(key)
                lines.append((boundary, kind["lane_boundary"]))
    lines += [(edge, kind["road_edge"]) for edge in vector_map.road_edges]
    area = vector_map.area
    for ring in shapely.get_rings(shapely.get_parts(area)) if not area.is_empty else []:
        lines.append((_canonical_ring(np.asarray(ring.coords)), kind["road_edge"]))
    for crosswalk in vector_map.crosswalks:
        lines.append((_canonical_ring(np.asarray(crosswalk.exterior.coords)), kind["crosswalk"]))
    return [(np.asarray(line, dtype=np.float64), t) for line, t in lines if len(line) >= 2]


def map_polylines(vector_map: VectorMap, spec: PolylineSpec) -> MapPolylines:
    """Every line of ``vector_map`` resampled and cut into pieces of ``spec.segments`` segments."""
    points, valid, types = [], [], []
    for line, kind in _map_lines(vector_map):
        for piece in _cut(_resample_at_spacing(line, spec.spacing_m), spec.segments):
            padded = np.zeros((spec.points, 2))
            padded[: len(piece)] = piece
            points.append(padded)
            valid.append(np.arange(spec.points) < len(piece))
            types.append(kind)
    return MapPolylines(
        points=np.array(points, dtype=np.float64).reshape(-1, spec.points, 2),
        valid=np.array(valid, dtype=bool).reshape(-1, spec.points),
        types=np.array(types, dtype=np.int64),
    )


def _in_window(
    points: FloatArray, extent_m: tuple[float, float, float, float]
) -> NDArray[np.bool_]:
    xmin, ymin, xmax, ymax = extent_m
    x, y = points[..., 0], points[..., 1]
    inside: NDArray[np.bool_] = (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)
    return inside


def polylines_around(pieces: MapPolylines, poses: ArrayLike, spec: PolylineSpec) -> AgentPolylines:
    """The pieces each agent sees, in its frame, nearest first, padded to ``spec.max_polylines``.

    Args:
        pieces: ``map_polylines(vector_map, spec)`` (same ``segments``).
        poses: (N, 3) city-frame ``[x, y, heading]`` of the agent frames (city_SE2_agent).
        spec: window and count.

    A piece is seen when at least one of its segments has both ends in the window; its distance
    is that of its nearest point in the window, to the millimetre; ties keep the map's order.
    """
    city_poses = check_poses(poses)
    n, p, k = len(city_poses), spec.max_polylines, spec.points
    if pieces.points.shape[1] != k:
        raise ConfigError(f"pieces have {pieces.points.shape[1]} points, the spec {k}")
    out = AgentPolylines(
        points=np.zeros((n, p, k, 2), dtype=np.float32),
        mask=np.zeros((n, p, k), dtype=bool),
        types=np.zeros((n, p), dtype=np.int64),
    )
    if len(pieces) == 0 or n == 0:
        return out
    centres = pieces.points.mean(axis=1, where=pieces.valid[..., None])
    reach = np.linalg.norm(pieces.points - centres[:, None], axis=-1).max(
        axis=1, where=pieces.valid, initial=0.0
    )
    for start in range(0, n, _POSE_BATCH):
        batch = city_poses[start : start + _POSE_BATCH]
        gap = np.linalg.norm(batch[:, None, :2] - centres[None], axis=-1) - reach[None]
        near = np.flatnonzero((gap <= spec.radius_m).any(axis=0))
        if len(near) == 0:
            continue
        local = inverse_transform_points(
            batch, np.broadcast_to(pieces.points[near], (len(batch), len(near), k, 2))
        )
        mask = pieces.valid[near][None] & _in_window(local, spec.extent_m)
        seen = (mask[..., 1:] & mask[..., :-1]).any(axis=-1)
        distance = np.where(mask, np.linalg.norm(local, axis=-1), np.inf).min(axis=-1)
        # Millimetres, so that float noise (a map given in another frame) cannot reorder ties.
        distance = np.where(seen, np.round(distance, 3), np.inf)
        order = np.argsort(distance, axis=1, kind="stable")[:, :p]
        kept = np.take_along_axis(seen, order, axis=1)
        rows = np.arange(len(batch))[:, None]
        chosen_mask = mask[rows, order] & kept[..., None]
        out.points[start : start + len(batch), : order.shape[1]] = np.where(
            chosen_mask[..., None], local[rows, order], 0.0
        )
        out.mask[start : start + len(batch), : order.shape[1]] = chosen_mask
        out.types[start : start + len(batch), : order.shape[1]] = np.where(
            kept, pieces.types[near][order], 0
        )
    return out
