"""Trajectory types of the Waymo Open Dataset motion metrics: what an agent truly did next.

The rule is ``ClassifyTrack`` of ``waymo_open_dataset/metrics/motion_metrics_utils.cc`` with the
thresholds of its first (2021) release. The start state is the last observed one, the end state
the last valid future one. With ``(dx, dy)`` the displacement from start to end in the start
state's frame (+x along its heading, +y to its left), ``dpsi`` the heading change wrapped to
[-pi, pi) and ``max_speed`` the larger of the two states' speeds:

- ``stationary``: ``max_speed < 2.0`` m/s and ``|(dx, dy)| < 5.0`` m;
- else, when ``|dpsi| < pi/6``: ``straight`` if ``|dy| < 5.0`` m, else ``straight_right`` if
  ``dy < 0``, else ``straight_left``;
- else, when ``dpsi < -pi/6`` and ``dy < 0``: ``right_u_turn`` if ``dx < -5.0`` m, else
  ``right_turn``;
- else ``left_u_turn`` if ``dx < -5.0`` m, else ``left_turn``.

Every comparison is strict, as in the original. Two aggregates go beside the eight types:
``moving`` (all but stationary) and ``turning`` (the turns and U-turns).

A trajectory sample (``mapenc.data.trajectory.TrajSamples``) holds positions only for its
future, so ``classify_futures`` derives the end state from them: the end velocity is a
least-squares fit over the last ``END_VELOCITY_WINDOW_S`` of positions (the same fit as the
sample's current velocity: recorded positions jitter by decimetres from step to step), and the
end heading is the direction of travel over the last ``END_HEADING_BASELINE_M`` metres (the chord
from the latest earlier position at least that far from the end; the start heading when the agent
never got that far, as it has then not measurably turned).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mapenc.data.trajectory import TrajSamples, fit_velocity
from mapenc.errors import DataError
from mapenc.geometry import wrap_angle

FloatArray = NDArray[np.float64]
TypeCodes = NDArray[np.int8]

# Waymo's TrajectoryType enum, in its order: a type's code is its index here.
TRAJECTORY_TYPES: tuple[str, ...] = (
    "stationary",
    "straight",
    "straight_left",
    "straight_right",
    "left_u_turn",
    "left_turn",
    "right_u_turn",
    "right_turn",
)
TURNING_TYPES: tuple[str, ...] = ("left_u_turn", "left_turn", "right_u_turn", "right_turn")
# Every group a report breaks scores down by: the aggregates first (what a reader looks at after
# all agents), then the eight types.
TYPE_GROUPS: tuple[str, ...] = ("moving", "turning", *TRAJECTORY_TYPES)

MAX_SPEED_FOR_STATIONARY_MPS = 2.0
MAX_DISPLACEMENT_FOR_STATIONARY_M = 5.0
MAX_LATERAL_DISPLACEMENT_FOR_STRAIGHT_M = 5.0
MIN_LONGITUDINAL_DISPLACEMENT_FOR_U_TURN_M = -5.0
MAX_ABS_HEADING_DIFF_FOR_STRAIGHT_RAD = np.pi / 6.0

# How the end state is read off future positions (see the module docstring).
END_VELOCITY_WINDOW_S = 0.5
END_HEADING_BASELINE_M = 2.0

_CODE = {name: code for code, name in enumerate(TRAJECTORY_TYPES)}


def _checked(value: ArrayLike, name: str, shape: tuple[int | str, ...]) -> FloatArray:
    """``value`` as finite float64 of ``shape`` (a str stands for any length, and names it in
    the message); DataError naming ``name`` otherwise."""
    array = np.asarray(value, dtype=np.float64)
    fits = array.ndim == len(shape) and all(
        isinstance(want, str) or got == want for got, want in zip(array.shape, shape, strict=True)
    )
    if not fits:
        wanted = "(" + ", ".join(str(want) for want in shape) + ")"
        raise DataError(f"trajectory types: {name} must have shape {wanted}, got {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"trajectory types: {name} holds NaN or inf")
    return array


def classify_track_ends(
    start_xy: ArrayLike,
    start_heading: ArrayLike,
    start_velocity: ArrayLike,
    end_xy: ArrayLike,
    end_heading: ArrayLike,
    end_velocity: ArrayLike,
) -> TypeCodes:
    """(N,) type codes (indices into ``TRAJECTORY_TYPES``) of N agents' start and end states.

    Positions (N, 2) in metres, headings (N,) in rad and velocities (N, 2) in m/s, all in any one
    metric frame (the result does not depend on which). Raises DataError on other shapes or
    non-finite values.
    """
    start = _checked(start_xy, "start_xy", ("N", 2))
    n = len(start)
    start_psi = _checked(start_heading, "start_heading", (n,))
    delta = _checked(end_xy, "end_xy", (n, 2)) - start
    heading_change = wrap_angle(_checked(end_heading, "end_heading", (n,)) - start_psi)
    cos, sin = np.cos(start_psi), np.sin(start_psi)
    dx = cos * delta[:, 0] + sin * delta[:, 1]  # the displacement rotated by -start_heading
    dy = -sin * delta[:, 0] + cos * delta[:, 1]
    max_speed = np.maximum(
        np.linalg.norm(_checked(start_velocity, "start_velocity", (n, 2)), axis=1),
        np.linalg.norm(_checked(end_velocity, "end_velocity", (n, 2)), axis=1),
    )
    u_turn = dx < MIN_LONGITUDINAL_DISPLACEMENT_FOR_U_TURN_M
    codes = np.where(u_turn, _CODE["left_u_turn"], _CODE["left_turn"])
    right = (heading_change < -MAX_ABS_HEADING_DIFF_FOR_STRAIGHT_RAD) & (dy < 0)
    codes = np.where(right, np.where(u_turn, _CODE["right_u_turn"], _CODE["right_turn"]), codes)
    sideways = np.where(dy < 0, _CODE["straight_right"], _CODE["straight_left"])
    straight_on = np.where(
        np.abs(dy) < MAX_LATERAL_DISPLACEMENT_FOR_STRAIGHT_M, _CODE["straight"], sideways
    )
    codes = np.where(
        np.abs(heading_change) < MAX_ABS_HEADING_DIFF_FOR_STRAIGHT_RAD, straight_on, codes
    )
    stationary = (max_speed < MAX_SPEED_FOR_STATIONARY_MPS) & (
        np.hypot(delta[:, 0], delta[:, 1]) < MAX_DISPLACEMENT_FOR_STATIONARY_M
    )
    return np.where(stationary, _CODE["stationary"], codes).astype(np.int8)


def future_end_states(future: ArrayLike, dt: float) -> tuple[FloatArray, FloatArray]:
    """End heading (N,) rad and end velocity (N, 2) m/s of futures (N, F, 2) in the agent frame
    (the agent at the origin heading +x at the last observed step, ``dt`` seconds per step).

    The velocity is a least-squares fit over the last ``END_VELOCITY_WINDOW_S`` (at least one
    step); the heading is that of the chord over the last ``END_HEADING_BASELINE_M`` of travel,
    0 (the start heading) when every position lies closer than that to the end.
    """
    positions = _checked(future, "futures", ("N", "F", 2))
    if positions.shape[1] < 1 or not dt > 0:
        raise DataError(
            "trajectory types: need one future step or more and dt > 0 s, got "
            f"{positions.shape[1]} steps and dt {dt}"
        )
    n, steps = positions.shape[:2]
    path = np.concatenate([np.zeros((n, 1, 2)), positions], axis=1)  # (N, F + 1, 2) from the origin
    window = int(min(steps, max(1, round(END_VELOCITY_WINDOW_S / dt))))
    velocity = fit_velocity(path, dt, window)
    end = path[:, -1]
    far_enough = np.linalg.norm(path - end[:, None], axis=-1) >= END_HEADING_BASELINE_M
    latest = steps - np.argmax(far_enough[:, ::-1], axis=1)  # last index far enough from the end
    chord = end - path[np.arange(n), latest]
    heading = np.where(far_enough.any(axis=1), np.arctan2(chord[:, 1], chord[:, 0]), 0.0)
    return heading, velocity


def classify_futures(future: ArrayLike, velocity: ArrayLike, dt: float) -> TypeCodes:
    """(N,) type codes of samples from their true futures (N, F, 2) and current velocities (N, 2)
    m/s, both in the agent frame (``TrajSamples.future`` and ``.velocity``), ``dt`` s per step.

    The end state comes from ``future_end_states``.
    """
    positions = np.asarray(future, dtype=np.float64)
    end_heading, end_velocity = future_end_states(positions, dt)
    n = len(positions)
    return classify_track_ends(
        np.zeros((n, 2)), np.zeros(n), velocity, positions[:, -1], end_heading, end_velocity
    )


def sample_trajectory_types(samples: TrajSamples, dt: float) -> NDArray[np.str_]:
    """(N,) type names of the samples' true futures (``classify_futures``; ``dt`` s per step)."""
    return type_names(classify_futures(samples.future, samples.velocity, dt))


def type_names(codes: ArrayLike) -> NDArray[np.str_]:
    """(N,) type names of (N,) codes."""
    return np.asarray(TRAJECTORY_TYPES)[np.asarray(codes, dtype=np.intp)]


def group_masks(names: Sequence[str] | NDArray[np.str_]) -> dict[str, NDArray[np.bool_]]:
    """(N,) membership of every group of ``TYPE_GROUPS`` for (N,) type names.

    Raises DataError naming a name that is no type.
    """
    labels = np.asarray(names, dtype=str)
    unknown = sorted(set(labels.tolist()) - set(TRAJECTORY_TYPES))
    if unknown:
        raise DataError(f"unknown trajectory type(s) {unknown}; known: {list(TRAJECTORY_TYPES)}")
    masks = {name: labels == name for name in TRAJECTORY_TYPES}
    return {
        "moving": ~masks["stationary"],
        "turning": np.isin(labels, TURNING_TYPES),
        **masks,
    }
