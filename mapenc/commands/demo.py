"""`mapenc demo [--out DIR]`: the main job on embedded data (what `make demo` runs)."""

from __future__ import annotations

import argparse

import torch

from mapenc.commands.flags import ConfigFlags
from mapenc.experiments.demo import DemoConfig, run_demo

HELP = (
    "render embedded maps, describe the seed encoders, train the MNIST and trajectory VAEs briefly"
)


FLAGS = ConfigFlags(DemoConfig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per DemoConfig field."""
    FLAGS.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where its index page is."""
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    config = FLAGS.build(args)
    index = run_demo(config)
    print(f"wrote {index}")
    return 0
