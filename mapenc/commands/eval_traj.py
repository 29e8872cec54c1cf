"""`mapenc eval-traj DIR --data PATH... [--split test] [--k 6]`: score a train-traj run.

Prints JSON ``{"n", "k", "model": {minADE, minFDE, miss_rate, offroad_rate},
"constant_velocity": {ADE, FDE, miss_rate, offroad_rate}, ...}`` (metres; AV2 definitions, see
``mapenc.metrics``), writes it to ``DIR/eval_<split>.json`` and PNGs of sampled cases to
``DIR/eval_<split>/``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mapenc.commands.flags import ConfigFlags, Flag
from mapenc.data.traj_sources import SPLITS
from mapenc.experiments import trajectory

HELP = "score a trained trajectory VAE (minADE/minFDE/miss/off-road) against constant velocity"


@dataclass(frozen=True)
class EvalTrajConfig:
    """Settings of `mapenc eval-traj`.

    Attributes:
        run_dir: the train-traj output folder.
        data: data paths; empty for the ones the run was trained with.
        split: which split to score.
        k: futures drawn per sample.
        figures: number of cases drawn as PNG.
        seed: seed of the K draws and of the drawn cases.
        skip_bad: leave out scene files that cannot be read, listed under "skipped" in the JSON.
    """

    run_dir: Path
    data: tuple[str, ...] = ()
    split: str = "test"
    k: int = 6
    figures: int = 6
    seed: int = 0
    skip_bad: bool = False


FLAGS = ConfigFlags(
    EvalTrajConfig,
    overrides=(
        Flag("run_dir", positional=True),
        Flag("data", metavar="PATH", default=[]),
        Flag("split", choices=(*SPLITS, "all")),
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per EvalTrajConfig field."""
    FLAGS.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print and save the JSON, return 0."""
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    config = FLAGS.build(args)
    result = trajectory.evaluate(
        config.run_dir,
        config.data or None,
        split=config.split,
        k=config.k,
        figures=config.figures,
        seed=config.seed,
        skip_bad=config.skip_bad,
    )
    text = json.dumps(result.to_dict(), indent=2)
    (config.run_dir / f"eval_{config.split}.json").write_text(text)
    print(text)
    return 0
