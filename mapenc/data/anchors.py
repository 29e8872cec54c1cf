"""Training-free forecasts from kinematics and the lane graph, in each sample's agent frame (metres).

They are the baselines of every evaluation (``mapenc.evaluation.baselines``) and the anchors the
trajectory model predicts residuals around.

- **Constant velocity** from three velocity estimates: the last step (``past[-1] - past[-2]``),
  a least-squares line over the last ``velocity_window`` steps (``TrajSamples.velocity``), and
  the velocity recorded in the source file where it has one (else the last step).
- **Kinematic, K modes**: constant accelerations ``KINEMATIC_ACCELERATIONS`` (m/s²) along the
  last-step velocity, the speed floored at 0 (a braking mode stops, it never reverses).
- **Walking, K modes**: the last-step velocity turned by an angle and scaled by a pace factor
  (``WALKING_MODES``): pedestrians turn and change pace; they do not brake at 3 m/s².
- **Lane following, K modes**: the agent's lane (the nearest centerline within
  ``LANE_MATCH_RADIUS_M`` whose direction is within ``LANE_MATCH_ANGLE_RAD`` of the heading) is
  followed through the lane graph's successors; each branch is a path, and the modes spread over
  the paths and over constant accelerations (``LANE_ACCELERATIONS``, in that order). The agent's
  offset from the centerline fades out over ``OFFSET_FADE_S``. Agents with no matching lane get
  the kinematic modes.

Every function returns ``(N, K, F, 2)`` forecasts; the K-mode baselines give equal probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from mapenc.data.trajectory import TrajSamples, TrajTask
from mapenc.geometry import inverse_transform_points, rotate_vectors
from mapenc.maps.types import Lane, Scenario, VectorMap

FloatArray = NDArray[np.float64]

KINEMATIC_ACCELERATIONS: tuple[float, ...] = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0)
# (turn in rad, pace factor) of each walking mode, most likely first.
WALKING_MODES: tuple[tuple[float, float], ...] = (
    (0.0, 1.0),
    (0.0, 0.5),
    (0.5, 1.0),
    (-0.5, 1.0),
    (0.0, 1.4),
    (1.3, 0.8),
)
LANE_ACCELERATIONS: tuple[float, ...] = (0.0, -2.0, 1.0, -1.0, 2.0, -3.0)
LANE_MATCH_RADIUS_M = 3.0
LANE_MATCH_ANGLE_RAD = np.pi / 4
OFFSET_FADE_S = 2.0
MAX_LANE_PATHS = 3


def last_step_velocity(samples: TrajSamples, dt: float) -> FloatArray:
    """(N, 2) velocity of the last observed step (m/s, agent frame)."""
    past = samples.past.astype(np.float64)
    velocity: FloatArray = (past[:, -1] - past[:, -2]) / dt
    return velocity


def recorded_velocity(samples: TrajSamples, scenarios: Sequence[Scenario], dt: float) -> FloatArray:
    """(N, 2) velocity the source file records at the prediction step, in the agent frame;
    the last-step velocity where the file records none."""
    velocity = last_step_velocity(samples, dt)
    for index, scenario in enumerate(scenarios):
        rows = np.flatnonzero(samples.scenario_index == index)
        if rows.size == 0:
            continue
        tracks = {track.id: track for track in scenario.tracks}
        for row in rows:
            track = tracks[samples.track_ids[row]]
            if track.velocity is None:
                continue
            v = track.velocity[samples.time_step[row]]
            if not np.isfinite(v).all():
                continue
            velocity[row] = rotate_vectors(-samples.pose[row : row + 1, 2], v[None])[0]
    return velocity


def travelled(speed: FloatArray, acceleration: float, times: FloatArray) -> FloatArray:
    """Distance (m) after ``times`` (T,) s at constant ``acceleration`` from ``speed`` (N,),
    the speed floored at 0: (N, T)."""
    v = speed[:, None]
    if acceleration >= 0:
        distance: FloatArray = v * times + 0.5 * acceleration * times**2
        return distance
    stop_time = v / -acceleration
    t = np.minimum(times[None, :], stop_time)
    return np.asarray(v * t + 0.5 * acceleration * t**2, dtype=np.float64)


def kinematic_forecast(
    velocity: FloatArray,
    future_steps: int,
    dt: float,
    accelerations: Sequence[float] = KINEMATIC_ACCELERATIONS,
) -> FloatArray:
    """(N, K, F, 2): K constant accelerations along ``velocity`` (N, 2) m/s, speed floored at 0."""
    times = np.arange(1, future_steps + 1, dtype=np.float64) * dt
    speed = np.linalg.norm(velocity, axis=-1)
    direction = np.where(speed[:, None] > 1e-6, velocity / np.maximum(speed, 1e-6)[:, None], 0.0)
    direction[speed <= 1e-6] = [1.0, 0.0]
    modes = [travelled(speed, a, times)[..., None] * direction[:, None, :] for a in accelerations]
    return np.stack(modes, axis=1)


def walking_forecast(
    velocity: FloatArray,
    future_steps: int,
    dt: float,
    modes: Sequence[tuple[float, float]] = WALKING_MODES,
) -> FloatArray:
    """(N, K, F, 2): constant ``velocity`` (N, 2) m/s turned by each mode's angle (rad) and scaled
    by its pace factor."""
    times = np.arange(1, future_steps + 1, dtype=np.float64) * dt
    turned = np.stack(
        [pace * rotate_vectors(np.full(len(velocity), turn), velocity) for turn, pace in modes],
        axis=1,
    )
    return turned[:, :, None, :] * times[None, None, :, None]


@lru_cache(maxsize=64)
def _lane_index(vector_map: VectorMap) -> dict[str, Lane]:
    return {lane.id: lane for lane in vector_map.lanes}


def _polyline_lengths(line: FloatArray) -> FloatArray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])


def _project(point: FloatArray, line: FloatArray) -> tuple[float, float, float]:
    """(distance to ``line`` (K, 2), arc length of the nearest point, direction there in rad)."""
    a, b = line[:-1], line[1:]
    ab = b - a
    length2 = np.maximum(np.sum(ab**2, axis=1), 1e-12)
    u = np.clip(np.sum((point - a) * ab, axis=1) / length2, 0.0, 1.0)
    nearest = a + u[:, None] * ab
    distance = np.linalg.norm(nearest - point, axis=1)
    i = int(np.argmin(distance))
    arc = _polyline_lengths(line)[i] + u[i] * np.sqrt(length2[i])
    return float(distance[i]), float(arc), float(np.arctan2(ab[i, 1], ab[i, 0]))


def match_lane(vector_map: VectorMap, pose: FloatArray) -> tuple[Lane, float, float] | None:
    """The lane the agent at ``pose`` [x, y, heading] (city frame) drives on, with its distance
    and the arc length of the agent's projection on its centerline; None when no lane fits."""
    x, y, heading = pose
    r = LANE_MATCH_RADIUS_M
    best: tuple[float, Lane, float] | None = None
    lanes = vector_map.lanes
    for index in vector_map.query((x - r, y - r, x + r, y + r)).lanes:
        lane = lanes[int(index)]
        if len(lane.centerline) < 2:
            continue
        distance, arc, direction = _project(np.array([x, y]), lane.centerline)
        turn = abs((direction - heading + np.pi) % (2 * np.pi) - np.pi)
        if distance > r or turn > LANE_MATCH_ANGLE_RAD:
            continue
        score = distance + 2.0 * turn
        if best is None or score < best[0]:
            best = (score, lane, arc)
    if best is None:
        return None
    return best[1], best[0], best[2]


