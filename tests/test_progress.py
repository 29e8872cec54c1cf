"""Progress without a terminal: a line every so often, not a line per step."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_train_loop import TinyRegression, quiet, regression_data

from mapenc.progress import progress_bar
from mapenc.train import fit


def records(text: str) -> list[str]:
    """What a log viewer shows as lines: tqdm separates redraws with carriage returns."""
    return [r for r in re.split(r"[\r\n]", text) if r.strip()]


def test_a_bar_into_a_pipe_prints_few_lines(capfd: pytest.CaptureFixture[str]) -> None:
    for _ in progress_bar(range(30), desc="work"):
        time.sleep(0.11)  # beyond tqdm's default 0.1 s between redraws
    lines = records(capfd.readouterr().err)
    assert 1 <= len(lines) <= 3, lines
    assert "30/30" in lines[-1]


def test_training_into_a_log_file_prints_a_line_per_epoch(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    class Slow(TinyRegression):
        def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            time.sleep(0.11)
            return super().loss(batch)

    fit(Slow(), regression_data(128), quiet(epochs=2, progress=True), tmp_path / "run")
    lines = records(capfd.readouterr().err)
    epoch_lines = [line for line in lines if line.startswith("epoch")]
    assert len(epoch_lines) <= 2 * 2, epoch_lines  # at most a start and an end line per epoch
    assert any("4/4" in line for line in epoch_lines)
