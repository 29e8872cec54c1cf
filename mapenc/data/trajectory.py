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
        dt: seconds per step; scenarios at another step size are resampled to it
            (``resampling``).
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


def _prediction_times(
    valid: NDArray[np.bool_], task: TrajTask, recorded: NDArray[np.bool_] | None = None
) -> list[int]:
    """Steps t with ``valid`` true over [t - history, t + future], every ``stride_steps`` per run;
    with ``recorded`` (task steps that fall on a recorded step), only times t whose current and
    final steps were recorded, not interpolated."""
    times: list[int] = []
    padded = np.concatenate([[False], valid, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        first, last = start + task.history_steps, stop - 1 - task.future_steps
        times.extend(range(int(first), int(last) + 1, task.stride_steps))
    if recorded is None:
        return times
    return [t for t in times if recorded[t] and recorded[t + task.future_steps]]


def _agent_heading(track: Track, t: int) -> float:
    """Heading at step t; from the last displacement where the source gives none."""
    heading = float(track.heading[t])
    if np.isfinite(heading):
        return heading
    step = track.xy[t] - track.xy[t - 1]
    return float(np.arctan2(step[1], step[0]))


# Step sizes within this fraction of a whole multiple of the task's count as that multiple (AV2
# sensor logs tick at 0.1002 s for a 0.1 s task).
STEP_TOLERANCE = 0.01


@dataclass(frozen=True)
class Resampling:
    """How a scene's steps of ``source_dt`` seconds become the task's steps of ``task_dt``.

    Attributes:
        source_dt, task_dt: seconds per step of the scene and of the task.
        method: "none" (same rate), "decimate" (the task keeps every ``task_dt / source_dt``-th
            recorded step) or "interpolate" (positions, headings and velocities linearly
            interpolated between the two recorded steps around each task step, as trajdata does;
            a task step is valid when both are).
    """

    source_dt: float
    task_dt: float
    method: str

    @property
    def ratio(self) -> float:
        """Scene steps per task step (2.0 for 20 Hz data and a 10 Hz task, 0.5 for 5 Hz data)."""
        if self.method == "interpolate":
            return self.task_dt / self.source_dt
        return float(round(self.task_dt / self.source_dt))

    def positions(self, num_source_steps: int) -> FloatArray:
        """(S,) scene step (fractional) of each task step 0..S-1 inside the recording."""
        count = int(np.floor((num_source_steps - 1) / self.ratio + 1e-9)) + 1
        return np.arange(max(count, 0), dtype=np.float64) * self.ratio

    def recorded(self, num_source_steps: int) -> NDArray[np.bool_]:
        """(S,) whether each task step falls on a recorded scene step."""
        positions = self.positions(num_source_steps)
        return np.abs(positions - np.round(positions)) < 1e-6

    def describe(self) -> str:
        """One line for reports, e.g. "interpolated 0.2 s -> 0.1 s"."""
        if self.method == "none":
            return f"as recorded ({self.task_dt} s)"
        done = "decimated" if self.method == "decimate" else "interpolated"
        return f"{done} {self.source_dt} s -> {self.task_dt} s"


def resampling(scenario: Scenario, task: TrajTask) -> Resampling:
    """How ``scenario``'s steps become ``task``'s: the same, a whole multiple of them within
    ``STEP_TOLERANCE`` (decimated), or any other step size (interpolated)."""
    if not scenario.dt > 0:
        raise DataError(f"{scenario.source or 'scenario'}: time step {scenario.dt} s is not > 0")
    ratio = task.dt / scenario.dt
    multiple = round(ratio)
    if multiple >= 1 and abs(ratio - multiple) <= STEP_TOLERANCE * multiple:
        return Resampling(scenario.dt, task.dt, "none" if multiple == 1 else "decimate")
    return Resampling(scenario.dt, task.dt, "interpolate")


def resample_track(track: Track, plan: Resampling) -> Track:
    """``track`` on the task's steps (``plan.positions``): every few recorded steps, or linear
    interpolation between the recorded steps around each task step (heading along the shorter
    way round; valid where both neighbours are)."""
    positions = plan.positions(track.valid.shape[0])
    if plan.method != "interpolate":
        index = np.round(positions).astype(np.intp)
        return dataclasses.replace(
            track,
            xy=track.xy[index],
            heading=track.heading[index],
            valid=track.valid[index],
            velocity=None if track.velocity is None else track.velocity[index],
        )
    below = np.floor(positions + 1e-9).astype(np.intp)
    above = np.minimum(below + 1, track.valid.shape[0] - 1)
    weight = np.clip(positions - below, 0.0, 1.0)
    on_step = weight < 1e-6  # recorded steps keep their values (their neighbour may be missing)

    def blend(values: FloatArray, difference: FloatArray) -> FloatArray:
        shape = (-1, *([1] * (values.ndim - 1)))
        between = values[below] + weight.reshape(shape) * difference
        out: FloatArray = np.where(on_step.reshape(shape), values[below], between)
        return out

    return dataclasses.replace(
        track,
        xy=blend(track.xy, track.xy[above] - track.xy[below]),
        heading=wrap_angle(
            blend(track.heading, wrap_angle(track.heading[above] - track.heading[below]))
        ),
        valid=track.valid[below] & (on_step | track.valid[above]),
        velocity=None
        if track.velocity is None
        else blend(track.velocity, track.velocity[above] - track.velocity[below]),
    )


def extract_samples(scenario: Scenario, task: TrajTask, scenario_index: int = 0) -> TrajSamples:
    """Every sample of ``scenario`` for ``task`` (possibly none).

    Scenes at another rate are resampled to the task's (``resampling``: decimated, or
    interpolated between recorded steps); a sample's prediction time and final future step are
    always recorded steps, and ``time_step`` stays in the scene's own steps.
    """
    plan = resampling(scenario, task)
    recorded = None if plan.method != "interpolate" else plan.recorded(scenario.num_steps)
    rows: list[tuple[Track, int, SE2]] = []
    for full_track in scenario.tracks:
        if task.kinds and full_track.kind not in task.kinds:
            continue
        track = full_track if plan.method == "none" else resample_track(full_track, plan)
        for t in _prediction_times(track.valid, task, recorded):
            pose = SE2(_agent_heading(track, t), track.xy[t])
            rows.append((track, t, pose))
    samples = _samples_from_rows(rows, task, scenario_index)
    if plan.method == "none":
        return samples
    scene_steps = np.round(samples.time_step * plan.ratio).astype(np.int64)
    return dataclasses.replace(samples, time_step=scene_steps)


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
