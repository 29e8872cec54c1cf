"""`mapenc train-traj --data PATH... --encoder NAME [--no-map] --out DIR`: fit the TrajectoryCVAE.

Maps onto ``mapenc.experiments.trajectory.TrajExperimentConfig`` (saved as ``config.json`` beside the
checkpoint) and prints a JSON summary: samples, parameters, steps, seconds, why training stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from mapenc.experiments import trajectory
from mapenc.experiments.trajectory import NGSIM_RASTER, TASKS, make_experiment_config
from mapenc.raster import RasterSpec
from mapenc.train import TrainConfig

HELP = "train the map-conditioned trajectory VAE on CommonRoad/AV2/generic scenes or the synthetic town"

# With only --max-minutes, the time budget decides when to stop.
EPOCHS_UNDER_TIME_BUDGET = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mapenc train-traj`; each maps onto a TrajExperimentConfig field."""
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="PATH",
        help="CommonRoad files/folders, AV2 or generic scene folders, synthetic[:N]",
    )
    parser.add_argument("--split", default="train", choices=("train", "val", "test", "all"))
    parser.add_argument(
        "--task",
        default="ngsim",
        choices=sorted(TASKS),
        help="ngsim: 1 s -> 3 s at 10 Hz; av2: 5 s -> 6 s",
    )
    parser.add_argument("--encoder", default="conv-spatial", help="registered map encoder")
    parser.add_argument(
        "--no-map", action="store_true", help="remove the map branch, keep all else"
    )
    parser.add_argument(
        "--epochs", type=int, help="epochs (default 10, or unbounded with --max-minutes)"
    )
    parser.add_argument("--max-minutes", type=float, help="training time budget (minutes)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--raster-size", type=int, nargs=2, metavar=("H", "W"), default=NGSIM_RASTER.size_px
    )
    parser.add_argument("--pixel-size", type=float, default=NGSIM_RASTER.pixel_size_m, help="m/px")
    parser.add_argument("--layers", nargs="+", default=list(NGSIM_RASTER.layers))
    parser.add_argument("--cache-dir", default="", help="raster cache (default $MAPENC_CACHE/traj)")
    parser.add_argument("--out", required=True, help="run folder (checkpoint, config, logs)")
    parser.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out scene files that cannot be read (listed under 'skipped' in the JSON)",
    )


def run(args: argparse.Namespace) -> int:
    """Train, print the JSON summary, return 0."""
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    epochs = args.epochs or (EPOCHS_UNDER_TIME_BUDGET if args.max_minutes else 10)
    train_config = TrainConfig(
        epochs=epochs,
        max_minutes=args.max_minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        grad_clip_norm=5.0,
        progress=not args.no_progress,
    )
    raster = dataclasses.replace(
        NGSIM_RASTER,
        size_px=tuple(args.raster_size),
        pixel_size_m=args.pixel_size,
        layers=tuple(args.layers),
    )
    assert isinstance(raster, RasterSpec)
    config = make_experiment_config(
        args.data,
        encoder=args.encoder,
        use_map=not args.no_map,
        task=TASKS[args.task],
        raster=raster,
        train=train_config,
    )
    config = dataclasses.replace(
        config, split=args.split, cache_dir=args.cache_dir, skip_bad=args.skip_bad
    )
    run_dir = trajectory.train(config, args.out, resume=args.resume)
    print(json.dumps(trajectory.training_facts(run_dir), indent=2))
    return 0
