"""The encoder study: `mapenc compare` on a few hundred MNIST images and a synthetic town, resume,
the summary, and the probes on hand-made encoders whose answers are known."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from mapenc.cli import main
from mapenc.data.mnist import load_mnist
from mapenc.encoders import build_encoder, describe
from mapenc.errors import ConfigError, DataError
from mapenc.evaluation.trajectory_types import TRAJECTORY_TYPES, TYPE_GROUPS, group_masks
from mapenc.geometry.se2 import apply_matrices
from mapenc.raster import RasterSpec
from mapenc.study import CompareConfig, probe_encoder, run_compare, summarise
from mapenc.study.compare import CellProgress, _logged_step, format_type_intervals
from mapenc.study.config import STUDY_TASK_NAMES
from mapenc.study.intervals import bootstrap_mean, bootstrap_p_value, holm_adjusted
from mapenc.study.plots import plot_learning_curves, plot_study
from mapenc.study.probes import (
    ProbeConfig,
    linear_probe_r2,
    point_transforms,
    probe_polyline_encoder,
    rotate,
    shift,
    transforms,
)
from mapenc.study.protocol import Run
from mapenc.study.tasks import STUDY_TASKS, TrajStudy, fixed_input_size
from mapenc.study.traj_scores import (
    PER_SAMPLE_NAME,
    SampleScores,
    interval_entries_by_source,
    interval_entries_by_type,
    read_or_score,
)

TINY_MNIST_ENCODERS = "seed_global,seed_spatial_conv"


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 training and 100 test images of the embedded MNIST subset as an .npz."""
    splits = load_mnist()
    path = tmp_path_factory.mktemp("mnist") / "tiny.npz"
    np.savez(
        path,
        x_train=splits.x_train[:300],
        y_train=splits.y_train[:300],
        x_test=splits.x_test[:100],
        y_test=splits.y_test[:100],
    )
    return path


def compare_args(data: Path, out: Path) -> list[str]:
    return [
        "compare",
        "--task",
        "mnist",
        "--data",
        str(data),
        "--encoders",
        TINY_MNIST_ENCODERS,
        "--seeds",
        "2",
        "--max-steps",
        "3",
        "--batch-size",
        "64",
        "--iw",
        "2",
        "--probe-samples",
        "60",
        "--eval-images",
        "50",
        "--no-progress",
        "--out",
        str(out),
    ]


