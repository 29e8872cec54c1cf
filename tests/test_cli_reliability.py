"""The command line under bad requests: one line per problem, exit 2, checked before any work;
used run folders refused, requests beyond memory refused with the figure, files written whole."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest
import torch
from test_traj_cli import train_on_synthetic_town
from torch import nn

from mapenc.cli import main
from mapenc.errors import ConfigError, TrainingError
from mapenc.train import TrainConfig, config_from_dict
from mapenc.train.checkpoint import load_model_weights, save_checkpoint

AV2_MAP = next((Path(__file__).resolve().parents[1] / "data" / "av2_sample").glob("log_*.json"))


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_every_bad_numeric_flag_gets_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ["--lr", "nan", "--max-minutes", "nan", "--epochs", "0", "--seed", str(2**70)]
    started = time.monotonic()
    status = main(["train-traj", "--data", "synthetic:2", "--out", str(tmp_path / "r"), *bad])
    assert status == 2 and time.monotonic() - started < 30
    lines = error_lines(capsys)
    assert len(lines) == 4, lines
    for flag in ("--lr nan", "--max-minutes nan", "--epochs 0", f"--seed {2**70}"):
        assert sum(flag in line for line in lines) == 1, (flag, lines)
    assert not (tmp_path / "r" / "config.json").exists()


def test_each_error_line_is_written_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every error line reaches stderr in one write with its newline, so that the lines of
    several ranks never run into each other where stderr is unbuffered (PYTHONUNBUFFERED)."""
    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    monkeypatch.setattr("sys.stderr", Recorder())
    bad = ["--lr", "nan", "--epochs", "0"]
    assert main(["train-traj", "--data", "synthetic:2", "--out", str(tmp_path / "r"), *bad]) == 2
    errors = [w for w in writes if "error:" in w]
    assert len(errors) == 2, writes
    assert all(w.startswith("mapenc train-traj: error: ") and w.endswith("\n") for w in errors)
    assert all(w.count("\n") == 1 for w in errors)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"max_minutes": float("nan")}, "max_minutes"),
        ({"lr": float("inf")}, "lr"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"grad_clip_norm": float("nan")}, "grad_clip_norm"),
        ({"num_workers": -1}, "num_workers"),
        ({"seed": 2**70}, "seed"),
        ({"batch_size": 2.5}, "batch_size"),
    ],
)
def test_train_config_refuses_non_finite_and_out_of_range(
    settings: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError, match=f"TrainConfig.{field}="):
        TrainConfig(**settings)  # type: ignore[arg-type]


def test_config_json_with_a_wrong_type_is_named() -> None:
    with pytest.raises(ConfigError, match=r"TrainConfig\.epochs: expected int, got str"):
        config_from_dict(TrainConfig, {"epochs": "ten"})


def test_out_naming_a_file_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.write_text("a file")
    started = time.monotonic()
    status = main(["train-traj", "--data", "synthetic:50", "--out", str(out), "--epochs", "1"])
    assert status == 2 and time.monotonic() - started < 15
    assert error_lines(capsys) == [
        f"mapenc train-traj: error: {out}: is a file; the run folder (--out) must be a folder"
    ]


def test_used_run_folder_needs_resume_or_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, cache = tmp_path / "run", tmp_path / "cache"
    assert train_on_synthetic_town(run, cache, "--max-steps", "1") == 0
    capsys.readouterr()
    config = (run / "config.json").read_text()
    assert train_on_synthetic_town(run, cache, "--max-steps", "1", "--lr", "0.01") == 2
    (line,) = error_lines(capsys)
    assert "holds a run already" in line and "--resume" in line and "--overwrite" in line
    assert (run / "config.json").read_text() == config
    # --overwrite with data that cannot be read: refused before the old run is touched.
    missing = ["--data", str(tmp_path / "missing")]
    assert train_on_synthetic_town(run, cache, "--overwrite", *missing) == 2
    assert (run / "config.json").read_text() == config and (run / "checkpoint.pt").is_file()
    capsys.readouterr()
    assert (
        train_on_synthetic_town(run, cache, "--max-steps", "1", "--lr", "0.01", "--overwrite") == 0
    )
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == 0.01

    # eval-traj with a number of futures beyond memory: refused with the figure, nothing drawn.
    os.environ["MAPENC_MAX_MEMORY_GB"] = "1"
    try:
        assert main(["eval-traj", str(run), "--split", "all", "--k", "1000000"]) == 2
    finally:
        del os.environ["MAPENC_MAX_MEMORY_GB"]
    (line,) = error_lines(capsys)
    assert "1000000 futures" in line and "GiB" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["train-mnist", "--out", str(tmp_path / "r"), "--device", "cuda", "--epochs", "1"]
    )
    assert status == 2
    assert error_lines(capsys) == [
        "mapenc train-mnist: error: device='cuda': CUDA is not available here; use cpu or auto"
    ]


def test_latent_size_beyond_memory_is_refused_with_the_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["train-mnist", "--out", str(tmp_path / "r"), "--latent-dim", str(10**8)])
    assert status == 2
    (line,) = error_lines(capsys)
    assert "parameters, for training) would need" in line and "GiB" in line


def test_describe_a_huge_input_allocates_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "conv", "--input-shape", "1", "200000", "200000", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["input_shape"] == [1, 200000, 200000]


def test_weights_missing_or_of_another_model_are_named(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(TrainingError, match="holds no model weights"):
        load_model_weights(nn.Linear(2, 2), path)
    save_checkpoint(path, {"model": nn.Linear(3, 2).state_dict()})
    with pytest.raises(TrainingError, match="do not fit this model") as err:
        load_model_weights(nn.Linear(2, 2), path)
    assert "\n" not in str(err.value)


def render_args(out: Path) -> list[str]:
    return ["render", str(AV2_MAP), "--pose", "-420", "1440", "1.5", "--size", "32", "32",
            "--layers", "drivable_area", "--mode", "fast", "-o", str(out)]  # fmt: skip


def test_render_names_the_file_it_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    assert main(render_args(tmp_path / "picture")) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'picture.png'}"
    assert (tmp_path / "picture.png").read_bytes()[:4] == b"\x89PNG"


def test_full_disk_while_writing_a_png_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    assert main(render_args(tmp_path / "out.png")) == 2
    (line,) = error_lines(capsys)
    assert "No space left on device" in line
    assert list(tmp_path.iterdir()) == []


def test_control_characters_in_names_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = tmp_path / "map\x1b[2J\x07.json"
    assert main(["info", str(evil)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b[2J\\x07" in err


@pytest.mark.parametrize("command", [["info"], ["train-mnist", "--epochs", "1", "--out"]])
def test_a_5000_character_path_is_one_line(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "x" * 5000]) == 2
    (line,) = error_lines(capsys)
    assert "File name too long" in line and len(line) < 300


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["train-traj", "--data", "synthetic:2", "--modes", "0"], "--modes 0"),
        (["train-traj", "--data", "synthetic:2", "--beta", "nan"], "--beta nan"),
        (["train-mnist", "--latent-dim", "0"], "--latent-dim 0"),
        (["train-mnist", "--iw", "0"], "--iw 0"),
    ],
)
def test_model_and_evaluation_knobs_are_checked_per_flag(
    command: list[str], flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--out", str(tmp_path / "r")]) == 2
    (line,) = error_lines(capsys)
    assert flag in line
