"""The command line is generated from the config dataclasses: every field has a flag, every
flag of earlier versions still exists, and a bad value is one line with exit code 2."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import typing
from typing import Any

import numpy as np
import pytest

from mapenc.cli import COMMANDS, build_parser, main
from mapenc.commands.flags import ConfigFlags, field_docs
from mapenc.data.trajectory import AV2_TASK
from mapenc.errors import ConfigError
from mapenc.experiments.trajectory import TrajExperimentConfig
from mapenc.raster import MODES

# Every flag each command had before the flags were generated: users' scripts call them.
EARLIER_FLAGS = {
    "info": ["--dt", "--png", "--tracks"],
    "render": ["--agent-at", "--dt", "--layers", "--mode", "--out", "--pixel-size", "--pose",
               "--size", "--t", "--track", "--tracks", "-o"],
    "describe": ["--input-shape", "--json", "--latent-dim", "--pixel-size"],
    "train-mnist": ["--batch-size", "--binarize", "--checkpoint-every", "--data", "--decoder",
                    "--decoder-setting", "--device", "--encoder", "--epochs", "--feature-dim",
                    "--iw", "--latent-dim", "--likelihood", "--lr", "--max-minutes", "--max-steps",
                    "--no-progress", "--out", "--resume", "--seed"],
    "eval-mnist": ["--data", "--device", "--first", "--iw"],
    "train-traj": ["--batch-size", "--cache-dir", "--data", "--encoder", "--epochs", "--layers",
                   "--lr", "--max-minutes", "--no-map", "--no-progress", "--out", "--pixel-size",
                   "--raster-size", "--resume", "--seed", "--split", "--task"],
    "eval-traj": ["--data", "--figures", "--k", "--seed", "--split", "--versus", "--predictions"],
    "split": ["--data", "--json", "--write-fixed"],
    "compare": ["--batch-size", "--cache-dir", "--data", "--decoder", "--device", "--encoders",
                "--epochs", "--eval-split", "--iw", "--lr", "--max-minutes", "--max-steps",
                "--no-progress", "--out", "--probe-samples", "--raster-sizes", "--seeds", "--task",
                "--train-split"],
    "demo": ["--mnist-minutes", "--out", "--seed", "--traj-minutes", "--traj-scenes"],
    "prepare": ["--data", "--out", "--workers"],
}  # fmt: skip


def command_parser(name: str) -> argparse.ArgumentParser:
    parser = build_parser([name])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return typing.cast(argparse.ArgumentParser, sub.choices[name])


def config_fields(cls: type, flags: ConfigFlags[Any], prefix: str = "") -> list[str]:
    """Dotted paths of every field of ``cls`` (nested configs field by field, presets whole)."""
    paths = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        path = prefix + field.name
        override = flags.overrides.get(path)
        nested = dataclasses.is_dataclass(hints[field.name])
        if nested and not (override and override.presets is not None):
            paths += config_fields(hints[field.name], flags, path + ".")
        elif path not in flags.derived:
            paths.append(path)
    return paths


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_config_field_has_a_flag_and_earlier_flags_remain(name: str) -> None:
    flags = importlib.import_module(COMMANDS[name]).FLAGS
    assert isinstance(flags, ConfigFlags)
    parser = command_parser(name)
    dests = {action.dest for action in parser._actions}
    fields = config_fields(flags.config_type, flags)
    assert fields and [f for f in fields if ConfigFlags.dest(f) not in dests] == []
    options = {o for action in parser._actions for o in action.option_strings}
    assert [flag for flag in EARLIER_FLAGS[name] if flag not in options] == []


@pytest.mark.parametrize("name", ["train-traj", "train-mnist"])
def test_training_commands_take_device_steps_clipping_and_workers(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    text = capsys.readouterr().out
    for flag in ("--device", "--max-steps", "--grad-clip", "--num-workers"):
        assert flag in text


def test_raster_mode_lists_every_mode_of_the_rasterizer() -> None:
    action = next(a for a in command_parser("train-traj")._actions if a.dest == "raster_mode")
    assert list(action.choices or []) == list(MODES)


@pytest.mark.parametrize(
    ("argv", "flag", "allowed"),
    [
        (["--device", "gpu"], "--device", "cuda:N"),
        (["--raster-mode", "slow"], "--raster-mode", "'exact'"),
        (["--task", "nuscenes"], "--task", "'ngsim'"),
        (["--max-steps", "many"], "--max-steps", "int"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag(
    argv: list[str], flag: str, allowed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train-traj", "--data", "synthetic:1", "--out", "unused", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert flag in err and allowed in err


def test_train_traj_flags_build_the_experiment_config() -> None:
    flags = importlib.import_module(COMMANDS["train-traj"]).FLAGS
    argv = ["--data", "synthetic:2", "--out", "unused", "--task", "av2", "--no-map"]
    argv += ["--grad-clip", "1.5", "--raster-mode", "exact", "--device", "cuda:1"]
    argv += ["--max-steps", "7", "--num-workers", "2", "--raster-size", "32", "40"]
    argv += ["--encoder-setting", "widths=[8, 16]", "--epochs", "3"]
    config = flags.build(command_parser("train-traj").parse_args(argv))
    assert isinstance(config, TrajExperimentConfig)
    assert config.task == AV2_TASK and config.data == ("synthetic:2",)
    assert config.train.grad_clip_norm == 1.5 and config.train.max_steps == 7
    assert (config.train.device, config.train.num_workers) == ("cuda:1", 2)
    assert config.raster_mode == "exact" and config.raster.size_px == (32, 40)
    assert not config.model.use_map and config.model.map_encoder_options == (("widths", [8, 16]),)
    # The model's shapes come from the raster and the task, stated once.
    assert config.model.raster_size == (32, 40)
    assert config.model.raster_channels == config.raster.num_channels
    assert config.model.history_steps == AV2_TASK.history_steps
    assert np.isclose(config.model.dt, AV2_TASK.dt)
    defaults = flags.build(command_parser("train-traj").parse_args([*argv[:4], "--epochs", "1"]))
    assert defaults.train.grad_clip_norm == TrajExperimentConfig().train.grad_clip_norm == 5.0


def test_unknown_raster_mode_is_refused_not_replaced() -> None:
    with pytest.raises(ConfigError, match="raster_mode"):
        TrajExperimentConfig(raster_mode="slow")


def test_field_docs_read_the_attributes_section() -> None:
    docs = field_docs(TrajExperimentConfig)
    assert docs["raster_mode"].startswith("Rasterizer mode")
    assert "synthetic[:N]" in docs["data"]  # a continuation line joins its entry