def table_of(output: str) -> list[str]:
    """The printed table: from its header line to the blank line or file locations after it."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("encoder "))
    end = next(
        i for i, line in enumerate(lines) if i > start and (not line or line.startswith("rows: "))
    )
    return lines[start:end]


@pytest.fixture(scope="module")
def mnist_study(
    tiny_mnist: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, str]:
    """The study run twice into one folder: (folder, first output, second output)."""
    out = tmp_path_factory.mktemp("study")
    outputs = []
    for _ in range(2):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            assert main(compare_args(tiny_mnist, out)) == 0
        outputs.append(buffer.getvalue())
    return out, outputs[0], outputs[1]


def test_mnist_study_writes_rows_with_metrics_sizes_and_probes(
    mnist_study: tuple[Path, str, str],
) -> None:
    out, _, _ = mnist_study
    rows = json.loads((out / "results.json").read_text())
    assert [(r["encoder"], r["seed"]) for r in rows] == [
        ("seed_global", 0),
        ("seed_global", 1),
        ("seed_spatial_conv", 0),
        ("seed_spatial_conv", 1),
    ]
    for row in rows:
        assert row["test_loss"] > 0 and row["nll"] > 0 and row["seconds"] > 0
        assert row["params"] > row["encoder_params"] > 0 and row["encoder_macs"] > 0
        assert row["steps"] == 3 and row["test_images"] == 50
        assert row["seconds"] == pytest.approx(row["train_seconds"] + row["eval_seconds"], abs=0.1)
        for name in ("shift", "rotate", "flip", "rot90"):
            assert row[f"probe_sensitivity_{name}"] >= 0
        assert row["probe_where_r2"] <= 1.0
        assert 0 <= row["probe_active_units"] <= row["probe_latent_dims"] == 20
    by_encoder = {r["encoder"]: r for r in rows}
    assert by_encoder["seed_global"]["bottleneck_shape"] == [[128, 1, 1]]
    assert by_encoder["seed_spatial_conv"]["bottleneck_shape"] == [[1, 7, 7]]
    assert by_encoder["seed_spatial_conv"]["bottleneck_elements"] == 49
    # Different seeds train different networks.
    assert rows[0]["test_loss"] != rows[1]["test_loss"]


def test_mnist_study_summary_table_and_plots(mnist_study: tuple[Path, str, str]) -> None:
    out, first, _ = mnist_study
    rows = json.loads((out / "results.json").read_text())
    saved = json.loads((out / "summary.json").read_text())
    assert saved["task"] == "mnist"
    summary = saved["encoders"]
    assert [s["encoder"] for s in summary] == ["seed_global", "seed_spatial_conv"]
    losses = [r["test_loss"] for r in rows if r["encoder"] == "seed_global"]
    assert summary[0]["n"] == 2
    assert summary[0]["test_loss"]["mean"] == pytest.approx(np.mean(losses))
    assert summary[0]["test_loss"]["std"] == pytest.approx(np.std(losses, ddof=1))
    assert summary[0]["params"]["std"] == 0.0
    # Student-t over the 2 seeds (t = 12.7062 at 1 degree of freedom), Welch for the difference.
    half = 12.7062 * np.std(losses, ddof=1) / np.sqrt(2)
    interval = summary[0]["metrics"]["test_loss"]
    assert interval["ci95"] == pytest.approx(
        [np.mean(losses) - half, np.mean(losses) + half], abs=2e-3
    )
    assert saved["references"] == ["seed_global"] and "minus_seed_global" not in summary[0]
    others = [r["test_loss"] for r in rows if r["encoder"] == "seed_spatial_conv"]
    difference = summary[1]["minus_seed_global"]["test_loss"]
    assert difference["mean"] == pytest.approx(np.mean(others) - np.mean(losses), abs=1e-3)
    assert "differences to seed_global, 95 % intervals over seeds" in first
    header, *lines = table_of(first)
    assert len(lines) == 2
    assert "test_loss" in header and "nll" in header and "where_r2" in header
    assert lines[0].startswith("seed_global") and "±" in lines[0]
    for name in ("metric_vs_params", "metric_vs_bottleneck", "probes"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_mnist_study_resumes_without_retraining(mnist_study: tuple[Path, str, str]) -> None:
    out, first, second = mnist_study
    assert "finished earlier" not in first
    for run in ("seed_global-s0", "seed_global-s1", "seed_spatial_conv-s0", "seed_spatial_conv-s1"):
        assert f"{run}: finished earlier" in second
    # The table is rebuilt from the same runs.
    assert table_of(first) == table_of(second)
    log = (out / "runs" / "seed_global-s0" / "train_log.csv").read_text().splitlines()
    assert len(log) == 2  # header + the one logged window of the only training


def test_traj_study_on_the_synthetic_town(tmp_path: Path) -> None:
    config = CompareConfig(
        task="traj",
        encoders=("none", "conv-spatial", "vector"),
        seeds=2,
        data=("synthetic:2",),
        max_steps=2,
        raster_sizes=(32,),
        train_split="all",
        eval_split="all",
        cache_dir=str(tmp_path / "cache"),
        probe_samples=40,
        progress=False,
        workers=2,
        references=("none", "conv-spatial"),
    )
    rows = run_compare(config, tmp_path / "study")[:3]  # seed 0 of each encoder
    no_map, spatial, vector = rows
    assert [row["encoder"] for row in rows] == ["none", "conv-spatial", "vector"]
    for row in rows:
        assert row["minADE"] > 0 and row["minFDE"] >= row["minADE"] * 0.5
        assert 0.0 <= row["offroad_rate"] <= 1.0 and row["raster_size"] == 32
    assert no_map["bottleneck_elements"] == 0 and "probe_where_r2" not in no_map
    assert spatial["bottleneck_elements"] > 0 and spatial["params"] > no_map["params"]
    assert 0 <= spatial["probe_active_units"] <= spatial["probe_latent_dims"] == 32
    assert vector["bottleneck_shape"] == [[129, 64]] and vector["encoder_params"] > 0
    assert no_map["encoder_macs"] == 0 < vector["encoder_macs"]
    assert spatial["encoder_macs"] > spatial["encoder_params"]  # a conv reuses each weight
    # The vector encoder is probed on its polylines, moved as the pixels of the same rasters.
    assert vector["probe_sensitivity_shift"] >= 0.0 and vector["probe_latent_dims"] == 32
    assert vector["probe_where_r2"] <= 1.0 and "probe_sensitivity_rot90" in vector
    assert (tmp_path / "study" / "runs" / "conv-spatial-s0" / "probes.json").is_file()
    assert (tmp_path / "study" / "probes.png").is_file()
    check_traj_summary(tmp_path / "study")


def check_traj_summary(out: Path) -> None:
    """summary.json: per encoder and baseline, means with intervals over scenes and seeds, and
    paired differences to no map and to conv-spatial that agree with the per-sample files."""
    summary = json.loads((out / "summary.json").read_text())
    entries = {entry["encoder"]: entry for entry in summary["encoders"]}
    assert set(entries) == {"none", "conv-spatial", "vector"}
    rows = json.loads((out / "results.json").read_text())
    per_sample = {
        name: [SampleScores.load(out / "runs" / f"{name}-s{s}" / PER_SAMPLE_NAME) for s in (0, 1)]
        for name in entries
    }
    for name, entry in entries.items():
        assert entry["seeds"] == 2
        for metric in ("minADE", "minFDE", "miss_rate", "offroad_rate"):
            interval = entry["metrics"][metric]
            low, high = interval["ci95"]
            assert low <= interval["mean"] <= high
            runs = [r[metric] for r in rows if r["encoder"] == name and metric in r]
            if runs:  # the row's rounded means are the per-sample means
                assert interval["mean"] == pytest.approx(np.mean(runs), abs=1e-3)
        for reference in ("none", "conv-spatial"):
            if name == reference:
                assert f"minus_{reference}" not in entry
                continue
            both = zip(per_sample[name], per_sample[reference], strict=True)
            expected = np.mean([a.values["minFDE"] - b.values["minFDE"] for a, b in both])
            difference = entry[f"minus_{reference}"]["minFDE"]["mean"]
            assert difference == pytest.approx(expected, abs=1e-4)
    baselines = {b["baseline"]: b for b in summary["baselines"]}
    kinematic = baselines["kinematic"]
    low, high = kinematic["metrics"]["minFDE"]["ci95"]
    assert kinematic["seeds"] == 0 and low <= kinematic["metrics"]["minFDE"]["mean"] <= high
    assert "minus_none" in kinematic and "minus_conv-spatial" in kinematic
    assert summary["references"] == ["none", "conv-spatial"] and "cv_recorded" in baselines
    scenes = summary["all_scenes"]  # the scored split's scene names
    assert len(scenes) == 2 and all(name.startswith("synthetic") for name in scenes)
    with np.load(out / "all_samples.npz") as identities:  # what each per-sample row is
        assert list(identities["scene"]) == list(per_sample["none"][0].scenes)
        assert set(identities["source"]) == {"synthetic"}
        assert len(identities["track_id"]) == len(identities["t_obs"]) == len(identities["scene"])
        assert list(identities["trajectory_type"]) == list(per_sample["none"][0].types)
    assert summary["by_source"]["synthetic"]["n"] == len(per_sample["none"][0].scenes)
    family = summary["multiple_comparisons"]
    pairs = {(c["encoder"], c["reference"]) for c in family["comparisons"]}
    # Each unordered pair once: conv-spatial - none is not asked again as none - conv-spatial.
    assert pairs == {("conv-spatial", "none"), ("vector", "none"), ("vector", "conv-spatial")}
    for comparison in family["comparisons"]:
        assert comparison["p"] <= comparison["p_holm"] <= 1.0
        assert comparison["p"] >= 1.0 / family["draws"]
    check_traj_summary_by_type(summary, rows, per_sample)


def check_traj_summary_by_type(
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    per_sample: dict[str, list[SampleScores]],
) -> None:
    """by_trajectory_type: every group, counts that add up, intervals per group whose paired
    differences are those of the per-sample files within the group; the rows' model means per
    type; the printed table of all, moving and turning agents."""
    by_type = summary["by_trajectory_type"]
    assert set(by_type) == set(TYPE_GROUPS)  # summary.json's keys are sorted
    types = per_sample["vector"][0].types
    assert types is not None
    n = len(types)
    assert sum(by_type[t]["n"] for t in TRAJECTORY_TYPES) == n
    assert by_type["moving"]["n"] == n - by_type["stationary"]["n"] > 0
    for group in TYPE_GROUPS:
        rows_of_group = group_masks(types)[group]
        entry = by_type[group]
        assert entry["n"] == int(rows_of_group.sum())
        if entry["n"] == 0:
            assert entry == {"n": 0, "scenes": 0}
            continue
        vector = entry["intervals"]["vector"]
        both = zip(per_sample["vector"], per_sample["none"], strict=True)
        expected = np.mean(
            [(a.values["minFDE"] - b.values["minFDE"])[rows_of_group] for a, b in both]
        )
        assert vector["minus_none"]["minFDE"]["mean"] == pytest.approx(expected, abs=1e-4)
        assert set(entry["intervals"]) >= {"none", "conv-spatial", "vector", "kinematic"}
    row = next(r for r in rows if r["encoder"] == "vector" and r["seed"] == 0)
    moving = row["by_trajectory_type"]["moving"]
    assert moving["n"] == by_type["moving"]["n"] and moving["minFDE"] > 0
    table = format_type_intervals(summary, "none").splitlines()
    assert table[0].split()[:3] == ["method", "all", f"(n={n})"]
    assert "moving" in table[0] and "turning" in table[0] and len(table) == 1 + 3 + 5


def test_per_sample_scores_saved_before_trajectory_types_are_scored_again(tmp_path: Path) -> None:
    values = {m: np.array([0.5, 2.5]) for m in ("minADE", "minFDE", "miss_rate", "offroad_rate")}
    old = SampleScores(np.array(["a", "b"]), values)  # no types: an earlier study's file
    old.save(tmp_path / PER_SAMPLE_NAME)
    assert SampleScores.load(tmp_path / PER_SAMPLE_NAME).types is None
    typed = SampleScores(np.array(["a", "b"]), values, np.array(["stationary", "left_turn"]))
    rescored = read_or_score(tmp_path, lambda: typed).types
    assert rescored is not None and rescored.tolist() == ["stationary", "left_turn"]
    again = read_or_score(tmp_path, lambda: pytest.fail("scored twice"))
    assert again.types is not None and again.types.tolist() == ["stationary", "left_turn"]
    by_type = interval_entries_by_type({"a": [typed]}, {}, ())
    assert by_type["turning"]["n"] == by_type["moving"]["n"] == 1
    assert by_type["straight"] == {"n": 0, "scenes": 0}
    with pytest.raises(DataError, match="trajectory types"):
        interval_entries_by_type({"a": [typed], "b": [old]}, {}, ())


def test_the_time_left_scales_each_pending_cell_by_how_slow_the_finished_ones_ran(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cheap, dear, dearer = Run("none", 0), Run("resnet", 0), Run("resnet", 1)
    progress = CellProgress(workers=2, expected_s={cheap: 60.0, dear: 600.0, dearer: 600.0})
    progress.finished(cheap, 120.0)  # twice its estimate: the dear cells will take 2 x 600 s
    line = capsys.readouterr().out
    assert "[1/3] none-s0 done in 2.0 min" in line
    assert "about 20.0 min left (cells take 2.0x their timed steps)" in line


def test_progress_reads_a_log_whose_last_line_a_worker_is_still_writing(tmp_path: Path) -> None:
    (tmp_path / "train_log.csv").write_text("step,epoch,loss\n50,1,3.5\n100,2,2.5\n15")
    assert _logged_step(tmp_path) == 100


def test_summary_groups_by_encoder_and_raster_size() -> None:
    rows = [
        {"encoder": "a", "seed": s, "raster_size": r, "minADE": float(s + r)}
        for r in (32, 64)
        for s in (0, 1, 2)
    ]
    summary = summarise(rows)
    assert [(e["encoder"], e["raster_size"], e["n"]) for e in summary] == [
        ("a", 32, 3),
        ("a", 64, 3),
    ]
    assert summary[1]["minADE"] == {"mean": 65.0, "std": 1.0}


def test_bad_study_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown encoder 'nope'"):
        CompareConfig(encoders=("nope",))
    with pytest.raises(ConfigError, match="unknown encoder 'none'"):
        CompareConfig(task="mnist", encoders=("none",))
    with pytest.raises(ConfigError, match="needs data"):
        CompareConfig(task="traj", encoders=("none",))
    with pytest.raises(ConfigError, match="distinct"):
        CompareConfig(encoders=("conv-global", "conv-global"))
    with pytest.raises(ConfigError, match="resnet not among the encoders"):
        CompareConfig(encoders=("conv-global",), references=("resnet",))


def test_holm_adjusts_step_down_and_the_bootstrap_p_value_matches_its_interval() -> None:
    adjusted = holm_adjusted([0.01, 0.04, 0.03, 0.2])
    # Sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1 (0.04, 0.09, 0.08, 0.2), then made
    # non-decreasing in that order (0.08 -> 0.09), and given back in the input order.
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.2])
    scenes = np.repeat(np.arange(40), 5)
    clear = np.random.default_rng(0).normal(1.0, 0.5, 200)
    assert bootstrap_p_value(clear, scenes, draws=4000) == pytest.approx(1 / 4000)
    noise = np.random.default_rng(1).normal(0.0, 1.0, 200)
    p_noise = bootstrap_p_value(noise, scenes, draws=4000)
    interval = bootstrap_mean(noise, scenes, draws=4000)
    assert (p_noise < 0.05) == (not interval.includes_zero) and p_noise > 0.05


def test_seed_spatial_takes_every_map_layer_at_its_own_100_pixels_in_the_study() -> None:
    encoder = build_encoder("seed_spatial", in_channels=6)
    assert encoder.input_shape == (6, 100, 100)
    assert encoder(torch.zeros(2, 6, 100, 100)).shape == (2, 16)
    assert [fixed_input_size(name) for name in ("seed_spatial", "conv-global", "vector")] == [
        100,
        None,
        None,
    ]
    layers = ("drivable_area", "crosswalks", "centerlines")
    config = CompareConfig(
        task="traj",
        encoders=("none", "seed_spatial", "conv-global"),
        seeds=2,
        data=("synthetic:2",),
        layers=layers,
    )
    study = TrajStudy(config)
    # Seed by seed, so that a study cut short holds whole seeds.
    assert [run.folder_name() for run in study.runs()] == [
        "none-s0",
        "seed_spatial-s0",
        "conv-global-s0",
        "none-s1",
        "seed_spatial-s1",
        "conv-global-s1",
    ]
    own = study.experiment(Run("seed_spatial", 0))
    shared = study.experiment(Run("conv-global", 0))
    assert own.raster.size_px == (100, 100) and own.raster.pixel_size_m == pytest.approx(0.64)
    assert shared.raster.size_px == (64, 64) and shared.raster.pixel_size_m == 1.0
    assert own.raster.layers == shared.raster.layers == layers
    assert own.model.raster_channels == 3 and own.model.raster_size == (100, 100)
    with pytest.raises(ConfigError, match="layers"):
        CompareConfig(task="traj", encoders=("none",), data=("synthetic:2",), layers=("roads",))


def test_each_data_set_gets_its_own_intervals_and_trajectory_types() -> None:
    scenes = np.array(["a/1", "a/1", "a/2", "b/1", "b/2", "b/2"])
    types = np.array(
        ["stationary", "left_turn", "straight", "stationary", "right_turn", "straight"]
    )
    sources = ["a", "a", "a", "b", "b", "b"]

    def scores(minfde: list[float]) -> SampleScores:
        values = np.array(minfde)
        metrics = {"minADE": values / 2, "minFDE": values, "miss_rate": values > 2}
        metrics["offroad_rate"] = np.zeros(6)
        return SampleScores(scenes, {m: v.astype(float) for m, v in metrics.items()}, types)

    runs = {"none": [scores([1, 2, 3, 4, 5, 6])], "map": [scores([1, 1, 1, 4, 4, 4])]}
    baselines = {"kinematic": scores([2, 2, 2, 2, 2, 2])}
    by_source = interval_entries_by_source(runs, baselines, ["none"], sources)
    assert set(by_source) == {"a", "b"}
    assert (by_source["a"]["n"], by_source["a"]["scenes"]) == (3, 2)
    a_map = by_source["a"]["intervals"]["map"]
    assert a_map["metrics"]["minFDE"]["mean"] == pytest.approx(1.0)
    assert a_map["minus_none"]["minFDE"]["mean"] == pytest.approx(1.0 - 2.0)
    b_types = by_source["b"]["by_trajectory_type"]
    assert b_types["turning"]["n"] == 1 and b_types["stationary"]["n"] == 1
    turning = b_types["turning"]["intervals"]["map"]
    assert turning["minus_none"]["minFDE"]["mean"] == pytest.approx(4.0 - 5.0)
    assert b_types["left_turn"] == {"n": 0, "scenes": 0}


def test_seed_spatial_analogue_keeps_the_design_at_28_pixels() -> None:
    encoder = build_encoder("seed_spatial_conv", in_channels=1, input_size=(28, 28))
    description = describe(encoder, (1, 28, 28))
    assert [list(shape) for _, shape in description.bottleneck] == [[1, 7, 7]]
    convs = [row for row in description.rows if row.kind == "Conv2d"]
    assert [row.output_shape[0] for row in convs] == [10, 20, 1]
    # Same share of the input as seed_spatial's 45 px of 100.
    assert convs[-1].receptive_field_px == (13.0, 13.0)


class ConstantEncoder(nn.Module):
    """Ignores its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(x), 8)


