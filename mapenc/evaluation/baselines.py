"""The baselines of every trajectory evaluation: training-free forecasts by name.

See ``mapenc.data.anchors`` for how each is made.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mapenc.data.anchors import (
    FloatArray,
    kinematic_forecast,
    lane_following_forecast,
    last_step_velocity,
    recorded_velocity,
)
from mapenc.data.trajectory import TrajSamples, TrajTask, constant_velocity_forecast
from mapenc.maps.types import Scenario

# The constant-velocity variant reported as "constant velocity": the best of the three on the
# NGSIM validation split (FDE: recorded 2.57 m, last step 2.64, least squares 2.87).
CONSTANT_VELOCITY = "cv_recorded"


def baseline_forecasts(
    samples: TrajSamples, scenarios: Sequence[Scenario], task: TrajTask, k: int = 6
) -> dict[str, FloatArray]:
    """Every baseline's (N, K, F, 2) forecasts, agent frame, by name.

    Names: ``cv_last_step``, ``cv_least_squares``, ``cv_recorded`` (K = 1), ``kinematic`` and
    ``lane_following`` (K = ``k``; the kinematic set has len(KINEMATIC_ACCELERATIONS) modes,
    trimmed or repeated to ``k``).
    """
    f, dt = task.future_steps, task.dt
    last = last_step_velocity(samples, dt)
    kinematic = kinematic_forecast(last, f, dt)
    if kinematic.shape[1] != k:
        kinematic = kinematic[:, np.arange(k) % kinematic.shape[1]]
    return {
        "cv_last_step": constant_velocity_forecast(last, f, dt)[:, None],
        "cv_least_squares": constant_velocity_forecast(samples.velocity, f, dt)[:, None],
        "cv_recorded": constant_velocity_forecast(recorded_velocity(samples, scenarios, dt), f, dt)[
            :, None
        ],
        "kinematic": kinematic,
        "lane_following": lane_following_forecast(samples, scenarios, task, k),
    }
