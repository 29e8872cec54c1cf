"""Trajectory samples in the agent frame, the velocity fit and the CV baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from traj_scenes import DT, curved_track, moving_track, scenario_of

from mapenc.data.traj_sources import load_scenarios
from mapenc.data.trajectory import (
    AV2_TASK,
    NGSIM_TASK,
    TrajTask,
    constant_velocity_forecast,
    extract_samples,
    fit_velocity,
    resample_track,
    resampling,
    samples_from_scenarios,
)
from mapenc.errors import ConfigError, DataError
from mapenc.geometry import wrap_angle
from mapenc.maps.types import Track


def test_past_ends_at_the_origin_heading_plus_x() -> None:
    heading, speed = 0.7, 10.0
    sc = scenario_of(moving_track("a", (3.0, -4.0), heading, speed, 41))
    s = extract_samples(sc, NGSIM_TASK)
    assert len(s) == 1 and s.time_step.tolist() == [10]
    np.testing.assert_allclose(s.past[0, -1], [0.0, 0.0], atol=1e-6)
    # Straight along +x in the agent frame: 1 m per step (10 m/s at 10 Hz), y = 0.
    np.testing.assert_allclose(s.past[0, :, 0], np.arange(-10, 1) * 1.0, atol=1e-5)
    np.testing.assert_allclose(s.future[0, :, 0], np.arange(1, 31) * 1.0, atol=1e-5)
    np.testing.assert_allclose(s.future[0, :, 1], 0.0, atol=1e-5)
    np.testing.assert_allclose(s.past_heading[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(s.velocity[0], [speed, 0.0], atol=1e-4)
    expected_pose = [3.0 + 10 * np.cos(heading), -4.0 + 10 * np.sin(heading), heading]
    np.testing.assert_allclose(s.pose[0], expected_pose, atol=1e-9)
    assert s.kinds == ("vehicle",) and s.track_ids == ("a",)


def test_windows_follow_the_stride_and_skip_gaps_and_short_tracks() -> None:
    long_track = moving_track("long", (0.0, 0.0), 0.0, 5.0, 61, first=2)  # t = 12, 22, 32
    short_track = moving_track("short", (0.0, 1.0), 0.0, 5.0, 40)  # one step too short
    gappy = moving_track("gap", (0.0, -1.0), 0.0, 5.0, 63)
    valid = gappy.valid.copy()
    valid[30] = False  # runs 0..29 (too short) and 31..62 (too short)
    gappy = Track("gap", "vehicle", gappy.xy, gappy.heading, valid)
    s = extract_samples(scenario_of(long_track, short_track, gappy), NGSIM_TASK, scenario_index=4)
    assert s.track_ids == ("long",) * 3
    assert s.time_step.tolist() == [12, 22, 32]
    assert s.scenario_index.tolist() == [4, 4, 4]


def test_no_long_enough_track_raises_data_error_naming_the_scenario() -> None:
    sc = scenario_of(moving_track("a", (0.0, 0.0), 0.0, 5.0, 20), source="tiny.xml")
    with pytest.raises(DataError, match=r"tiny\.xml"):
        samples_from_scenarios([sc], NGSIM_TASK)
    with pytest.raises(DataError, match="time step"):
        extract_samples(dataclasses.replace(sc, dt=0.0), NGSIM_TASK)


def test_velocity_fit_averages_out_position_noise() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(11) * DT
    true_v = np.array([12.0, -1.0])
    clean = (t - t[-1])[:, None] * true_v
    noisy = clean[None] + rng.normal(0.0, 0.1, size=(500, 11, 2))
    fitted = fit_velocity(noisy, DT, window=5)
    last_difference = (noisy[:, -1] - noisy[:, -2]) / DT
    assert np.abs(fitted.mean(axis=0) - true_v).max() < 0.1
    assert fitted.std(axis=0).max() < 0.5 * last_difference.std(axis=0).min()


def test_constant_velocity_forecast_moves_along_the_velocity() -> None:
    cv = constant_velocity_forecast(np.array([[10.0, 0.0], [0.0, -2.0]]), 3, 0.5)
    np.testing.assert_allclose(cv[0], [[5.0, 0.0], [10.0, 0.0], [15.0, 0.0]])
    np.testing.assert_allclose(cv[1], [[0.0, -1.0], [0.0, -2.0], [0.0, -3.0]])


def test_task_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        TrajTask(history_steps=0)
    with pytest.raises(ConfigError):
        TrajTask(velocity_window=20)


REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def test_data_paths_take_av2_and_generic_folders_and_the_synthetic_town() -> None:
    av2 = load_scenarios([str(REPO_DATA / "av2_sample")])
    assert len(av2) == 1 and av2[0].focal_track_id is not None
    samples = samples_from_scenarios(av2, AV2_TASK)  # 5 s -> 6 s: only fully observed tracks
    assert av2[0].focal_track_id in samples.track_ids
    assert samples.past.shape[1:] == (50, 2) and samples.future.shape[1:] == (60, 2)
    assert "static" not in samples.kinds
    generic = load_scenarios([str(REPO_DATA / "fixtures" / "generic_tiny")])
    assert len(generic) == 1 and generic[0].tracks
    synthetic = load_scenarios(["synthetic:2"])
    assert len(synthetic) == 2 and len(samples_from_scenarios(synthetic, NGSIM_TASK)) > 0


def test_bad_data_paths_raise_mapenc_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_scenarios([str(tmp_path / "missing")])
    with pytest.raises(DataError, match="no CommonRoad"):
        load_scenarios([str(tmp_path)])
    with pytest.raises(ConfigError, match="synthetic:N"):
        load_scenarios(["synthetic:many"])


def test_faster_scenes_are_read_at_the_task_rate() -> None:
    slow = scenario_of(moving_track("a", (0.0, 0.0), 0.2, 10.0, 45))
    track = slow.tracks[0]
    fine = np.arange(0, 45, 0.5)  # 20 Hz steps in units of the 10 Hz steps
    xy = np.stack([np.interp(fine, np.arange(45), track.xy[:, i]) for i in range(2)], 1)
    fast_track = Track("a", "vehicle", xy, np.full(len(fine), 0.2), np.ones(len(fine), bool))
    fast = dataclasses.replace(slow, dt=DT / 2, tracks=[fast_track])
    a, b = extract_samples(slow, NGSIM_TASK), extract_samples(fast, NGSIM_TASK)
    np.testing.assert_allclose(b.future, a.future, atol=1e-5)
    assert (b.time_step == 2 * a.time_step).all()
    assert resampling(fast, NGSIM_TASK).describe() == "decimated 0.05 s -> 0.1 s"


def test_slower_scenes_are_interpolated_and_scored_at_recorded_steps() -> None:
    """A 5 Hz recording of a turning agent: task steps between two recorded ones are interpolated
    (heading the short way round), and every sample starts and ends on a recorded step."""
    turning = curved_track("a", radius_m=20.0, speed_mps=8.0, steps=91, dt=DT)
    ten_hz = scenario_of(turning)
    every_other = dataclasses.replace(
        turning, xy=turning.xy[::2], heading=turning.heading[::2], valid=turning.valid[::2]
    )
    five_hz = dataclasses.replace(ten_hz, dt=2 * DT, tracks=[every_other])
    plan = resampling(five_hz, NGSIM_TASK)
    assert plan.method == "interpolate" and plan.describe() == "interpolated 0.2 s -> 0.1 s"
    resampled = resample_track(every_other, plan)
    assert resampled.valid.shape == (91,)
    np.testing.assert_allclose(resampled.xy[::2], turning.xy[::2], atol=1e-9)
    chord = np.linalg.norm(resampled.xy[1::2] - turning.xy[1::2], axis=1)
    assert 0 < chord.max() < 0.05  # inside the arc by the sagitta of a 1.6 m chord
    np.testing.assert_allclose(resampled.heading, wrap_angle(turning.heading), atol=1e-9)
    a, b = extract_samples(ten_hz, NGSIM_TASK), extract_samples(five_hz, NGSIM_TASK)
    assert len(b) > 0 and set(2 * b.time_step) <= set(a.time_step)
    same = [list(a.time_step).index(2 * t) for t in b.time_step]
    np.testing.assert_allclose(b.future[:, 1::2], a.future[same][:, 1::2], atol=1e-4)
    # 0.07 s steps: the 3 s horizon never ends on a recorded step, so nothing is scored.
    assert len(extract_samples(dataclasses.replace(ten_hz, dt=0.07), NGSIM_TASK)) == 0