class FlattenEncoder(nn.Module):
    """Keeps every pixel: the latent is the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(start_dim=1)


class TotalInkEncoder(nn.Module):
    """Sum of each channel: blind to where things are, invariant to flips and quarter turns."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(-2, -1))


def random_images(n: int = 400, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))


def test_an_encoder_that_ignores_its_input_has_no_sensitivity_and_no_active_unit() -> None:
    probes = probe_encoder(ConstantEncoder(), random_images(100))
    for name in ("shift", "rotate", "flip", "rot90"):
        assert probes[f"sensitivity_{name}"] == 0.0
    assert probes["active_units"] == 0 and probes["latent_dims"] == 8
    assert probes["where_r2"] < 0.05


def test_an_identity_like_encoder_is_sensitive_and_knows_where_things_are() -> None:
    probes = probe_encoder(FlattenEncoder(), random_images())
    assert probes["sensitivity_shift"] > 0.5
    assert probes["sensitivity_flip"] > 0.5 and probes["sensitivity_rot90"] > 0.5
    assert probes["where_r2"] > 0.99
    assert probes["active_units"] == 256


def test_a_global_sum_is_invariant_to_flips_and_blind_to_position() -> None:
    probes = probe_encoder(TotalInkEncoder(), random_images())
    assert probes["sensitivity_flip"] == pytest.approx(0.0, abs=1e-4)  # float32 sums
    assert probes["sensitivity_rot90"] == pytest.approx(0.0, abs=1e-4)
    assert probes["sensitivity_shift"] > 0.5  # shifting pushes ink out of the frame
    assert probes["where_r2"] < 0.3


