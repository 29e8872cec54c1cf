"""A study folder re-used under another protocol is refused, never silently mixed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from mnist_files import tiny_mnist_file
from test_compare import compare_args

from mapenc.cli import main
from mapenc.errors import ConfigError
from mapenc.study import CompareConfig
from mapenc.study.compare import STUDY_CONFIG_NAME, refuse_changed_protocol


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 training and 50 test images of the embedded MNIST subset as an .npz."""
    return tiny_mnist_file(tmp_path_factory.mktemp("mnist") / "tiny.npz", 200, 50)


def study_args(data: Path, out: Path, max_steps: int) -> list[str]:
    """test_compare's tiny MNIST study with ``max_steps`` steps per run."""
    args = compare_args(data, out)
    args[args.index("--max-steps") + 1] = str(max_steps)
    return args


def test_a_study_resumed_with_other_steps_is_refused_and_left_as_it_was(
    tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    assert main(study_args(tiny_mnist, out, 2)) == 0
    saved = (out / STUDY_CONFIG_NAME).read_text()
    rows = (out / "results.json").read_text()
    capsys.readouterr()
    assert main(study_args(tiny_mnist, out, 6)) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "another protocol" in line and "max_steps 2 -> 6" in line
    assert (out / STUDY_CONFIG_NAME).read_text() == saved
    assert (out / "results.json").read_text() == rows
    # The same protocol resumes: the finished cells are read, not retrained.
    assert main(study_args(tiny_mnist, out, 2)) == 0
    assert "seed_global-s1: finished earlier" in capsys.readouterr().out


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
