"""`mapenc demo [--out DIR]`: the main job on embedded data (what `make demo` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mapenc.experiments.demo import DemoConfig, run_demo

HELP = (
    "render embedded maps, describe the seed encoders, train the MNIST and trajectory VAEs briefly"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mapenc demo`, one per DemoConfig field."""
    defaults = DemoConfig()
    parser.add_argument("--out", type=Path, default=defaults.out, help="output folder")
    parser.add_argument("--mnist-minutes", type=float, default=defaults.mnist_minutes)
    parser.add_argument("--traj-minutes", type=float, default=defaults.traj_minutes)
    parser.add_argument("--traj-scenes", type=int, default=defaults.traj_scenes)
    parser.add_argument("--seed", type=int, default=defaults.seed)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where its index page is."""
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    config = DemoConfig(
        out=args.out,
        mnist_minutes=args.mnist_minutes,
        traj_minutes=args.traj_minutes,
        traj_scenes=args.traj_scenes,
        seed=args.seed,
    )
    index = run_demo(config)
    print(f"wrote {index}")
    return 0