def test_transforms_move_pixels_where_expected() -> None:
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 2, 3] = 1.0
    moved = shift(x, 2)
    assert moved[0, 0, 4, 5] == 1.0 and moved.sum() == 1.0
    turned = rotate(x, 90.0)
    assert torch.allclose(turned, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)


def pixel_of(point: tuple[float, float], spec: RasterSpec) -> tuple[float, float]:
    """(row, column) whose centre is the agent-frame point (DESIGN.md's pixel convention)."""
    (h, w), size, (ax, ay) = spec.size_px, spec.pixel_size_m, spec.agent_at
    return ay * h - point[1] / size - 0.5, point[0] / size + ax * w - 0.5


@pytest.mark.parametrize("size_px", [(16, 16), (12, 20)])
def test_point_transforms_move_map_points_as_the_pixel_transforms_move_pixels(
    size_px: tuple[int, int],
) -> None:
    spec = RasterSpec(size_px=size_px, pixel_size_m=0.5, agent_at=(0.25, 0.5))
    config = ProbeConfig(shift_px=2, rotate_deg=30.0)
    row, column = 3, 6
    (h, w), size, (ax, ay) = spec.size_px, spec.pixel_size_m, spec.agent_at
    point = ((column + 0.5) * size - ax * w * size, ay * h * size - (row + 0.5) * size)
    raster = torch.zeros(1, 1, *size_px, dtype=torch.float64)
    raster[0, 0, row, column] = 1.0
    pixel_moves = transforms(config, square=size_px[0] == size_px[1])
    point_moves = point_transforms(config, spec)
    assert pixel_moves.keys() == point_moves.keys()
    for name, matrix in point_moves.items():
        moved = pixel_moves[name](raster)[0, 0]
        rows, columns = torch.meshgrid(
            torch.arange(size_px[0], dtype=torch.float64),
            torch.arange(size_px[1], dtype=torch.float64),
            indexing="ij",
        )
        lit = (
            float((moved * rows).sum() / moved.sum()),
            float((moved * columns).sum() / moved.sum()),
        )
        expected = pixel_of(tuple(apply_matrices(matrix, np.array(point))), spec)
        assert lit == pytest.approx(expected, abs=0.1), name  # bilinear turns blur a little


