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
        skip_bad: leave out scene files that cannot be read, listed under "skipped".
    """

    run_dir: Path
    data: tuple[str, ...] = ()
    split: str = "test"
    k: int = 6
    figures: int = 6
    seed: int = 0
    skip_bad: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mapenc eval-traj`, one per EvalTrajConfig field."""
    parser.add_argument("run_dir", type=Path, help="train-traj output folder")
    parser.add_argument(
        "--data",
        nargs="+",
        default=[],
        metavar="PATH",
        help="data paths (default: those the run was trained on)",
    )
    parser.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    parser.add_argument("--k", type=int, default=6, help="futures per sample")
    parser.add_argument("--figures", type=int, default=6, help="cases to draw as PNG")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out scene files that cannot be read (listed under 'skipped' in the JSON)",
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate, print and save the JSON, return 0."""
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    config = EvalTrajConfig(
        run_dir=args.run_dir,
        data=tuple(args.data),
        split=args.split,
        k=args.k,
        figures=args.figures,
        seed=args.seed,
        skip_bad=args.skip_bad,
    )
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
