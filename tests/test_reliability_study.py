"""A study folder re-used under another protocol is refused, never silently mixed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mapenc.cli import main
from mapenc.data.mnist import load_mnist
from mapenc.errors import ConfigError
from mapenc.study import CompareConfig
from mapenc.study.compare import STUDY_CONFIG_NAME, refuse_changed_protocol


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 training and 50 test images of the embedded MNIST subset as an .npz."""
    splits = load_mnist()
    path = tmp_path_factory.mktemp("mnist") / "tiny.npz"
    np.savez(
        path,
        x_train=splits.x_train[:200],
        y_train=splits.y_train[:200],
        x_test=splits.x_test[:50],
        y_test=splits.y_test[:50],
    )
    return path


def study_args(data: Path, out: Path, *settings: str) -> list[str]:
    return [
        "compare",
        "--task",
        "mnist",
        "--data",
        str(data),
        "--encoders",
        "seed_global",
        "--seeds",
        "1",
        "--batch-size",
        "32",
        "--iw",
        "2",
        "--probe-samples",
        "20",
        "--eval-images",
        "20",
        "--no-progress",
        "--out",
        str(out),
        *settings,
    ]


def test_a_study_resumed_with_other_steps_is_refused_and_left_as_it_was(
    tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    assert main(study_args(tiny_mnist, out, "--max-steps", "2")) == 0
    saved = (out / STUDY_CONFIG_NAME).read_text()
    rows = (out / "results.json").read_text()
    capsys.readouterr()
    assert main(study_args(tiny_mnist, out, "--max-steps", "6")) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "another protocol" in line and "max_steps 2 -> 6" in line
    assert (out / STUDY_CONFIG_NAME).read_text() == saved
    assert (out / "results.json").read_text() == rows
    # The same protocol resumes: the finished cell is read, not retrained.
    assert main(study_args(tiny_mnist, out, "--max-steps", "2")) == 0
    assert "seed_global-s0: finished earlier" in capsys.readouterr().out


def saved_study(folder: Path, config: CompareConfig) -> Path:
    """A study folder with ``config`` saved and one (empty) run folder."""
    (folder / "runs" / "seed_global-s0").mkdir(parents=True)
    (folder / STUDY_CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(config)))
    return folder


def test_every_protocol_setting_is_compared(tmp_path: Path) -> None:
    before = CompareConfig(encoders=("seed_global",), max_steps=2)
    folder = saved_study(tmp_path, before)
    for change in ({"lr": 0.01}, {"batch_size": 16}, {"iw_k": 5}, {"decoder": None}):
        with pytest.raises(ConfigError, match=next(iter(change))):
            refuse_changed_protocol(dataclasses.replace(before, **change), folder)
    probe = dataclasses.replace(before.probe, shift_px=before.probe.shift_px + 1)
    with pytest.raises(ConfigError, match="probe"):
        refuse_changed_protocol(dataclasses.replace(before, probe=probe), folder)


def test_more_cells_or_other_workers_resume_the_same_study(tmp_path: Path) -> None:
    before = CompareConfig(encoders=("seed_global",), max_steps=2)
    folder = saved_study(tmp_path, before)
    more = dataclasses.replace(
        before, encoders=("seed_global", "conv-global"), seeds=5, workers=2, progress=False
    )
    refuse_changed_protocol(more, folder)  # no error


def test_an_empty_folder_with_a_saved_config_takes_any_protocol(tmp_path: Path) -> None:
    before = CompareConfig(encoders=("seed_global",), max_steps=2)
    (tmp_path / STUDY_CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(before)))
    refuse_changed_protocol(dataclasses.replace(before, max_steps=6), tmp_path)  # no error
