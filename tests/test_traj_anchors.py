"""The anchors the trajectory model decodes around: a standing mode, walking modes per kind."""

from __future__ import annotations

import dataclasses

import numpy as np
from traj_scenes import moving_track, scenario_of

from mapenc.data.anchors import KINEMATIC_ACCELERATIONS, kinematic_forecast, walking_forecast
from mapenc.data.context import make_anchors
from mapenc.data.trajectory import NGSIM_TASK, TrajSamples, samples_from_scenarios
from mapenc.maps.types import Scenario


def _car_and_pedestrian() -> tuple[list[Scenario], TrajSamples]:
    car = moving_track("car", (0.0, 0.0), 0.0, 8.0, 41)
    walker = dataclasses.replace(
        moving_track("walker", (0.0, 3.0), 0.0, 1.4, 41), kind="pedestrian"
    )
    scenes = [scenario_of(car, walker)]
    return scenes, samples_from_scenarios(scenes, NGSIM_TASK)


def test_standing_anchor_first_then_the_moving_modes_of_each_kind() -> None:
    scenes, samples = _car_and_pedestrian()
    anchors = make_anchors(samples, scenes, NGSIM_TASK, 6, "kinematic", standing=True)
    assert anchors.shape == (2, 6, NGSIM_TASK.future_steps, 2)
    assert not anchors[:, 0].any()  # mode 0 stands
    car, walker = samples.track_ids.index("car"), samples.track_ids.index("walker")
    velocity = np.array([[8.0, 0.0], [1.4, 0.0]])
    # Vehicles: the five gentlest constant accelerations (the standing mode replaces -3 m/s²).
    braking = kinematic_forecast(velocity[:1], 30, 0.1, KINEMATIC_ACCELERATIONS[1:])[0]
    np.testing.assert_allclose(anchors[car, 1:], braking, atol=1e-4)
    # Pedestrians: turns and changes of pace at walking speed, never 2 m/s² of acceleration.
    walks = walking_forecast(velocity[1:], 30, 0.1)[0, :5]
    np.testing.assert_allclose(anchors[walker, 1:], walks, atol=1e-4)
    reach = np.linalg.norm(anchors[walker, 1:, -1], axis=-1)
    assert reach.max() < 1.5 * 1.4 * 3.0 + 1e-3
    turns = np.degrees(np.arctan2(anchors[walker, 1:, -1, 1], anchors[walker, 1:, -1, 0]))
    assert turns.min() < -20 and turns.max() > 20  # both ways


def test_without_standing_mode_every_mode_moves() -> None:
    scenes, samples = _car_and_pedestrian()
    anchors = make_anchors(samples, scenes, NGSIM_TASK, 6, "lane", standing=False)
    assert (np.linalg.norm(anchors[:, :, -1], axis=-1) > 0).sum() >= 8
    np.testing.assert_allclose(
        anchors[samples.track_ids.index("walker")],
        walking_forecast(np.array([[1.4, 0.0]]), 30, 0.1)[0],
        atol=1e-4,
    )
