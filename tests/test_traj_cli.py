"""train-traj / eval-traj end to end on a small synthetic town, and on real NGSIM scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mapenc.cli import main
from mapenc.maps import load_scenario

SMALL_RASTER = [
    "--raster-size",
    "24",
    "24",
    "--pixel-size",
    "2.5",
    "--layers",
    "drivable_area",
    "centerlines",
]


def train_on_synthetic_town(out: Path, cache: Path, *extra: str) -> int:
    """Exit code of ``train-traj`` for one epoch on a 2-scene synthetic town, small raster."""
    data = ["--data", "synthetic:2", "--split", "all", "--epochs", "1", *extra]
    caching = ["--cache-dir", str(cache), "--no-progress"]
    return main(["train-traj", *data, "--out", str(out), *SMALL_RASTER, *caching])


def test_train_then_eval_on_the_synthetic_town(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train_on_synthetic_town(run, tmp_path / "cache") == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["train_samples"] > 0 and trained["steps"] >= 1 and trained["map_params"] > 0
    assert (run / "checkpoint.pt").is_file() and (run / "config.json").is_file()

    assert main(["eval-traj", str(run), "--split", "all", "--k", "3", "--figures", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["k"] == 3 and result["n"] == trained["train_samples"]
    assert set(result["model"]) == {"minADE", "minFDE", "miss_rate", "offroad_rate"}
    assert set(result["constant_velocity"]) == {
        "variant",
        "ADE",
        "FDE",
        "miss_rate",
        "offroad_rate",
    }
    assert set(result["baselines"]) == {
        "cv_last_step",
        "cv_least_squares",
        "cv_recorded",
        "kinematic",
        "lane_following",
    }
    interval = result["model_minus_baseline"]["kinematic"]["minFDE"]
    assert interval["ci95"][0] <= interval["mean"] <= interval["ci95"][1]
    assert result["zero_shot"] is False
    assert 0.0 <= result["model"]["offroad_rate"] <= 1.0
    assert result["model"]["minADE"] > 0 and result["constant_velocity"]["FDE"] > 0
    assert len(result["figures"]) == 2 and all(Path(p).is_file() for p in result["figures"])
    assert json.loads((run / "eval_all.json").read_text())["n"] == result["n"]

    nomap = tmp_path / "nomap"
    assert train_on_synthetic_town(nomap, tmp_path / "cache", "--no-map") == 0
    assert json.loads(capsys.readouterr().out)["map_params"] == 0


def test_training_on_train_keeps_the_weights_best_on_val(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    data = ["--data", "synthetic:6", "--epochs", "2", "--out", str(run), *SMALL_RASTER]
    assert main(["train-traj", *data, "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    best = json.loads(capsys.readouterr().out)["best_val"]
    assert best["epochs_scored"] == 2 and best["epoch"] in (1, 2) and best["minFDE"] > 0
    assert (run / "best_val.pt").is_file()
    epochs = (run / "epochs.csv").read_text().splitlines()
    assert "eval_val_minFDE" in epochs[0] and len(epochs) == 3


def test_the_vector_encoder_trains_and_evaluates_through_the_same_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "vector"
    assert train_on_synthetic_town(run, tmp_path / "cache", "--encoder", "vector") == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["steps"] >= 1 and trained["map_params"] > 0
    assert main(["eval-traj", str(run), "--split", "all", "--k", "2", "--figures", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == trained["train_samples"] and result["model"]["minFDE"] > 0


def test_eval_of_a_folder_that_is_no_run_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval-traj", str(tmp_path)]) == 2
    assert "not a train-traj run" in capsys.readouterr().err


@pytest.mark.real_data
def test_train_and_eval_on_a_few_ngsim_scenes(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenes = real_data / "commonroad_ngsim" / "US101"
    files = [str(scenes / f"USA_US101-{i}_1_T-1.xml.gz") for i in (22, 23)]
    run = tmp_path / "run"
    args = ["--data", *files, "--split", "all", "--epochs", "1", "--out", str(run), *SMALL_RASTER]
    assert main(["train-traj", *args, "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    capsys.readouterr()
    predictions = tmp_path / "pred.npz"
    other = [str(scenes / "USA_US101-24_1_T-1.xml.gz")]
    assert (
        main(
            [
                "eval-traj",
                str(run),
                "--data",
                *other,
                "--figures",
                "0",
                "--predictions",
                str(predictions),
            ]
        )
        == 0
    )
    zero_shot = json.loads(capsys.readouterr().out)
    assert zero_shot["split"] == "all" and zero_shot["zero_shot"] is True
    saved = np.load(predictions)
    n = zero_shot["n"]
    assert saved["pred"].shape == (n, 6, 30, 2) and saved["prob"].shape == (n, 6)
    assert set(saved["scene"]) == {"USA_US101-24_1_T-1.xml.gz"}
    np.testing.assert_allclose(saved["prob"].sum(axis=1), 1.0, atol=1e-6)
    # Forecasts are in the file's own frame: the first point lies near the last observed one.
    scene = load_scenario(other[0])
    tracks = {t.id: t for t in scene.tracks}
    last = np.array(
        [tracks[i].xy[t] for i, t in zip(saved["track_id"], saved["t_obs"], strict=True)]
    )
    assert np.median(np.linalg.norm(saved["pred"][:, 0, 0] - last, axis=-1)) < 3.0
    assert main(["eval-traj", str(run), "--split", "all", "--figures", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] > 50 and result["k"] == 6
    # Recorded vehicles stay on the road: the truth is almost never off-road.
    assert result["ground_truth"]["offroad_rate"] < 0.05
    assert result["constant_velocity"]["FDE"] > result["constant_velocity"]["ADE"] > 0


def test_skip_bad_leaves_out_an_unreadable_scene(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mapenc.data.traj_sources import load_scenarios
    from mapenc.errors import ScenarioFormatError
    from mapenc.maps.synthetic import write_scenarios

    scenes = write_scenarios(tmp_path / "data", 3)
    broken = scenes[1] / "tracks.csv"
    broken.write_text(broken.read_text().replace(",", ";", 40))  # a converter's bad export
    data = str(tmp_path / "data")
    with pytest.raises(ScenarioFormatError) as err:
        load_scenarios([data])
    assert err.value.path == str(broken)
    skipped: dict[str, str] = {}
    assert len(load_scenarios([data], skipped)) == 2
    assert list(skipped) == [str(scenes[1])]
    assert skipped[str(scenes[1])].startswith(f"{broken}: missing columns")

    run = tmp_path / "run"
    train = ["train-traj", "--data", data, "--split", "all", "--epochs", "1", "--out", str(run)]
    caching = [*SMALL_RASTER, "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main([*train, *caching]) == 2
    assert str(broken) in capsys.readouterr().err
    assert main([*train, *caching, "--skip-bad"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == skipped
    evaluate = ["eval-traj", str(run), "--split", "all", "--k", "2", "--figures", "0"]
    assert main([*evaluate, "--skip-bad"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == skipped


def test_torch_raster_mode_draws_in_the_map_branch_with_no_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, cache = tmp_path / "run", tmp_path / "cache"
    args = ["--data", "synthetic:4", "--max-steps", "3", "--raster-mode", "torch"]
    assert main(["train-traj", *args, "--out", str(run), "--cache-dir", str(cache)]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["steps"] == 3 and trained["map_params"] > 0
    assert not cache.exists() or not any(cache.rglob("*.u8"))  # no raster cache
    assert main(["eval-traj", str(run), "--data", "synthetic:4", "--figures", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0
    workers = ["--num-workers", "2", "--out", str(tmp_path / "w")]
    assert main(["train-traj", *args, *workers]) == 2
    assert "num_workers must be 0" in capsys.readouterr().err
