"""train-traj on streamed shards: a run stopped and resumed ends bit-identical to an
uninterrupted one (with DataLoader workers), eval-traj will not score it on its own training data,
peak memory does not grow with the number of shards, and two torchrun ranks each read their own
part of the shards."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from traj_scenes import store_shards

from mapenc.data.streaming import StreamingSamples
from mapenc.data.trajectory import NGSIM_TASK
from mapenc.errors import ConfigError
from mapenc.experiments import trajectory
from mapenc.experiments.trajectory import SYNTHETIC_RASTER, make_experiment_config
from mapenc.maps import iter_scenarios
from mapenc.train import TrainConfig
from mapenc.train.checkpoint import load_checkpoint

TASK = dataclasses.replace(NGSIM_TASK, stride_steps=40)


def streamed_config(shards: list[Path], **train: object) -> trajectory.TrajExperimentConfig:
    settings: dict[str, object] = {"epochs": 2, "batch_size": 16, "progress": False}
    config = make_experiment_config(
        [str(s) for s in shards],
        task=TASK,
        raster=SYNTHETIC_RASTER,
        train=TrainConfig(grad_clip_norm=5.0, **{**settings, **train}),  # type: ignore[arg-type]
    )
    return dataclasses.replace(config, stream=True, shuffle_buffer=64)


def test_a_stopped_and_resumed_streamed_run_ends_bit_identical(tmp_path: Path) -> None:
    shards = store_shards(tmp_path / "shards", 4, 1)
    straight = trajectory.train(streamed_config(shards, num_workers=2), tmp_path / "straight")
    facts = trajectory.training_facts(straight)
    assert facts["stopped"] == "epochs" and facts["epochs"] == 2
    assert facts["streamed"]["shards"] == 4 and facts["streamed"]["epoch_scenarios"] == 4
    steps = facts["steps"]
    split = tmp_path / "split"
    # Stopped in the first epoch, then in the second, then to the end.
    for stop in (5, steps // 2 + 3, None):
        config = streamed_config(shards, num_workers=2, max_steps=stop)
        trajectory.train(config, split, resume=stop != 5)
    assert trajectory.training_facts(split)["steps"] == steps
    want = load_checkpoint(straight / "checkpoint.pt")["model"]
    got = load_checkpoint(split / "checkpoint.pt")["model"]
    for name, value in want.items():
        assert torch.equal(got[name], value), f"{name} differs after stop + resume"
    with pytest.raises(ConfigError, match="held out"):
        trajectory.evaluate(straight, figures=0)


def test_streamed_evaluation_equals_the_in_memory_one(tmp_path: Path) -> None:
    run = trajectory.train(
        streamed_config(store_shards(tmp_path / "train", 2, 1), max_steps=3), tmp_path / "run"
    )
    held_out = [str(p) for p in store_shards(tmp_path / "held", 2, 2, seed=7)]
    in_memory = trajectory.evaluate(run, held_out, figures=0).to_dict()
    streamed = trajectory.evaluate(run, held_out, stream=True).to_dict()
    assert streamed.keys() == in_memory.keys()
    for name in ("n", "scenes", "split", "zero_shot", "resampling", "ground_truth", "baselines"):
        assert streamed[name] == in_memory[name], name
    for metric, value in in_memory["model"].items():
        assert streamed["model"][metric] == pytest.approx(value, abs=2e-4), metric
    assert streamed["by_kind"].keys() == in_memory["by_kind"].keys()
    with pytest.raises(ConfigError, match="split 'test' with stream"):
        trajectory.evaluate(run, held_out, split="test", stream=True)


PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _peak_rss_kib(shards: list[Path], out: Path) -> int:
    """Peak RSS (KiB) of a one-epoch streamed train-traj run on ``shards``."""
    command = [sys.executable, "-m", "mapenc", "train-traj", "--data", *map(str, shards)]
    command += ["--stream", "--shuffle-buffer", "64", "--epochs", "1", "--batch-size", "32"]
    command += ["--raster-size", "48", "48", "--no-progress", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_WRAPPER, *command],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return int(run.stdout.split()[-1])


@pytest.mark.slow
def test_streamed_training_peak_memory_does_not_grow_with_the_number_of_shards(
    tmp_path: Path,
) -> None:
    shards = store_shards(tmp_path / "shards", 4, 3)
    one = _peak_rss_kib(shards[:1], tmp_path / "one")
    four = _peak_rss_kib(shards, tmp_path / "four")
    assert four <= 1.10 * one, (one, four)


def torchrun_train(shards: list[Path], run: Path, *flags: str) -> None:
    """A streamed train-traj of ``shards`` into ``run`` under torchrun: two CPU ranks (gloo),
    two DataLoader workers each."""
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    train = ["-m", "mapenc", "train-traj", "--data", *map(str, shards), "--stream"]
    train += ["--num-workers", "2", "--batch-size", "16", "--raster-size", "48", "48"]
    done = subprocess.run(
        [*launch, *train, "--no-progress", "--out", str(run), *flags],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_torchrun_ranks_train_on_their_own_shards_and_resume_exactly(tmp_path: Path) -> None:
    shards = store_shards(tmp_path / "shards", 4, 1)
    straight, split = tmp_path / "straight", tmp_path / "split"
    torchrun_train(shards, straight, "--epochs", "1")
    streamed = json.loads((straight / "training.json").read_text())["streamed"]
    # Rank 0 (the one that writes) read scenarios of its own shards only: fewer than all.
    config = streamed_config(shards)
    own = StreamingSamples(shards, config.task, config.raster, seed=config.train.seed)
    own_scenarios = sum(1 for shard in own.shards_of(0, 2) for _ in iter_scenarios(shard))
    assert 0 < streamed["epoch_scenarios"] <= own_scenarios < len(shards)
    # Stopped after 3 steps, resumed to the end of the epoch: rank 0's weights as uninterrupted.
    torchrun_train(shards, split, "--epochs", "1", "--max-steps", "3")
    torchrun_train(shards, split, "--epochs", "1", "--resume")
    want = load_checkpoint(straight / "checkpoint.pt")
    got = load_checkpoint(split / "checkpoint.pt")
    assert got["step"] == want["step"] > 3
    for name, value in want["model"].items():
        assert torch.equal(got["model"][name], value), f"{name} differs after stop + resume"
