"""docs/study/publish.py: the committed copy of a study keeps every run's per-sample scores of the
data sets allowed, with their identities, and none of a data set left out."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mapenc.study.traj_scores import PER_SAMPLE_NAME, SampleScores, save_sample_identities

REPO_ROOT = Path(__file__).resolve().parents[1]


def publish_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("publish", REPO_ROOT / "docs/study/publish.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_data_set_left_out_keeps_no_row_and_the_others_keep_theirs(tmp_path: Path) -> None:
    study = tmp_path / "study"
    scenes = np.array(["a/1", "w/1", "a/2", "w/2"])
    types = np.array(["stationary", "left_turn", "straight", "straight"])
    save_sample_identities(
        study / "test_samples.npz",
        scenes=list(scenes),
        sources=["kept", "womd", "kept", "womd"],
        track_ids=["1", "2", "3", "4"],
        last_observed_steps=np.array([10, 11, 12, 13]),
        types=types,
    )
    for cell, offset in (("none-s0", 1.0), ("conv-global-s0", 0.5)):
        values = np.arange(4.0) + offset
        metrics = {"minADE": values / 2, "minFDE": values, "miss_rate": values > 2}
        metrics["offroad_rate"] = np.zeros(4)
        scores = SampleScores(scenes, {m: v.astype(float) for m, v in metrics.items()}, types)
        (study / "runs" / cell).mkdir(parents=True)
        scores.save(study / "runs" / cell / PER_SAMPLE_NAME)
        (study / "runs" / cell / "training.json").write_text(json.dumps({"steps": 3}))
    (study / "summary.json").write_text("{}")
    kept = publish_module().publish(study, tmp_path / "out", {"womd"})
    assert kept == 2
    with np.load(tmp_path / "out" / PER_SAMPLE_NAME) as published:
        assert list(published["source"]) == ["kept", "kept"]
        assert list(published["scene"]) == ["a/1", "a/2"]
        assert list(published["t_obs"]) == [10, 12]
        assert published["conv-global-s0/minFDE"] == pytest.approx([0.5, 2.5])
        assert published["none-s0/minFDE"].dtype == np.float32
    assert (tmp_path / "out" / "runs" / "none-s0" / "training.json").is_file()
    assert (tmp_path / "out" / "summary.json").is_file()