class MeanPointEncoder(nn.Module):
    """Latent = mean of the present map points and of the past: moves with the map."""

    def forward(self, points, mask, types, past, heading):  # type: ignore[no-untyped-def]
        weights = mask[..., None].to(points.dtype)
        mean = (points * weights).sum(dim=(1, 2)) / weights.sum(dim=(1, 2)).clamp_min(1)
        return torch.cat([mean, past.mean(dim=1)], dim=1)


class PastOnlyEncoder(nn.Module):
    """Latent = the agent's past alone: blind to the map."""

    def forward(self, points, mask, types, past, heading):  # type: ignore[no-untyped-def]
        return past.flatten(1)


def polyline_probe_inputs(n: int = 60) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(n, 4, 3, 2, generator=generator) * 5
    mask = torch.ones(n, 4, 3, dtype=torch.bool)
    mask[:, 3] = False
    types = torch.zeros(n, 4, dtype=torch.int64)
    past = torch.randn(n, 5, 2, generator=generator)
    return (points, mask, types, past, torch.zeros(n, 5)), random_images(n)


def test_the_vector_probes_see_which_encoders_follow_the_map() -> None:
    spec = RasterSpec(size_px=(28, 28), pixel_size_m=1.0)
    polylines, rasters = polyline_probe_inputs()
    blind = probe_polyline_encoder(PastOnlyEncoder(), polylines, rasters, spec)  # type: ignore[arg-type]
    following = probe_polyline_encoder(MeanPointEncoder(), polylines, rasters, spec)  # type: ignore[arg-type]
    assert blind.keys() == following.keys() == probe_encoder(FlattenEncoder(), rasters).keys()
    for name in ("shift", "rotate", "flip", "rot90"):
        assert blind[f"sensitivity_{name}"] == 0.0 and following[f"sensitivity_{name}"] > 0.1
    with pytest.raises(DataError, match="60 samples of polylines but 59 rasters"):
        probe_polyline_encoder(MeanPointEncoder(), polylines, rasters[:59], spec)  # type: ignore[arg-type]


