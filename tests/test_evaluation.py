"""Baselines (kinematic, lane following), context features, scene bootstrap, the breakdowns of
the eval-traj report and the predictions file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from traj_scenes import DT, moving_track, scenario_of

from mapenc.cli import main
from mapenc.data.anchors import kinematic_forecast, lane_following_forecast, lane_paths, match_lane
from mapenc.data.context import kind_index, neighbour_features
from mapenc.data.trajectory import NGSIM_TASK, samples_from_scenarios
from mapenc.evaluation.baselines import baseline_forecasts
from mapenc.evaluation.report import (
    PerSample,
    breakdown,
    evaluation_report,
    motion_labels,
    paired_bootstrap,
    score_per_sample,
    write_predictions,
)
from mapenc.evaluation.trajectory_types import TRAJECTORY_TYPES, TYPE_GROUPS
from mapenc.maps.types import Lane, Track, VectorMap


def test_kinematic_modes_brake_to_a_stop_and_never_reverse() -> None:
    forecast = kinematic_forecast(
        np.array([[0.0, 4.0]]), future_steps=30, dt=0.1, accelerations=(-2.0, 0.0, 1.0)
    )
    assert forecast.shape == (1, 3, 30, 2)
    np.testing.assert_allclose(forecast[0, :, :, 0], 0.0, atol=1e-12)  # along the velocity (+y)
    braking = forecast[0, 0, :, 1]
    assert np.all(np.diff(braking) >= -1e-12)
    np.testing.assert_allclose(braking[-1], 4.0**2 / (2 * 2.0))  # stopped after 2 s, at v²/2a
    np.testing.assert_allclose(forecast[0, 1, -1, 1], 12.0)
    np.testing.assert_allclose(forecast[0, 2, -1, 1], 12.0 + 0.5 * 9.0)


def forked_map() -> VectorMap:
    """A 30 m lane along +x that splits into a straight and a left-turning successor."""

    def lane(lane_id: str, center: np.ndarray, successors: tuple[str, ...] = ()) -> Lane:
        normal = np.array([0.0, 1.75])
        return Lane(lane_id, center, center + normal, center - normal, successors=successors)

    x = np.linspace(0.0, 30.0, 7)
    stem = np.stack([x, np.zeros_like(x)], 1)
    straight = np.stack([np.linspace(30.0, 80.0, 11), np.zeros(11)], 1)
    angles = np.linspace(0.0, np.pi / 2, 10)
    left = np.stack([30.0 + 20.0 * np.sin(angles), 20.0 - 20.0 * np.cos(angles)], 1)
    return VectorMap(
        lanes=[
            lane("stem", stem, ("straight", "left")),
            lane("straight", straight),
            lane("left", left),
        ]
    )


def test_lane_following_takes_every_branch_and_follows_the_lane() -> None:
    vector_map = forked_map()
    match = match_lane(vector_map, np.array([10.0, 0.5, 0.05]))
    assert match is not None and match[0].id == "stem"
    paths = lane_paths(vector_map, match[0], match[2], length=40.0)
    assert len(paths) == 2
    assert paths[0][-1, 1] == 0.0 and paths[1][-1, 1] > 15.0  # straight on, and turned left
    assert match_lane(vector_map, np.array([10.0, 0.5, np.pi / 2])) is None  # crossing the lane

    car = moving_track("car", (12.0, 0.0), 0.0, 10.0, 41)
    scene = scenario_of(car)
    scene = type(scene)(map=vector_map, dt=DT, tracks=scene.tracks)
    samples = samples_from_scenarios([scene], NGSIM_TASK)
    forecasts = lane_following_forecast(samples, [scene], NGSIM_TASK, k=6)
    ends = forecasts[0, :, -1]
    assert ends[:, 1].max() > 5.0 and abs(ends[:, 1]).min() < 0.1  # some turn left, some go on
    distances = np.linalg.norm(ends, axis=-1)
    assert distances.max() > 30.0 > distances.min()  # several speeds


def test_baselines_on_constant_speed_cars() -> None:
    scene = scenario_of(
        moving_track("a", (-60.0, 0.5), 0.0, 10.0, 45),
        moving_track("b", (-50.0, -1.0), 0.0, 8.0, 45),
    )
    samples = samples_from_scenarios([scene], NGSIM_TASK)
    forecasts = baseline_forecasts(samples, [scene], NGSIM_TASK, k=6)
    assert {f.shape[1] for name, f in forecasts.items() if name.startswith("cv")} == {1}
    for name in ("cv_last_step", "cv_least_squares", "cv_recorded"):
        scores = score_per_sample(forecasts[name], samples, [scene])
        np.testing.assert_allclose(scores.min_fde, 0.0, atol=1e-4)
    for name in ("kinematic", "lane_following"):
        assert forecasts[name].shape == (len(samples), 6, 30, 2)
    np.testing.assert_allclose(
        score_per_sample(forecasts["kinematic"], samples, [scene]).min_fde, 0.0, atol=1e-6
    )
    # Lane following ends on the centerline: the cars' offsets (0.5 m, 1 m) are its only error.
    lane_fde = score_per_sample(forecasts["lane_following"], samples, [scene]).min_fde
    np.testing.assert_allclose(lane_fde, [0.5, 1.0], atol=1e-3)


def test_neighbours_are_the_nearest_agents_in_the_agent_frame() -> None:
    agent = moving_track("me", (0.0, 0.0), np.pi / 2, 5.0, 45)  # driving north
    left = moving_track("left", (-3.0, 10.0), np.pi / 2, 5.0, 45)  # 10 m ahead, 3 m to my left
    far = moving_track("far", (500.0, 0.0), 0.0, 5.0, 45)
    scene = scenario_of(agent, left, far)
    samples = samples_from_scenarios([scene], NGSIM_TASK)
    mine = samples.track_ids.index("me")
    features = neighbour_features(samples, [scene], max_neighbours=2)
    np.testing.assert_allclose(features[mine, 0], [10.0, 3.0, 5.0, 0.0, 1.0], atol=1e-4)
    np.testing.assert_allclose(features[mine, 1], 0.0)  # the far car is out of range
    assert [kind_index(k) for k in ("vehicle", "car", "pedestrian", "cyclist", "static")] == [
        0,
        0,
        1,
        2,
        3,
    ]


def test_paired_bootstrap_resamples_whole_scenes() -> None:
    rng = np.random.default_rng(0)
    scenes = np.repeat(np.arange(20), 50)
    base = rng.normal(2.0, 0.5, scenes.size)
    better = base - 0.3 + rng.normal(0.0, 0.05, scenes.size)
    result = paired_bootstrap(better, base, scenes)
    assert result["ci95"][1] < 0 and result["scenes"] == 20
    # One scene carries the whole gain: samples are many, but the interval must stay wide.
    lucky = base.copy()
    lucky[scenes == 0] -= 6.0
    wide = paired_bootstrap(lucky, base, scenes)
    assert wide["ci95"][0] < wide["mean"] < wide["ci95"][1] and wide["ci95"][1] >= 0.0


def test_standing_and_moving_agents_are_scored_apart() -> None:
    velocity = np.array([[0.0, 0.0], [0.3, -0.3], [0.0, 0.6], [12.0, 1.0]])
    labels = motion_labels(velocity)
    assert labels == ["standing", "standing", "moving", "moving"]
    fde = np.array([0.1, 0.2, 1.0, 3.0])
    scores = PerSample(fde / 2, fde, (fde > 2.0).astype(float), np.zeros(4))
    table = breakdown({"model": scores}, labels)
    assert table["standing"]["n"] == 2 and table["moving"]["n"] == 2
    assert table["standing"]["model"]["minFDE"] == 0.15
    assert (
        table["moving"]["model"]["minFDE"] == 2.0 and table["moving"]["model"]["miss_rate"] == 0.5
    )


def test_predictions_file_is_in_the_source_frame(tmp_path: Path) -> None:
    scene = scenario_of(moving_track("a", (-60.0, 0.5), 0.3, 10.0, 45), source="")
    samples = samples_from_scenarios([scene], NGSIM_TASK)
    forecasts = baseline_forecasts(samples, [scene], NGSIM_TASK, k=6)["kinematic"]
    prob = np.full((len(samples), 6), 1 / 6)
    write_predictions(tmp_path / "p.npz", forecasts, prob, samples, ["road/scene.xml"])
    saved = np.load(tmp_path / "p.npz")
    assert saved["scene"].tolist() == ["road/scene.xml"] * len(samples)
    track = scene.tracks[0]
    for row, t in enumerate(saved["t_obs"]):
        future = track.xy[t + 1 : t + 31]
        best = np.linalg.norm(saved["pred"][row, :, -1] - future[-1], axis=-1).min()
        assert best < 0.6  # a constant-speed car is one of the kinematic modes, in the file frame


def turning_track(
    track_id: str, start: tuple[float, float], speed: float, yaw_rate: float
) -> Track:
    """45 steps at ``speed`` along +x, turning at ``yaw_rate`` rad/s from step 11 on."""
    rates = np.where(np.arange(45) > 10, yaw_rate, 0.0)
    heading = np.cumsum(rates * DT)
    xy = np.array(start) + np.cumsum(
        speed * DT * np.stack([np.cos(heading), np.sin(heading)], axis=1), axis=0
    )
    return Track(track_id, "vehicle", xy, heading, np.ones(45, dtype=bool))


def test_the_report_breaks_every_score_down_by_trajectory_type() -> None:
    scenes = [
        scenario_of(
            moving_track("parked", (-20.0, 0.0), 0.0, 0.0, 45),
            moving_track("cruising", (-60.0, 0.5), 0.0, 10.0, 45),
            turning_track("turning", (-40.0, 0.0), 8.0, np.pi / 6),
        ),
        scenario_of(
            moving_track("waiting", (10.0, 1.0), 0.0, 0.0, 45),
            turning_track("turning", (-40.0, 0.0), 8.0, -np.pi / 6),
        ),
        scenario_of(moving_track("cruising", (-50.0, -1.0), 0.0, 12.0, 45)),
    ]
    samples = samples_from_scenarios(scenes, NGSIM_TASK)
    forecasts = baseline_forecasts(samples, scenes, NGSIM_TASK, k=6)
    scored = {name: score_per_sample(f, samples, scenes) for name, f in forecasts.items()}
    model, cv = scored["kinematic"], scored["cv_recorded"]
    report = evaluation_report(
        model, {"cv_recorded": cv}, samples, ["a/0", "a/1", "b/2"], dt=DT, versus=cv, seed=1
    )
    types = report["by_trajectory_type"]
    assert list(types) == list(TYPE_GROUPS)
    counts = {group: types[group]["n"] for group in TYPE_GROUPS}
    assert sum(counts[t] for t in TRAJECTORY_TYPES) == len(samples) == 6
    assert counts == {
        "moving": 4,
        "turning": 2,
        "stationary": 2,
        "straight": 2,
        "straight_left": 0,
        "straight_right": 0,
        "left_u_turn": 0,
        "left_turn": 1,
        "right_u_turn": 0,
        "right_turn": 1,
    }
    assert types["moving"]["scenes"] == 3 and types["stationary"]["scenes"] == 2
    assert types["left_u_turn"] == {"n": 0, "scenes": 0}  # reported, not dropped
    turning = np.array([track in ("turning",) for track in samples.track_ids])
    assert types["turning"]["model"] == model.means(turning)
    assert types["turning"]["baselines"]["cv_recorded"] == cv.means(turning)
    difference = types["turning"]["model_minus_baseline"]["cv_recorded"]["minFDE"]
    expected = float(np.mean(model.min_fde[turning] - cv.min_fde[turning]))
    assert difference["mean"] == round(expected, 4) and difference["scenes"] == 2
    assert difference["mean"] < 0  # the kinematic modes bend no better, but brake and speed up
    assert types["right_turn"]["model_minus_versus"]["minFDE"]["scenes"] == 1
    # The whole report keeps its shape: the top level is the group of all samples.
    assert report["model"] == model.means() and report["versus"] == cv.means()


def test_eval_traj_prints_the_trajectory_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = ["--raster-size", "16", "16", "--pixel-size", "4", "--layers", "drivable_area"]
    train = ["train-traj", "--data", "synthetic:2", "--split", "all", "--epochs", "1", *small]
    caching = ["--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    for name, extra in (("map", []), ("nomap", ["--no-map"])):
        assert main([*train, *extra, *caching, "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    evaluate = ["eval-traj", str(tmp_path / "map"), "--split", "all", "--figures", "0"]
    assert main([*evaluate, "--versus", str(tmp_path / "nomap")]) == 0
    printed = capsys.readouterr()
    result = json.loads(printed.out)
    table = printed.err.split("by trajectory type of the true future:\n")[1].splitlines()
    assert [line.split()[0] for line in table[:4]] == ["agents", "all", "moving", "turning"]
    assert table[1].split()[1] == str(result["n"])
    types = result["by_trajectory_type"]
    assert list(types) == list(TYPE_GROUPS)
    assert sum(types[t]["n"] for t in TRAJECTORY_TYPES) == result["n"]
    assert types["moving"]["n"] == result["n"] - types["stationary"]["n"] > 0
    moving = types["moving"]
    assert (
        set(moving["baselines"]) == set(result["baselines"]) == set(moving["model_minus_baseline"])
    )
    low, high = moving["model_minus_versus"]["minFDE"]["ci95"]
    assert low <= moving["model_minus_versus"]["minFDE"]["mean"] <= high
    assert moving["versus"]["minFDE"] > 0 and moving["scenes"] <= result["scenes"]
