"""Evaluation over several data sets: scores per data set, and forecasts named in each file's
own step numbers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from traj_scenes import moving_track, scenario_of

from mapenc.data.traj_sources import data_sets_of
from mapenc.data.trajectory import NGSIM_TASK, samples_from_scenarios
from mapenc.evaluation.baselines import baseline_forecasts
from mapenc.evaluation.report import evaluation_report, score_per_sample, write_predictions


def test_each_data_set_is_scored_on_its_own_samples(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    scenes = [
        scenario_of(
            moving_track(f"a{i}", (0.0, 0.0), 0.0, 8.0 + i, 45),
            source=str(tmp_path / folder / f"{i}.xml"),
        )
        for i, folder in enumerate(("first", "first", "second"))
    ]
    sources = data_sets_of(scenes, [str(tmp_path / "first"), str(tmp_path / "second" / "2.xml")])
    assert sources == ["first", "first", "2.xml"]
    samples = samples_from_scenarios(scenes, NGSIM_TASK)
    forecasts = baseline_forecasts(samples, scenes, NGSIM_TASK, k=6)
    scored = {name: score_per_sample(f, samples, scenes) for name, f in forecasts.items()}
    model = scored.pop("kinematic")
    report = evaluation_report(
        model, scored, samples, ["0", "1", "2"], dt=0.1, scene_sources=sources
    )
    by_source = report["by_source"]
    assert set(by_source) == {"first", "2.xml"}
    assert by_source["first"]["n"] + by_source["2.xml"]["n"] == len(samples)
    assert by_source["first"]["scenes"] == 2 and by_source["2.xml"]["scenes"] == 1
    rows = samples.scenario_index == 2
    assert by_source["2.xml"]["model"] == model.means(rows)
    assert by_source["2.xml"]["by_trajectory_type"]["moving"]["n"] == int(rows.sum())


def test_predictions_name_steps_as_the_file_numbers_them(tmp_path: Path) -> None:
    scene = dataclasses.replace(
        scenario_of(moving_track("a", (0.0, 0.0), 0.0, 10.0, 45)), first_step=7
    )
    samples = samples_from_scenarios([scene], NGSIM_TASK)
    forecasts = baseline_forecasts(samples, [scene], NGSIM_TASK, k=6)["kinematic"]
    prob = np.full((len(samples), 6), 1 / 6)
    write_predictions(tmp_path / "p.npz", forecasts, prob, samples, ["v.csv"], [7])
    saved = np.load(tmp_path / "p.npz")
    assert (saved["t_obs"] == samples.time_step + 7).all()
