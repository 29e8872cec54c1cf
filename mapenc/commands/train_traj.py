"""`mapenc train-traj --data PATH... --encoder NAME [--no-map] --out DIR`: fit the TrajectoryCVAE.

One flag per field of ``mapenc.experiments.trajectory.TrajExperimentConfig`` (saved as
``config.json`` beside the checkpoint); prints a JSON summary: samples, parameters, steps,
seconds, why training stopped. With ``--stream`` the training data is read from its shards as
training goes (all of it is trained on; ``--val-data`` gives the held-out data for selection).
"""

from __future__ import annotations

import argparse
import json

import torch

from mapenc.commands.flags import ConfigFlags, Flag, add_run_folder_arguments, train_flags
from mapenc.data.traj_sources import SPLITS
from mapenc.experiments import trajectory
from mapenc.experiments.trajectory import TRAJ_TASKS, TrajExperimentConfig
from mapenc.raster import RASTER_MODES, list_layers

HELP = "train the map-conditioned trajectory VAE on CommonRoad/AV2/generic scenes or the synthetic town"

# With only --max-minutes or --max-steps, that budget decides when to stop.
EPOCHS_UNDER_BUDGET = 10_000
DEFAULT_EPOCHS = 10

# Flags spelt otherwise than --field-name (the names users' scripts and the README call).
TRAIN_FLAGS = (
    Flag(
        "train.epochs",
        help="epochs (default 10, or unbounded with --max-minutes/--max-steps)",
        default=None,
    ),
    Flag("train.grad_clip_norm", ("--grad-clip",), help="clip the gradient norm to this"),
    Flag("train.checkpoint_every_steps", ("--checkpoint-every",), metavar="N"),
    Flag("train.progress", ("--no-progress",), help="no progress bars"),
)
FLAGS = ConfigFlags(
    TrajExperimentConfig,
    TrajExperimentConfig(),
    (
        Flag("data", required=True, metavar="PATH"),
        Flag("val_data", metavar="PATH"),
        Flag("split", choices=(*SPLITS, "all")),
        Flag("task", presets=TRAJ_TASKS, help="ngsim: 1 s -> 3 s at 10 Hz; av2: 5 s -> 6 s"),
        Flag("raster.size_px", ("--raster-size",), metavar=("H", "W")),
        Flag("raster.pixel_size_m", ("--pixel-size",), help="metres per pixel"),
        Flag("raster.agent_at", metavar=("AX", "AY")),
        Flag("raster.layers", choices=list_layers(), metavar="LAYER"),
        Flag("raster.history_steps", ("--raster-history-steps",)),
        Flag("model.map_encoder", ("--encoder",), help="registered map encoder"),
        Flag("model.use_map", ("--no-map",), help="remove the map branch, keep all else"),
        Flag("model.map_encoder_options", ("--encoder-setting",), help="a map encoder setting"),
        Flag(
            "train.epochs",
            help="epochs (default 10, or unbounded with --max-minutes/--max-steps)",
            default=None,
        ),
        *train_flags(),
        Flag("raster_mode", choices=RASTER_MODES),
    ),
    derived=(
        "model.history_steps",
        "model.future_steps",
        "model.dt",
        "model.raster_channels",
        "model.raster_size",
        "model.flip_sign_channels",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrajExperimentConfig field, plus the run folder, --resume and --overwrite."""
    FLAGS.add_to(parser)
    add_run_folder_arguments(parser)


def budget_epochs(args: argparse.Namespace) -> None:
    """Fill in --epochs when it was not given: unbounded under a time or step budget, else 10."""
    if args.train__epochs is None:
        budget = args.train__max_minutes is not None or args.train__max_steps is not None
        args.train__epochs = EPOCHS_UNDER_BUDGET if budget else DEFAULT_EPOCHS


def run(args: argparse.Namespace) -> int:
    """Train, print the JSON summary, return 0."""
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    budget_epochs(args)
    config = FLAGS.build(args)
    run_dir = trajectory.train(config, args.out, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps(trajectory.training_facts(run_dir), indent=2))
    return 0