def test_linear_probe_scores_linear_targets_high_and_noise_low() -> None:
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(300, 5, generator=generator, dtype=torch.float64)
    linear = latents @ torch.randn(5, 3, generator=generator, dtype=torch.float64)
    noise = torch.randn(300, 3, generator=generator, dtype=torch.float64)
    assert linear_probe_r2(latents, linear, ridge=1e-6) > 0.999
    assert linear_probe_r2(latents, noise) < 0.1


def test_every_study_task_name_has_a_task() -> None:
    assert sorted(STUDY_TASKS) == sorted(STUDY_TASK_NAMES)


def test_learning_curves_add_the_held_out_score_per_epoch_when_runs_logged_one(
    tmp_path: Path,
) -> None:
    def run(name: str, held_out: bool) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        log = folder / "train_log.csv"
        log.write_text("step,loss\n" + "".join(f"{s},{10 / s}\n" for s in range(1, 50)))
        if held_out:
            (folder / "epochs.csv").write_text(
                "epoch,step,loss,eval_val_minFDE\n1,25,1,2.0\n2,49,1,1.5\n"
            )
        return log

    def width(png: Path) -> int:
        return int.from_bytes(png.read_bytes()[16:20], "big")  # the PNG header's width

    plain = plot_learning_curves({"a": [run("a", False)]}, tmp_path / "plain.png")
    both = plot_learning_curves({"b": [run("b", True)]}, tmp_path / "both.png")
    assert width(plain) == 700 and width(both) == 1200  # one panel, or two at 100 dpi