def lane_paths(
    vector_map: VectorMap, lane: Lane, start_arc: float, length: float
) -> list[FloatArray]:
    """Up to ``MAX_LANE_PATHS`` centerline paths (K, 2) from ``start_arc`` on ``lane`` through its
    successors, each at least ``length`` m long where the graph allows (depth-first, in order)."""
    index = _lane_index(vector_map)
    paths: list[FloatArray] = []

    def walk(line: FloatArray, current: Lane, depth: int) -> None:
        if len(paths) >= MAX_LANE_PATHS:
            return
        following = [index[s] for s in current.successors if s in index]
        if _polyline_lengths(line)[-1] >= length or not following or depth > 8:
            paths.append(line)
            return
        for successor in following:
            walk(np.concatenate([line, successor.centerline[1:]]), successor, depth + 1)

    arcs = _polyline_lengths(lane.centerline)
    after = arcs > start_arc
    start = np.interp(start_arc, arcs, np.arange(len(arcs)))
    first_point = lane.centerline[int(np.floor(start))] + (start - np.floor(start)) * (
        lane.centerline[min(int(np.floor(start)) + 1, len(arcs) - 1)]
        - lane.centerline[int(np.floor(start))]
    )
    walk(np.concatenate([first_point[None], lane.centerline[after]]), lane, 0)
    return paths


def _along(path: FloatArray, distance: FloatArray) -> FloatArray:
    """Points at arc lengths ``distance`` (T,) along ``path`` (K, 2), extrapolated straight."""
    arcs = _polyline_lengths(path)
    if arcs[-1] <= 1e-6:
        return np.repeat(path[:1], len(distance), axis=0)
    x = np.interp(distance, arcs, path[:, 0])
    y = np.interp(distance, arcs, path[:, 1])
    beyond = distance > arcs[-1]
    if beyond.any():
        tail = path[-1] - path[-2] if len(path) > 1 else np.zeros(2)
        tail = tail / max(float(np.linalg.norm(tail)), 1e-6)
        extra = distance[beyond] - arcs[-1]
        x[beyond] = path[-1, 0] + extra * tail[0]
        y[beyond] = path[-1, 1] + extra * tail[1]
    return np.stack([x, y], axis=-1)


def lane_following_forecast(
    samples: TrajSamples, scenarios: Sequence[Scenario], task: TrajTask, k: int = 6
) -> FloatArray:
    """(N, k, F, 2) lane-following modes (see the module docstring), agent frame."""
    velocity = last_step_velocity(samples, task.dt)
    fallback = kinematic_forecast(velocity, task.future_steps, task.dt)
    forecasts = (
        np.repeat(fallback[:, :1], k, axis=1) if fallback.shape[1] < k else fallback[:, :k].copy()
    )
    times = np.arange(1, task.future_steps + 1, dtype=np.float64) * task.dt
    fade = np.clip(1.0 - times / OFFSET_FADE_S, 0.0, 1.0)[:, None]
    speed = np.linalg.norm(velocity, axis=-1)
    for row in range(len(samples)):
        pose = samples.pose[row]
        scenario = scenarios[int(samples.scenario_index[row])]
        match = match_lane(scenario.map, pose)
        if match is None:
            continue
        lane, _, arc = match
        reach = speed[row] * times[-1] + 0.5 * max(LANE_ACCELERATIONS) * times[-1] ** 2 + 1.0
        paths = lane_paths(scenario.map, lane, arc, reach)
        for mode in range(k):
            path = paths[mode % len(paths)]
            acceleration = LANE_ACCELERATIONS[(mode // len(paths)) % len(LANE_ACCELERATIONS)]
            distance = travelled(speed[row : row + 1], acceleration, times)[0]
            city = _along(path, distance) + (pose[:2] - path[0]) * fade
            forecasts[row, mode] = inverse_transform_points(pose[None], city[None])[0]
    return forecasts
