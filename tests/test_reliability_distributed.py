"""Both training commands under torchrun, two CPU processes (gloo), end to end: one claim of the
run folder per run (rank 0's), the other rank waiting for it and sharing its refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mnist_files import tiny_mnist_file

pytestmark = pytest.mark.slow


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    """``mapenc *args`` under ``torch.distributed.run`` with two CPU processes."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "mapenc",
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},
        timeout=300,
    )


def traj_args(run: Path, cache: Path) -> list[str]:
    return [
        "train-traj",
        "--data",
        "synthetic:4",
        "--max-steps",
        "5",
        "--no-progress",
        "--cache-dir",
        str(cache),
        "--out",
        str(run),
    ]


def test_train_traj_under_torchrun_trains_once_and_a_rerun_is_refused_on_every_rank(
    tmp_path: Path,
) -> None:
    run, cache = tmp_path / "run", tmp_path / "cache"
    done = torchrun(*traj_args(run, cache))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "another training run" not in done.stderr
    assert {"checkpoint.pt", "config.json", "training.json"} <= {p.name for p in run.iterdir()}
    assert not (run / ".lock").exists()
    assert '"steps": 5' in done.stdout
    # Into the same folder again: rank 0 is refused, the other rank raises the same refusal
    # rather than training alone or waiting forever at the first collective.
    again = torchrun(*traj_args(run, cache))
    assert again.returncode != 0
    refusals = [line for line in again.stderr.splitlines() if "holds a run already" in line]
    assert len(refusals) == 2, again.stderr[-3000:]
    assert all(line.startswith("mapenc train-traj: error: ") for line in refusals)


def test_train_mnist_under_torchrun(tmp_path: Path) -> None:
    data = tiny_mnist_file(tmp_path / "tiny.npz", 256, 64)
    run = tmp_path / "run"
    args = ["--data", str(data), "--iw", "2", "--max-steps", "5", "--no-progress"]
    done = torchrun("train-mnist", *args, "--out", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"checkpoint.pt", "config.json", "metrics.json"} <= {p.name for p in run.iterdir()}
    assert '"test_loss"' in done.stdout
    assert not (run / ".lock").exists()
