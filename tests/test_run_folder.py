"""Run folders: an existing run is never replaced by accident, one writer at a time, resume is
bit-identical even for a model that samples, a finished run resumed is a no-op, logs survive."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_train_loop import SIGKILL_SCRIPT, TinyRegression, quiet, read_rows, regression_data
from torch import nn

from mapenc.errors import TrainingError
from mapenc.train import fit
from mapenc.train.checkpoint import load_checkpoint, save_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]


class TinySamplingVAE(nn.Module):
    """A VAE-shaped regression: ``z = mu(x) + sigma * eps`` with ``eps`` from the global RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(4, 2)
        self.decode = nn.Linear(2, 1)
        self.log_sigma = nn.Parameter(torch.zeros(2))

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        mu = self.encode(x)
        z = mu + self.log_sigma.exp() * torch.randn_like(mu)
        recon = (self.decode(z) - y).pow(2).mean()
        kl = 0.5 * (mu.pow(2) + (2 * self.log_sigma).exp() - 2 * self.log_sigma - 1).sum(1).mean()
        return recon + 0.01 * kl, {"kl": kl.detach()}


def test_training_into_a_used_folder_is_refused(tmp_path: Path) -> None:
    fit(TinyRegression(), regression_data(64), quiet(epochs=1), tmp_path)
    config_before = (tmp_path / "config.json").read_text()
    log_before = (tmp_path / "train_log.csv").read_text()
    with pytest.raises(TrainingError, match=r"holds a run already .*--resume.*--overwrite"):
        fit(TinyRegression(), regression_data(64), quiet(epochs=2), tmp_path)
    assert (tmp_path / "config.json").read_text() == config_before
    assert (tmp_path / "train_log.csv").read_text() == log_before
    result = fit(TinyRegression(), regression_data(64), quiet(epochs=2), tmp_path, overwrite=True)
    assert result.steps == 4 and load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4


def test_out_naming_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.write_text("a file")
    with pytest.raises(Exception, match="is a file") as err:
        fit(TinyRegression(), regression_data(64), quiet(epochs=1), target)
    assert "\n" not in str(err.value)


def test_resume_of_a_sampling_model_is_bit_identical(tmp_path: Path) -> None:
    torch.manual_seed(0)
    straight = TinySamplingVAE()
    fit(straight, regression_data(), quiet(epochs=5, max_steps=40), tmp_path / "straight")

    torch.manual_seed(0)
    first = TinySamplingVAE()
    fit(first, regression_data(), quiet(epochs=5, max_steps=20), tmp_path / "split")
    torch.manual_seed(99)  # whatever the global RNG holds now, the checkpoint restores it
    second = TinySamplingVAE()
    result = fit(
        second, regression_data(), quiet(epochs=5, max_steps=40), tmp_path / "split", resume=True
    )
    assert result.steps == 40
    for name, value in straight.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name


def test_resuming_a_finished_run_trains_no_further(tmp_path: Path) -> None:
    fit(TinyRegression(), regression_data(), quiet(epochs=5, max_steps=10), tmp_path)
    log = (tmp_path / "train_log.csv").read_text()
    for _ in range(2):
        result = fit(
            TinyRegression(),
            regression_data(),
            quiet(epochs=5, max_steps=10),
            tmp_path,
            resume=True,
        )
        assert result.steps == 10 and result.stopped == "max_steps"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 10
    assert (tmp_path / "train_log.csv").read_text() == log


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"  # 240 slow steps: seconds of training to collide with
    script.write_text(SIGKILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (out / "train_log.csv").is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(TrainingError, match=f"another training run \\(process {proc.pid}\\)"):
            fit(TinyRegression(), regression_data(64), quiet(epochs=1), out, resume=True)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    # The killed process left its lock behind: it is stale, and the run resumes.
    assert (out / ".lock").is_file()
    result = fit(TinyRegression(), regression_data(64), quiet(epochs=1), out, resume=True)
    assert result.steps >= 1
    assert not (out / ".lock").exists()


def test_log_rewrite_on_resume_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fit(TinyRegression(), regression_data(), quiet(epochs=2, max_steps=12), tmp_path)
    before = read_rows(tmp_path / "train_log.csv")
    assert len(before) == 6

    def killed(self: Any, rows: Any) -> None:
        raise KeyboardInterrupt("killed while rewriting the log")

    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(TinyRegression(), regression_data(), quiet(epochs=2), tmp_path, resume=True)
    monkeypatch.undo()
    assert read_rows(tmp_path / "train_log.csv") == before
    fit(TinyRegression(), regression_data(), quiet(epochs=2), tmp_path, resume=True)
    steps = [int(r["step"]) for r in read_rows(tmp_path / "train_log.csv")]
    assert steps == [2, 4, 6, 8, 10, 12, 14, 16]
    assert all(r["loss"] for r in read_rows(tmp_path / "train_log.csv"))


def test_torn_last_log_line_is_dropped_and_garbage_named(tmp_path: Path) -> None:
    fit(TinyRegression(), regression_data(), quiet(epochs=2, max_steps=8), tmp_path)
    log = tmp_path / "train_log.csv"
    clean = log.read_text()
    log.write_text(clean + "10,2,0.5")  # a row cut short by a kill
    fit(TinyRegression(), regression_data(), quiet(epochs=2, max_steps=10), tmp_path, resume=True)
    assert [int(r["step"]) for r in read_rows(log)] == [2, 4, 6, 8, 10]
    log.write_text(clean.replace("\n4,", "\nfour,", 1))
    with pytest.raises(TrainingError, match="line 3: step 'four' is not a whole number"):
        fit(
            TinyRegression(),
            regression_data(),
            quiet(epochs=2, max_steps=12),
            tmp_path,
            resume=True,
        )


def test_a_killed_checkpoint_write_leaves_nothing_behind_after_the_next_start(
    tmp_path: Path,
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = tmp_path / f".checkpoint.pt.{int(dead.stdout)}.k1ll3d.tmp"
    tmp_path.mkdir(exist_ok=True)
    orphan.write_bytes(b"PK half a checkpoint")
    fit(TinyRegression(), regression_data(64), quiet(epochs=1), tmp_path)
    assert not orphan.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_resume_from_a_checkpoint_without_the_model_is_named(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "checkpoint.pt", {"step": 3})
    with pytest.raises(TrainingError, match=r"not a training checkpoint of fit \(no \['epoch'"):
        fit(TinyRegression(), regression_data(64), quiet(epochs=1), tmp_path, resume=True)


def test_an_emptied_log_gets_its_header_back_on_resume(tmp_path: Path) -> None:
    fit(TinyRegression(), regression_data(), quiet(epochs=2, max_steps=8), tmp_path)
    (tmp_path / "train_log.csv").write_text("")  # what a kill mid-rewrite used to leave
    fit(TinyRegression(), regression_data(), quiet(epochs=2, max_steps=12), tmp_path, resume=True)
    rows = read_rows(tmp_path / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [10, 12]
    assert all(r["loss"] and r["epoch"] for r in rows)
