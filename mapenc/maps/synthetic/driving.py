"""How synthetic agents move along a route: dense paths, speed profiles, car following.

City frame, metres, seconds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mapenc.maps.synthetic.config import AgentProfile, ScenarioConfig
from mapenc.maps.types import FloatArray, Lane

# Spacing (metres) of the dense path samples agents are driven along.
PATH_STEP_M = 0.5

# Car following: agents within this distance (metres) of a road user's heading line count as in
# its way; it keeps this time gap (seconds) plus this distance (metres) behind them, braking at
# most this hard (m/s^2).
FOLLOW_CORRIDOR_M = 1.8

FOLLOW_HEADWAY_S = 1.2

FOLLOW_MIN_GAP_M = 2.0
FOLLOW_BRAKE_MPS2 = 4.0

FOLLOW_BRAKE_MPS2 = 4.0


@dataclass(frozen=True)
class _Path:
    """A polyline resampled every PATH_STEP_M metres.

    Attributes:
        xy: (M, 2) city-frame points (metres).
        s: (M,) arc length from the first point (metres).
        heading: (M,) unwrapped direction of travel (rad).
        in_junction: (M,) bool, the point lies on an intersection lane.
    """

    xy: FloatArray
    s: FloatArray
    heading: FloatArray
    in_junction: np.ndarray

    @property
    def turn_curvature(self) -> FloatArray:
        """(M,) largest |curvature| (1/m) within 2.5 m of each point: the peak a driver slows for,
        and robust to the kinks where lanes join."""
        raw = np.abs(np.gradient(self.heading, self.s)) if len(self.s) > 1 else np.zeros(1)
        return sliding_window_view(np.pad(raw, 5, mode="edge"), 11).max(axis=1)

    def offset(self, lateral_m: FloatArray) -> _Path:
        """The path shifted sideways by ``lateral_m`` (M,, metres, + left), resampled by its own
        arc length (on a curve the inner side is shorter)."""
        left_normals = np.stack([-np.sin(self.heading), np.cos(self.heading)], axis=1)
        return _resample_path(self.xy + lateral_m[:, None] * left_normals, self.in_junction)

    def tail(self, start_m: float) -> _Path:
        """The part of the path from arc length ``start_m`` on, with s starting again at 0."""
        first = min(int(start_m / PATH_STEP_M), len(self.s) - 1)
        return _Path(
            self.xy[first:],
            self.s[first:] - self.s[first],
            self.heading[first:],
            self.in_junction[first:],
        )


def _resample_path(xy: FloatArray, in_junction: np.ndarray) -> _Path:
    """A _Path through the (K, 2) points ``xy``; ``in_junction`` (K,) bool marks junction points."""
    keep = np.concatenate([[True], np.linalg.norm(np.diff(xy, axis=0), axis=1) > 1e-9])
    xy, in_junction = xy[keep], in_junction[keep]
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    s = np.arange(0.0, cum[-1] + 1e-9, PATH_STEP_M)
    dense = np.stack([np.interp(s, cum, xy[:, 0]), np.interp(s, cum, xy[:, 1])], axis=1)
    step = np.gradient(dense, axis=0) if len(s) > 1 else np.diff(xy[:2], axis=0)
    heading = np.unwrap(np.arctan2(step[:, 1], step[:, 0]))
    return _Path(dense, s, heading, np.interp(s, cum, in_junction.astype(float)) > 0.5)


def _drive_route(
    lanes_by_id: dict[str, Lane],
    start: Lane,
    start_offset_m: float,
    length_m: float,
    rng: np.random.Generator,
) -> _Path:
    """The centerline path from ``start_offset_m`` along ``start`` on through random successors,
    about ``length_m`` long (shorter where no successor is in the map)."""
    lane = start
    points = [lane.centerline]
    flags = [np.full(len(lane.centerline), lane.is_intersection)]
    covered = lane.length_m - start_offset_m
    while covered < length_m:
        options = [lane_id for lane_id in lane.successors if lane_id in lanes_by_id]
        if not options:
            break
        lane = lanes_by_id[options[rng.integers(len(options))]]
        points.append(lane.centerline[1:])
        flags.append(np.full(len(lane.centerline) - 1, lane.is_intersection))
        covered += lane.length_m
    return _resample_path(np.concatenate(points), np.concatenate(flags)).tail(start_offset_m)


def _speed_profile(path: _Path, cruise_mps: float, profile: AgentProfile) -> FloatArray:
    """(M,) speed (m/s) along ``path``: cruise, capped by curvature and in junctions, with
    acceleration and braking limits, coming to rest at the end of the path (reached only where a
    route runs into a lane without successors: routes are planned longer than agents drive)."""
    limit = np.full(len(path.s), cruise_mps)
    limit = np.minimum(
        limit, np.sqrt(profile.lateral_accel_mps2 / np.maximum(path.turn_curvature, 1e-6))
    )
    limit[path.in_junction] = np.minimum(
        limit[path.in_junction], profile.junction_speed_factor * cruise_mps
    )
    limit[-1] = 0.0
    # In v^2 the limits are linear in s: v_i^2 <= v_j^2 + 2 a |s_i - s_j|; running minima apply
    # them over every j at once.
    v2 = limit**2
    reach_up = 2 * profile.accel_mps2 * path.s
    v2 = np.minimum(v2, np.minimum.accumulate(v2 - reach_up) + reach_up)
    reach_down = 2 * profile.decel_mps2 * (path.s[-1] - path.s)
    v2 = np.minimum(v2, np.minimum.accumulate((v2 - reach_down)[::-1])[::-1] + reach_down)
    return np.sqrt(np.maximum(v2, 0.0))


def _smooth_noise(
    rng: np.random.Generator, x: FloatArray, scale: float, periods: tuple[float, float]
) -> FloatArray:
    """Smooth zero-mean noise of standard deviation about ``scale`` over ``x``: three sinusoids
    with random periods in ``periods`` (same unit as ``x``) and random phases."""
    period = rng.uniform(*periods, size=3)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    waves = np.sin(2 * np.pi * x[:, None] / period + phase)
    return scale * np.sqrt(2.0 / 3.0) * waves.sum(axis=1)


@dataclass(frozen=True)
class _Plan:
    """What one agent means to do before it meets the others.

    Attributes:
        kind: "vehicle", "cyclist" or "pedestrian".
        path: where it goes.
        speed: (M,) the speed it wants along ``path`` (m/s).
        accel_mps2: how fast it speeds up.
        start_delay_s: how long it stands still first; 0 means it starts at ``speed[0]``.
        length_m, width_m: box size (metres).
    """

    kind: str
    path: _Path
    speed: FloatArray
    accel_mps2: float
    start_delay_s: float
    length_m: float
    width_m: float


def _gaps_ahead(
    xy: FloatArray, heading: FloatArray, road: np.ndarray, half_length: FloatArray
) -> FloatArray:
    """(N,) free distance (metres, box to box) from each road user to the nearest agent in its
    corridor ahead: a road user going roughly its way or a pedestrian; inf where there is none.

    Args: xy (N, 2) and heading (N,) now, city frame; road (N,) bool, the agent is a road user
    (else a pedestrian); half_length (N,) metres. When two agents each see the other ahead, only
    the later one yields.
    """
    forward = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    offset = xy[None, :, :] - xy[:, None, :]  # [i, j]: from agent i to agent j
    ahead = np.einsum("ijk,ik->ij", offset, forward)
    side = offset[..., 1] * forward[:, None, 0] - offset[..., 0] * forward[:, None, 1]
    same_way = np.cos(heading[None, :] - heading[:, None]) > 0.5
    in_corridor = (ahead > 0) & (np.abs(side) < FOLLOW_CORRIDOR_M) & ~np.eye(len(xy), dtype=bool)
    leads = in_corridor & road[:, None] & ((road[None, :] & same_way) | ~road[None, :])
    leads &= ~(leads & leads.T & np.tri(len(xy), k=-1, dtype=bool).T)
    gap = ahead - half_length[:, None] - half_length[None, :]
    return np.where(leads, gap, np.inf).min(axis=1, initial=np.inf)


def _padded(rows: list[FloatArray], width: int) -> FloatArray:
    """(N, width, ...) stack of arrays (M_i, ...), each padded with its last row."""
    return np.stack([np.concatenate([r, np.repeat(r[-1:], width - len(r), axis=0)]) for r in rows])


def _drive(
    plans: list[_Plan], config: ScenarioConfig
) -> list[tuple[FloatArray, FloatArray, FloatArray]]:
    """Move every agent along its plan, all in the same time steps: each goes at the speed it
    wants, no faster than its acceleration allows and, for road users, no faster than keeps
    FOLLOW_HEADWAY_S behind the agent ahead (braking at most FOLLOW_BRAKE_MPS2).
    Returns per agent xy (T, 2), heading (T,) and velocity (T, 2), city frame."""
    num, steps, dt = len(plans), config.num_steps, config.dt
    # Paths are sampled every PATH_STEP_M from s = 0, so sample k sits at s = k * PATH_STEP_M.
    width = max(max(len(p.path.s) for p in plans), 2)
    path_xy = _padded([p.path.xy for p in plans], width)
    path_heading = _padded([p.path.heading for p in plans], width)
    path_speed = _padded([p.speed for p in plans], width)
    path_end = np.array([p.path.s[-1] for p in plans])
    delay = np.array([p.start_delay_s for p in plans])
    accel = np.array([p.accel_mps2 for p in plans])
    road = np.array([p.kind != "pedestrian" for p in plans])
    half_length = np.array([p.length_m / 2 for p in plans])
    rows = np.arange(num)
    s = np.zeros(num)
    v = np.zeros(num)
    xy = np.zeros((steps, num, 2))
    heading = np.zeros((steps, num))
    speed = np.zeros((steps, num))
    for t in range(steps):
        k = np.minimum((s / PATH_STEP_M).astype(int), width - 2)
        frac = s / PATH_STEP_M - k
        xy[t] = path_xy[rows, k] + frac[:, None] * (path_xy[rows, k + 1] - path_xy[rows, k])
        heading[t] = path_heading[rows, k] + frac * (
            path_heading[rows, k + 1] - path_heading[rows, k]
        )
        wanted = path_speed[rows, k] + frac * (path_speed[rows, k + 1] - path_speed[rows, k])
        wanted[t * dt < delay] = 0.0
        gap = _gaps_ahead(xy[t], heading[t], road, half_length)
        target = np.minimum(wanted, np.maximum(gap - FOLLOW_MIN_GAP_M, 0.0) / FOLLOW_HEADWAY_S)
        if t == 0:
            v = np.where(delay == 0, target, 0.0)
        else:
            v = np.clip(target, np.maximum(v - FOLLOW_BRAKE_MPS2 * dt, 0.0), v + accel * dt)
        speed[t] = v
        s = np.minimum(s + v * dt, path_end)
    velocity = speed[..., None] * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
    return [(xy[:, i], heading[:, i], velocity[:, i]) for i in range(num)]
