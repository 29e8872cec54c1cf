"""The Waymo Open Dataset trajectory types: the rule on hand-made start and end states (every
type, every threshold from both sides, U-turns both ways, +y to the agent's left), its
independence of the frame, and the end state read off future positions (on hand-made futures,
and against the recorded headings of real NGSIM scenes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mapenc.data.trajectory import NGSIM_TASK, samples_from_scenarios
from mapenc.errors import DataError
from mapenc.evaluation.trajectory_types import (
    END_HEADING_BASELINE_M,
    TRAJECTORY_TYPES,
    TYPE_GROUPS,
    classify_futures,
    classify_track_ends,
    future_end_states,
    group_masks,
    sample_trajectory_types,
    type_names,
)
from mapenc.maps import load_scenario

DT = 0.1
STEPS = 30  # 3 s of future at 10 Hz
EPS = 1e-6

# (dx, dy) end - start in the start frame, heading change (rad), start and end speed (m/s),
# and the type Waymo's ClassifyTrack gives.
CASES = [
    ((4.9, 0.0), 0.0, 1.9, 0.0, "stationary"),
    ((4.9, 0.0), 0.0, 2.0, 0.0, "straight"),  # 2.0 m/s is not below 2.0
    ((0.0, 0.0), 0.0, 0.0, 2.0 + EPS, "straight"),  # the end speed counts too
    ((5.0, 0.0), 0.0, 0.0, 0.0, "straight"),  # 5.0 m is not below 5.0
    ((3.0, 4.0 - EPS), 0.0, 0.0, 0.0, "stationary"),  # the displacement's norm, not dx
    ((30.0, 4.99), 0.4, 10.0, 10.0, "straight"),
    ((30.0, 5.0), 0.4, 10.0, 10.0, "straight_left"),  # +y is the agent's left
    ((30.0, -5.0), -0.4, 10.0, 10.0, "straight_right"),
    ((30.0, -6.0), 0.4, 10.0, 10.0, "straight_right"),  # the offset decides, not the heading
    ((30.0, 0.0), np.pi / 6 - EPS, 10.0, 10.0, "straight"),
    ((30.0, 0.0), np.pi / 6 + EPS, 10.0, 10.0, "left_turn"),
    ((15.0, 15.0), np.pi / 2, 8.0, 8.0, "left_turn"),
    ((15.0, -15.0), -np.pi / 2, 8.0, 8.0, "right_turn"),
    ((30.0, -0.1), -np.pi / 6 + EPS, 10.0, 10.0, "straight"),
    ((15.0, -15.0), -np.pi / 6 - EPS, 8.0, 8.0, "right_turn"),
    ((-5.0, -8.0), -np.pi / 2, 8.0, 8.0, "right_turn"),  # -5.0 m is not below -5.0
    ((-5.0 - EPS, -8.0), -np.pi / 2, 8.0, 8.0, "right_u_turn"),
    ((-5.0, 8.0), np.pi / 2, 8.0, 8.0, "left_turn"),
    ((-5.0 - EPS, 8.0), np.pi / 2, 8.0, 8.0, "left_u_turn"),
    ((-8.0, 6.0), np.pi - 0.1, 6.0, 6.0, "left_u_turn"),
    ((-8.0, -6.0), -(np.pi - 0.1), 6.0, 6.0, "right_u_turn"),
    # Waymo's rule calls every non-straight end that is not "right and to the right" a left one.
    ((15.0, 2.0), -np.pi / 2, 8.0, 8.0, "left_turn"),
    ((-8.0, 0.0), -np.pi / 2, 8.0, 8.0, "left_u_turn"),
]


def classify_in_start_frame(
    offset: tuple[float, float], turn: float, start_speed: float, end_speed: float
) -> str:
    """The type of one agent starting at the origin heading +x."""
    codes = classify_track_ends(
        np.zeros((1, 2)),
        np.zeros(1),
        [[start_speed, 0.0]],
        [offset],
        [turn],
        [[end_speed * np.cos(turn), end_speed * np.sin(turn)]],
    )
    return str(type_names(codes)[0])


@pytest.mark.parametrize(("offset", "turn", "start_speed", "end_speed", "expected"), CASES)
def test_the_waymo_rule_on_hand_made_ends(
    offset: tuple[float, float], turn: float, start_speed: float, end_speed: float, expected: str
) -> None:
    assert classify_in_start_frame(offset, turn, start_speed, end_speed) == expected


def test_every_type_is_reached_and_codes_follow_the_waymo_enum() -> None:
    assert {case[-1] for case in CASES} == set(TRAJECTORY_TYPES)
    assert TRAJECTORY_TYPES.index("left_u_turn") == 4 and TRAJECTORY_TYPES.index("right_turn") == 7


def test_the_heading_change_is_wrapped() -> None:
    # From 170 deg to -170 deg is a 20 deg turn to the left, not 340 deg to the right.
    codes = classify_track_ends(
        [[0.0, 0.0]],
        [np.radians(170)],
        [[-8.0, 0.0]],
        [[-20.0, 0.5]],
        [np.radians(-170)],
        [[-8.0, 0.0]],
    )
    assert type_names(codes).tolist() == ["straight"]


def test_types_do_not_depend_on_the_frame() -> None:
    rng = np.random.default_rng(3)
    n = 400
    start = rng.uniform(-50, 50, (n, 2))
    start_heading = rng.uniform(-np.pi, np.pi, n)
    end = start + rng.normal(0.0, 12.0, (n, 2))
    end_heading = start_heading + rng.uniform(-np.pi, np.pi, n)
    start_velocity, end_velocity = rng.normal(0.0, 3.0, (n, 2)), rng.normal(0.0, 3.0, (n, 2))
    codes = classify_track_ends(
        start, start_heading, start_velocity, end, end_heading, end_velocity
    )
    assert len(set(codes.tolist())) == len(TRAJECTORY_TYPES)  # the draw reaches every type
    angle, shift = 2.1, np.array([4.0e5, -3.0e6])  # a city frame far from the origin
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def moved(points: np.ndarray) -> np.ndarray:
        return points @ rotation.T + shift

    again = classify_track_ends(
        moved(start),
        start_heading + angle,
        start_velocity @ rotation.T,
        moved(end),
        end_heading + angle,
        end_velocity @ rotation.T,
    )
    assert np.array_equal(codes, again)
    mirrored = classify_track_ends(
        start * [1, -1],
        -start_heading,
        start_velocity * [1, -1],
        end * [1, -1],
        -end_heading,
        end_velocity * [1, -1],
    )
    # Mirrored, a right turn is a left one; a left one is right only when it also ends on the
    # right (the rule's other left turns stay left), straight and stationary stay as they were.
    swapped = {"straight_left": "straight_right", "straight_right": "straight_left"}
    swapped |= {"right_turn": "left_turn", "right_u_turn": "left_u_turn"}
    for before, after in zip(type_names(codes), type_names(mirrored), strict=True):
        if before in ("left_turn", "left_u_turn"):
            assert after in (before, before.replace("left", "right"))
        else:
            assert after == swapped.get(before, before)


def driven(speed: np.ndarray, yaw_rate: np.ndarray) -> np.ndarray:
    """(1, F, 2) future positions of an agent leaving the origin along +x with per-step speed
    (F,) m/s and yaw rate (F,) rad/s."""
    heading = np.cumsum(yaw_rate * DT)
    steps = speed[:, None] * DT * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    return np.cumsum(steps, axis=0)[None]


def future_type(future: np.ndarray, speed_now: float) -> str:
    return str(type_names(classify_futures(future, [[speed_now, 0.0]], DT))[0])


def test_futures_of_every_kind_of_manoeuvre() -> None:
    cruise, still = np.full(STEPS, 8.0), np.zeros(STEPS)
    quarter = np.full(STEPS, (np.pi / 2) / (STEPS * DT))
    assert future_type(driven(cruise, still), 8.0) == "straight"
    assert future_type(driven(cruise, quarter), 8.0) == "left_turn"
    assert future_type(driven(cruise, -quarter), 8.0) == "right_turn"
    # Half a turn in 1.5 s, then 1.5 s back the other way: a U-turn, to either side.
    u_turn = np.where(np.arange(STEPS) < STEPS // 2, np.pi / (STEPS // 2 * DT), 0.0)
    assert future_type(driven(np.full(STEPS, 6.0), u_turn), 6.0) == "left_u_turn"
    assert future_type(driven(np.full(STEPS, 6.0), -u_turn), 6.0) == "right_u_turn"
    # A lane change: out to the left and straight again.
    weave = np.where(np.arange(STEPS) < 10, 0.6, np.where(np.arange(STEPS) < 20, -0.6, 0.0))
    assert future_type(driven(np.full(STEPS, 25.0), weave), 25.0) == "straight_left"
    assert future_type(driven(np.full(STEPS, 25.0), -weave), 25.0) == "straight_right"
    # A walker at 1.4 m/s covers 4.2 m in 3 s: stationary by the rule's thresholds.
    assert future_type(driven(np.full(STEPS, 1.4), still), 1.4) == "stationary"


def test_a_car_braking_to_a_stop_with_jittery_positions_stays_straight() -> None:
    rng = np.random.default_rng(0)
    speed = np.maximum(7.0 - 3.5 * np.arange(1, STEPS + 1) * DT, 0.0)  # stands for the last 1 s
    future = driven(speed, np.zeros(STEPS)) + rng.normal(0.0, 0.08, (1, STEPS, 2))
    heading, velocity = future_end_states(future, DT)
    assert abs(heading[0]) < 0.2 and np.linalg.norm(velocity[0]) < 0.5
    assert future_type(future, 7.0) == "straight"


def test_the_end_heading_is_the_direction_of_the_last_metres_of_travel() -> None:
    future = driven(np.full(STEPS, 8.0), np.full(STEPS, 0.5))
    heading, velocity = future_end_states(future, DT)
    assert heading[0] == pytest.approx(0.5 * STEPS * DT, abs=0.1)  # lags by half the chord
    assert np.linalg.norm(velocity[0]) == pytest.approx(8.0, rel=0.02)
    creeping = driven(np.full(STEPS, 0.05), np.full(STEPS, 2.0))  # turns on the spot
    assert np.linalg.norm(creeping[0, -1]) < END_HEADING_BASELINE_M
    assert future_end_states(creeping, DT)[0][0] == 0.0


def test_groups_add_up_and_aggregate_the_types() -> None:
    names = np.array(["stationary", "straight", "left_turn", "right_u_turn", "stationary"])
    masks = group_masks(names)
    assert list(masks) == list(TYPE_GROUPS)
    assert sum(int(masks[t].sum()) for t in TRAJECTORY_TYPES) == len(names)
    assert masks["moving"].tolist() == [False, True, True, True, False]
    assert masks["turning"].tolist() == [False, False, True, True, False]
    with pytest.raises(DataError, match="unknown trajectory type"):
        group_masks(["sideways"])


def test_bad_inputs_are_refused_by_name() -> None:
    with pytest.raises(DataError, match="futures must have shape \\(N, F, 2\\)"):
        classify_futures(np.zeros((3, 30)), np.zeros((3, 2)), DT)
    with pytest.raises(DataError, match="start_velocity must have shape"):
        classify_futures(np.zeros((3, 30, 2)), np.zeros((2, 2)), DT)
    with pytest.raises(DataError, match="NaN"):
        classify_futures(np.full((1, 30, 2), np.nan), np.zeros((1, 2)), DT)


@pytest.mark.real_data
def test_types_from_future_positions_agree_with_recorded_headings_on_ngsim(
    real_data: Path,
) -> None:
    """Lankershim's intersections: the types read off the future positions are, for nearly every
    sample, those of the recorded end heading and velocity (CommonRoad keeps both)."""
    folder = real_data / "commonroad_ngsim" / "Lankershim"
    scenes = [load_scenario(folder / f"USA_Lanker-2_{i}_T-1.xml.gz") for i in (10, 14)]
    samples = samples_from_scenarios(scenes, NGSIM_TASK)
    from_positions = sample_trajectory_types(samples, NGSIM_TASK.dt)
    starts: list[tuple[float, ...]] = []
    ends: list[tuple[float, ...]] = []
    for index, track_id, t in zip(
        samples.scenario_index, samples.track_ids, samples.time_step, strict=True
    ):
        track = next(tr for tr in scenes[int(index)].tracks if tr.id == track_id)
        assert track.velocity is not None
        for states, step in ((starts, t), (ends, t + NGSIM_TASK.future_steps)):
            states.append((*track.xy[step], track.heading[step], *track.velocity[step]))
    start, end = np.array(starts), np.array(ends)
    recorded = type_names(
        classify_track_ends(
            start[:, :2], start[:, 2], start[:, 3:], end[:, :2], end[:, 2], end[:, 3:]
        )
    )
    assert np.mean(from_positions == recorded) >= 0.95
    assert {"stationary", "straight", "left_turn", "right_turn"} <= set(recorded.tolist())
