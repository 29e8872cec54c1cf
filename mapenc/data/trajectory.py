"""Trajectory samples: past and future of one agent at one prediction time, in its own frame.

A sample is cut wherever an agent is observed without gap over ``history_steps + 1 + future_steps``
steps. The agent frame is the agent's pose at the prediction time (origin at its position, +x
along its heading, +y to its left), so every past ends at the origin heading +x.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mapenc.errors import ConfigError, DataError
from mapenc.geometry import SE2, inverse_transform_points, wrap_angle
from mapenc.maps.types import Scenario, Track

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrajTask:
    """What to predict from what.

    Attributes:
        history_steps: past steps before the current one (the model sees history_steps + 1 points).
        future_steps: steps to predict after the current one.
        dt: seconds per step; scenarios with another step size are rejected.
        stride_steps: steps between two prediction times of the same agent.
        velocity_window: past steps over which the current velocity is fitted (noisy positions).
        kinds: agent kinds to sample (lower case); empty for every kind.
    """

    history_steps: int = 10
    future_steps: int = 30
    dt: float = 0.1
    stride_steps: int = 10
    velocity_window: int = 5
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.history_steps < 1 or self.future_steps < 1 or self.stride_steps < 1:
            raise ConfigError("TrajTask needs history_steps, future_steps, stride_steps >= 1")
        if not 1 <= self.velocity_window <= self.history_steps:
            raise ConfigError(
                f"TrajTask.velocity_window must be in 1..history_steps, got {self.velocity_window}"
            )
        if not self.dt > 0:
            raise ConfigError(f"TrajTask.dt must be > 0, got {self.dt}")

    @property
    def window_steps(self) -> int:
        """Steps one sample spans: history, the current step, and the future."""
        return self.history_steps + 1 + self.future_steps


# Agents that move on their own (AV2's object types; CommonRoad kinds map onto them): parked
# objects, cones and the like are never forecast.
MOVING_KINDS = ("vehicle", "bus", "truck", "cyclist", "motorcyclist", "pedestrian")
# NGSIM CommonRoad scenes at 10 Hz: 1 s of history (10 steps + current) -> 3 s of future.
NGSIM_TASK = TrajTask(
    history_steps=10, future_steps=30, dt=0.1, stride_steps=10, kinds=MOVING_KINDS
)
# Argoverse 2 motion forecasting: 5 s observed (49 steps + current) -> 6 s future.
AV2_TASK = TrajTask(
    history_steps=49,
    future_steps=60,
    dt=0.1,
    stride_steps=60,
    kinds=MOVING_KINDS,
)


@dataclass(frozen=True)
class TrajSamples:
    """N samples as parallel arrays; positions in each sample's agent frame (metres).

    Attributes:
        past: (N, history_steps + 1, 2) float32; ``past[:, -1]`` is the origin.
        past_heading: (N, history_steps + 1) float32, rad relative to the agent's heading.
        future: (N, future_steps, 2) float32.
        velocity: (N, 2) float32, current velocity fitted over ``velocity_window`` steps (m/s).
        pose: (N, 3) float64 city-frame ``[x, y, heading]`` of the agent frame (city_SE2_agent).
        scenario_index: (N,) int64 index of the scenario in the list the samples came from.
        time_step: (N,) int64 prediction time step in that scenario.
        track_ids: (N,) the track of each sample.
        kinds: (N,) the agent kind of each sample.
    """

    past: NDArray[np.float32]
    past_heading: NDArray[np.float32]
    future: NDArray[np.float32]
    velocity: NDArray[np.float32]
    pose: FloatArray
    scenario_index: NDArray[np.int64]
    time_step: NDArray[np.int64]
    track_ids: tuple[str, ...]
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.past.shape[0])

    def subset(self, index: Sequence[int] | NDArray[np.intp]) -> TrajSamples:
        """The samples at ``index`` (any integer index array), in that order."""
        idx = np.asarray(index, dtype=np.intp)
        return TrajSamples(
            past=self.past[idx],
            past_heading=self.past_heading[idx],
            future=self.future[idx],
            velocity=self.velocity[idx],
            pose=self.pose[idx],
            scenario_index=self.scenario_index[idx],
            time_step=self.time_step[idx],
            track_ids=tuple(self.track_ids[i] for i in idx),
            kinds=tuple(self.kinds[i] for i in idx),
        )


def fit_velocity(past: FloatArray, dt: float, window: int) -> FloatArray:
    """Current velocity (N, 2) from the last ``window + 1`` points of ``past`` (N, P, 2).

    A least-squares line through the points (one slope per axis) instead of the last difference:
    NGSIM positions jitter by decimetres from one step to the next.
    """
    pts = past[:, -(window + 1) :]
    t = np.arange(pts.shape[1], dtype=np.float64) * dt
    t_centered = t - t.mean()
    slope: FloatArray = np.einsum("t,ntd->nd", t_centered, pts - pts.mean(axis=1, keepdims=True))
    return slope / float(np.sum(t_centered**2))


def constant_velocity_forecast(
    velocity: NDArray[np.floating], future_steps: int, dt: float
) -> FloatArray:
    """(N, future_steps, 2) positions reached from the origin at constant ``velocity`` (N, 2)."""
    times = np.arange(1, future_steps + 1, dtype=np.float64) * dt
    return np.asarray(velocity, dtype=np.float64)[:, None, :] * times[None, :, None]


def _prediction_times(valid: NDArray[np.bool_], task: TrajTask) -> list[int]:
    """Steps t with ``valid`` true over [t - history, t + future], every ``stride_steps`` per run."""
    times: list[int] = []
    padded = np.concatenate([[False], valid, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        first, last = start + task.history_steps, stop - 1 - task.future_steps
        times.extend(range(int(first), int(last) + 1, task.stride_steps))
    return times


def _agent_heading(track: Track, t: int) -> float:
    """Heading at step t; from the last displacement where the source gives none."""
    heading = float(track.heading[t])
    if np.isfinite(heading):
        return heading
    step = track.xy[t] - track.xy[t - 1]
    return float(np.arctan2(step[1], step[0]))


def steps_per_task_step(scenario: Scenario, task: TrajTask) -> int:
    """How many of the scenario's steps make one task step (1 at the task's rate, 2 for 20 Hz
    data and a 10 Hz task, ...); DataError unless ``task.dt`` is a whole multiple of
    ``scenario.dt`` within 1 % (AV2 sensor logs tick at 0.1002 s)."""
    ratio = task.dt / scenario.dt
    multiple = round(ratio)
    if multiple < 1 or abs(ratio - multiple) > 0.01 * multiple:
        raise DataError(
            f"{scenario.source or 'scenario'}: time step {scenario.dt} s, the task expects "
            f"{task.dt} s (or a whole fraction of it)"
        )
    return multiple


def _every(track: Track, multiple: int) -> Track:
    """``track`` keeping every ``multiple``-th step (from step 0)."""
    return dataclasses.replace(
        track,
        xy=track.xy[::multiple],
        heading=track.heading[::multiple],
        valid=track.valid[::multiple],
        velocity=None if track.velocity is None else track.velocity[::multiple],
    )


def extract_samples(scenario: Scenario, task: TrajTask, scenario_index: int = 0) -> TrajSamples:
    """Every sample of ``scenario`` for ``task`` (possibly none).

    Scenes recorded faster than the task (a whole multiple) are read every few steps;
    ``time_step`` stays in the scene's own steps. Raises DataError for other step sizes.
    """
    multiple = steps_per_task_step(scenario, task)
    rows: list[tuple[Track, int, SE2]] = []
    for full_track in scenario.tracks:
        if task.kinds and full_track.kind not in task.kinds:
            continue
        track = full_track if multiple == 1 else _every(full_track, multiple)
        for t in _prediction_times(track.valid, task):
            pose = SE2(_agent_heading(track, t), track.xy[t])
            rows.append((track, t, pose))
    samples = _samples_from_rows(rows, task, scenario_index)
    return (
        samples
        if multiple == 1
        else dataclasses.replace(samples, time_step=samples.time_step * multiple)
    )


def _samples_from_rows(
    rows: list[tuple[Track, int, SE2]], task: TrajTask, scenario_index: int
) -> TrajSamples:
    n, h, f = len(rows), task.history_steps, task.future_steps
    pose = np.array(
        [
            [*city_SE2_agent.translation, city_SE2_agent.rotation_rad]
            for _, _, city_SE2_agent in rows
        ]
    ).reshape(n, 3)
    windows_city = np.array([track.xy[t - h : t + f + 1] for track, t, _ in rows]).reshape(
        n, h + f + 1, 2
    )
    windows = inverse_transform_points(pose, windows_city) if n else windows_city
    past, future = windows[:, : h + 1], windows[:, h + 1 :]
    headings = np.array([track.heading[t - h : t + 1] for track, t, _ in rows]).reshape(n, h + 1)
    past_heading = np.nan_to_num(wrap_angle(headings - pose[:, 2:3]))
    return TrajSamples(
        past=past.astype(np.float32),
        past_heading=past_heading.astype(np.float32),
        future=future.astype(np.float32),
        velocity=fit_velocity(past, task.dt, task.velocity_window).astype(np.float32),
        pose=pose,
        scenario_index=np.full(n, scenario_index, dtype=np.int64),
        time_step=np.array([t for _, t, _ in rows], dtype=np.int64),
        track_ids=tuple(track.id for track, _, _ in rows),
        kinds=tuple(track.kind for track, _, _ in rows),
    )


def concat_samples(parts: Sequence[TrajSamples]) -> TrajSamples:
    """One TrajSamples holding ``parts`` in order; DataError when there are none."""
    if not parts:
        raise DataError("no trajectory samples to concatenate")
    return TrajSamples(
        past=np.concatenate([p.past for p in parts]),
        past_heading=np.concatenate([p.past_heading for p in parts]),
        future=np.concatenate([p.future for p in parts]),
        velocity=np.concatenate([p.velocity for p in parts]),
        pose=np.concatenate([p.pose for p in parts]),
        scenario_index=np.concatenate([p.scenario_index for p in parts]),
        time_step=np.concatenate([p.time_step for p in parts]),
        track_ids=tuple(i for p in parts for i in p.track_ids),
        kinds=tuple(k for p in parts for k in p.kinds),
    )


def samples_from_scenarios(scenarios: Sequence[Scenario], task: TrajTask) -> TrajSamples:
    """Samples of every scenario (``scenario_index`` = position in ``scenarios``).

    Raises DataError naming the scenarios when none holds a long enough track.
    """
    parts = [extract_samples(sc, task, i) for i, sc in enumerate(scenarios)]
    samples = concat_samples(parts) if parts else None
    if samples is None or len(samples) == 0:
        names = ", ".join(sc.source or "<in memory>" for sc in scenarios[:5])
        raise DataError(
            f"no agent is observed for {task.window_steps} consecutive steps "
            f"({task.history_steps} past + current + {task.future_steps} future) in {len(scenarios)} "
            f"scenario(s): {names}"
        )
    return samples
