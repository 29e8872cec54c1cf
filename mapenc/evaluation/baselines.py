"""The baselines of every trajectory evaluation: training-free forecasts by name.

See ``mapenc.data.anchors`` for how each is made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from mapenc.data.anchors import (
    FloatArray,
    kinematic_forecast,
    lane_following_forecast,
    last_step_velocity,
    recorded_velocity,
)
from mapenc.data.traj_sources import LastMadeFor
from mapenc.data.trajectory import TrajSamples, TrajTask, constant_velocity_forecast
from mapenc.maps.types import Scenario

# The constant-velocity variant reported as "constant velocity": the best of the three on the
# NGSIM validation split (FDE: recorded 2.57 m, last step 2.64, least squares 2.87).
CONSTANT_VELOCITY = "cv_recorded"


# The last baselines made in this process, for (task, k, a digest of the samples) and the scene
# objects: every run of an encoder study is scored on the same samples, and the lane-following
# forecasts take over a minute on 60,000 of them.
_LAST_MADE: LastMadeFor[tuple[TrajTask, int, str], dict[str, FloatArray]] = LastMadeFor()


def baseline_forecasts(
    samples: TrajSamples, scenarios: Sequence[Scenario], task: TrajTask, k: int = 6
) -> dict[str, FloatArray]:
    """Every baseline's (N, K, F, 2) forecasts, agent frame, by name (read-only arrays; the same
    ones again for the same samples of the same scene objects).

    Names: ``cv_last_step``, ``cv_least_squares``, ``cv_recorded`` (K = 1), ``kinematic`` and
    ``lane_following`` (K = ``k``; the kinematic set has len(KINEMATIC_ACCELERATIONS) modes,
    trimmed or repeated to ``k``).
    """
    key = (task, k, _samples_digest(samples))
    return dict(
        _LAST_MADE.get(key, scenarios, lambda: _make_baselines(samples, scenarios, task, k))
    )


def _samples_digest(samples: TrajSamples) -> str:
    """SHA-1 of everything of ``samples`` a baseline reads."""
    h = hashlib.sha1()
    arrays = (samples.past, samples.future, samples.velocity, samples.pose)
    for array in (*arrays, samples.scenario_index, samples.time_step):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update("\0".join(samples.track_ids).encode())
    return h.hexdigest()


def _make_baselines(
    samples: TrajSamples, scenarios: Sequence[Scenario], task: TrajTask, k: int
) -> dict[str, FloatArray]:
    """``baseline_forecasts`` without the kept result (read-only arrays, since they are kept)."""
    f, dt = task.future_steps, task.dt
    last = last_step_velocity(samples, dt)
    kinematic = kinematic_forecast(last, f, dt)
    if kinematic.shape[1] != k:
        kinematic = kinematic[:, np.arange(k) % kinematic.shape[1]]
    made = {
        "cv_last_step": constant_velocity_forecast(last, f, dt)[:, None],
        "cv_least_squares": constant_velocity_forecast(samples.velocity, f, dt)[:, None],
        "cv_recorded": constant_velocity_forecast(recorded_velocity(samples, scenarios, dt), f, dt)[
            :, None
        ],
        "kinematic": kinematic,
        "lane_following": lane_following_forecast(samples, scenarios, task, k),
    }
    for forecast in made.values():
        forecast.setflags(write=False)
    return made
