"""The generic training loop: logs, atomic checkpoints, exact resume (also after SIGKILL),
NaN detection, the time budget, and 2-process DDP on CPU."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from mapenc.errors import ConfigError, TrainingError
from mapenc.train import TrainConfig, config_from_dict, config_to_dict, fit
from mapenc.train.checkpoint import load_checkpoint, save_checkpoint
from mapenc.train.distributed import init_distributed, shutdown_distributed

REPO_ROOT = Path(__file__).resolve().parents[1]


class TinyRegression(nn.Module):
    """Linear regression ``[N, 4] -> [N, 1]`` with the ``loss(batch)`` contract of ``fit``."""

    def __init__(self, nan_from_call: int | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.calls = 0
        self.nan_from_call = nan_from_call

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        self.calls += 1
        error = self.linear(x) - y
        loss = error.pow(2).mean()
        if self.nan_from_call is not None and self.calls >= self.nan_from_call:
            loss = loss * float("nan")
        return loss, {"mae": error.abs().mean().detach()}


def regression_data(n: int = 256) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.01 * torch.randn(
        n, 1, generator=generator
    )
    return TensorDataset(x, y)


def quiet(**changes: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "batch_size": 32,
        "lr": 0.3,
        "progress": False,
        "log_every_steps": 2,
    }
    settings.update(changes)
    return TrainConfig(**settings)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_fit_learns_and_writes_logs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyRegression()
    result = fit(model, regression_data(), quiet(epochs=5), tmp_path)
    assert result.steps == 5 * 8 and result.epochs_completed == 5 and result.stopped == "epochs"
    epochs = read_rows(tmp_path / "epochs.csv")
    assert [int(r["epoch"]) for r in epochs] == [1, 2, 3, 4, 5]
    losses = [float(r["loss"]) for r in epochs]
    assert losses[-1] < 0.1 * losses[0]
    steps = [int(r["step"]) for r in read_rows(tmp_path / "train_log.csv")]
    assert steps == list(range(2, 41, 2))
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 40 and state["epoch"] == 5
    saved = config_from_dict(
        TrainConfig, json.loads((tmp_path / "config.json").read_text())["train"]
    )
    assert saved == quiet(epochs=5)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_resume_mid_epoch_continues_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    straight = TinyRegression()
    fit(straight, regression_data(), quiet(epochs=3), tmp_path / "straight")

    torch.manual_seed(0)
    first = TinyRegression()
    stopped = fit(first, regression_data(), quiet(epochs=3, max_steps=11), tmp_path / "split")
    assert stopped.stopped == "max_steps" and stopped.steps == 11
    torch.manual_seed(123)  # a different initialisation: the checkpoint must override it
    second = TinyRegression()
    resumed = fit(second, regression_data(), quiet(epochs=3), tmp_path / "split", resume=True)
    assert resumed.steps == 24 and resumed.epochs_completed == 3
    for a, b in zip(_weights(straight), _weights(second), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    steps = [int(r["step"]) for r in read_rows(tmp_path / "split" / "train_log.csv")]
    assert steps == [2, 4, 6, 8, 10, 11, *range(12, 25, 2)]  # step 11: the stop flushes its row


def test_a_budget_stop_mid_epoch_scores_the_last_weights_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    def held_out_error(model: nn.Module) -> dict[str, float]:
        x, y = regression_data(64).tensors
        torch.rand(5)  # an evaluation that draws from the global RNG must not change training
        with torch.no_grad():
            return {"mse": float((model.linear(x) - y).pow(2).mean())}

    torch.manual_seed(0)
    straight = TinyRegression()
    fit(
        straight, regression_data(), quiet(epochs=3), tmp_path / "straight", evaluate=held_out_error
    )
    torch.manual_seed(0)
    stopped = TinyRegression()
    first = fit(
        stopped,
        regression_data(),
        quiet(epochs=3, max_steps=11),
        tmp_path / "split",
        evaluate=held_out_error,
    )
    rows = read_rows(tmp_path / "split" / "epochs.csv")
    # Epoch 1 (8 steps) and the 3 steps of epoch 2 the budget allowed, scored as epoch 1.375.
    assert [(r["epoch"], int(r["step"])) for r in rows] == [("1", 8), ("1.375", 11)]
    expected = held_out_error(stopped)["mse"]
    assert float(rows[-1]["eval_mse"]) == pytest.approx(expected)
    assert first.last_metrics["eval_mse"] == pytest.approx(expected)
    resumed = TinyRegression()
    fit(
        resumed,
        regression_data(),
        quiet(epochs=3),
        tmp_path / "split",
        resume=True,
        evaluate=held_out_error,
    )
    for a, b in zip(_weights(straight), _weights(resumed), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resume_without_checkpoint_starts_afresh(tmp_path: Path) -> None:
    result = fit(TinyRegression(), regression_data(64), quiet(epochs=1), tmp_path, resume=True)
    assert result.steps == 2


def test_resume_into_a_different_model_names_the_checkpoint(tmp_path: Path) -> None:
    fit(TinyRegression(), regression_data(64), quiet(epochs=1), tmp_path)
    other = TinyRegression()
    other.linear = nn.Linear(4, 2)
    with pytest.raises(TrainingError, match=r"checkpoint\.pt: does not fit"):
        fit(other, regression_data(64), quiet(epochs=2), tmp_path, resume=True)


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})

    def crash_midway(obj: Any, handle: Any) -> None:
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(TrainingError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert path.stat().st_mode & 0o044 == 0o044 & ~os.umask(os.umask(0)), "usual mode, not 0600"
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(TrainingError, match=r"broken\.pt"):
        load_checkpoint(tmp_path / "broken.pt")


def test_nan_loss_raises_training_error_naming_the_step(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"nan at step 3 \(epoch 1\)"):
        fit(TinyRegression(nan_from_call=3), regression_data(), quiet(epochs=2), tmp_path)


def test_time_budget_stops_and_checkpoints(tmp_path: Path) -> None:
    result = fit(
        TinyRegression(), regression_data(), quiet(epochs=1000, max_minutes=0.5 / 60), tmp_path
    )
    assert result.stopped == "max_minutes"
    assert 0 < result.steps < 1000 * 8
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == result.steps


def test_bad_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown settings"):
        config_from_dict(TrainConfig, {**config_to_dict(TrainConfig()), "momentum": 0.9})


SIGKILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import torch
    sys.path.insert(0, {tests!r})
    from test_train_loop import TinyRegression, regression_data, quiet
    from mapenc.train import fit

    class Slow(TinyRegression):
        def loss(self, batch):
            time.sleep(0.02)
            return super().loss(batch)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = Slow()
    result = fit(model, regression_data(), quiet(epochs=30, checkpoint_every_steps=5),
                 sys.argv[1], resume=len(sys.argv) > 2)
    torch.save(model.state_dict(), sys.argv[1] + ".weights.pt")
    print("steps", result.steps)
    """
)


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SIGKILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
    deadline = time.monotonic() + 120
    killed_after = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "checkpoint.pt").is_file():
            killed_after = int(load_checkpoint(out / "checkpoint.pt")["step"])
            if killed_after >= 20:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert 20 <= killed_after < 240
    done = subprocess.run(
        [sys.executable, str(script), str(out), "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "steps 240" in done.stdout
    rows = read_rows(out / "train_log.csv")
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(2, 241, 2)), "rows lost or duplicated across the kill"
    assert float(rows[-1]["loss"]) < 0.01 * float(rows[0]["loss"])
    straight = tmp_path / "straight"
    uninterrupted = subprocess.run(
        [sys.executable, str(script), str(straight)], env=env, capture_output=True, timeout=300
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    killed_weights = torch.load(f"{out}.weights.pt", weights_only=True)
    straight_weights = torch.load(f"{straight}.weights.pt", weights_only=True)
    for name, value in straight_weights.items():
        assert torch.equal(killed_weights[name], value), f"{name} differs after kill + resume"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
    model = TinyRegression()
    context = init_distributed("cpu")
    try:
        result = fit(
            model, regression_data(), quiet(epochs=2), Path(out) / f"rank{rank}", context=context
        )
        torch.save(
            {"steps": result.steps, "weights": model.state_dict()}, Path(out) / f"weights{rank}.pt"
        )
    finally:
        shutdown_distributed()


@pytest.mark.slow
def test_two_process_ddp_ends_with_identical_weights(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "weights0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "weights1.pt", weights_only=True)
    assert rank0["steps"] == rank1["steps"] == 2 * 4  # 256 samples / 2 ranks / batch 32, 2 epochs
    for name, value in rank0["weights"].items():
        torch.testing.assert_close(value, rank1["weights"][name], rtol=0, atol=0)
    torch.manual_seed(100)
    assert not torch.equal(TinyRegression().linear.weight, rank0["weights"]["linear.weight"])
    assert (tmp_path / "rank0" / "checkpoint.pt").is_file()
    assert not (tmp_path / "rank1").exists(), "only rank 0 writes files"