def test_log_axis_tick_labels_do_not_overlap(tmp_path: Path) -> None:
    """Bottleneck sizes spanning about a decade (the MNIST study's: 16 to 160) once made
    matplotlib label its minor ticks, which ran into each other."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    summary = [
        {
            "encoder": name,
            "raster_size": None,
            "n": 1,
            "test_loss": {"mean": loss, "std": 0.0},
            "nll": {"mean": loss, "std": 0.0},
            "encoder_params": {"mean": params, "std": 0.0},
            "bottleneck_elements": {"mean": elements, "std": 0.0},
        }
        for name, loss, params, elements in (
            ("a", 100.0, 120_000.0, 16.0),
            ("b", 95.0, 180_000.0, 49.0),
            ("c", 90.0, 450_000.0, 128.0),
            ("d", 92.0, 300_000.0, 160.0),
        )
    ]
    drawn: list[Figure] = []
    original_close = plt.close
    try:
        plt.close = drawn.append  # type: ignore[assignment]
        plot_study(summary, ("test_loss", "nll"), "mnist", tmp_path)
    finally:
        plt.close = original_close
    assert drawn
    for figure in drawn[:2]:  # metric_vs_params, metric_vs_bottleneck
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        for axes in figure.axes:
            labels = [
                label.get_window_extent(renderer)
                for label in axes.get_xticklabels(which="both")
                if label.get_text() and label.get_visible()
            ]
            labels = [box for box in labels if axes.bbox.x0 - 1 <= box.x0 <= axes.bbox.x1 + 1]
            assert labels, "every axis shows some tick labels"
            ordered = sorted(labels, key=lambda box: box.x0)
            for left, right in itertools.pairwise(ordered):
                assert left.x1 <= right.x0, "tick labels overlap"
        original_close(figure)
