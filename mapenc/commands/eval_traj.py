"""`mapenc eval-traj DIR [--data PATH...] [--split S] [--k 6] [--versus DIR2] [--predictions F.npz]`.

Scores a train-traj run beside the training-free baselines (``mapenc.evaluation``) and prints
JSON: ``model`` and ``baselines`` (minADE, minFDE, miss rate, off-road rate; metres, AV2
definitions, see ``mapenc.metrics``), ``model_minus_baseline`` (paired bootstrap 95 % intervals
over whole scenes), ``by_location``, ``by_kind``, ``by_motion`` (standing or moving),
``by_trajectory_type`` (the Waymo Open Dataset type of each sample's true future, and the moving
and turning agents: every method's scores and the differences with their intervals), and with
``--versus`` the same comparison against a second run (e.g. the no-map twin). ``--split``
defaults to test on the data the run was trained on and to all of any other data (zero-shot;
``"zero_shot": true`` in the JSON). The JSON goes to ``--out`` (default
``DIR/eval_<split>.json``), PNGs of sampled cases to ``DIR/eval_<split>/``, and with
``--predictions`` the forecasts to an ``.npz`` for rescoring. ``--stream`` scores all of the data
one scenario at a time (memory bounded by a scenario, whatever the data's size). A table of
minFDE for all agents, then the moving, turning and each type's, beside the kinematic baseline
and the versus run, goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from mapenc.checks import FieldChecks
from mapenc.commands.flags import ConfigFlags, Flag
from mapenc.data.traj_sources import SPLITS
from mapenc.evaluation.report import format_by_type
from mapenc.experiments import trajectory
from mapenc.safeio import write_bytes_atomic
from mapenc.train.config import MAX_SEED

HELP = "score a trained trajectory VAE beside training-free baselines, with bootstrap intervals"


@dataclass(frozen=True)
class EvalTrajConfig:
    """Settings of `mapenc eval-traj`.

    Attributes:
        run_dir: the train-traj output folder.
        data: data paths; empty for the ones the run was trained with.
        split: which split to score; default test on the training data, all on other data.
        k: futures per sample.
        figures: number of cases drawn as PNG.
        seed: seed of the bootstrap, of modes drawn beyond the model's and of the drawn cases.
        versus: a second run scored on the same samples and compared with this one.
        predictions: where to write the forecasts (.npz).
        out: where to write the JSON (default DIR/eval_<split>.json).
        skip_bad: leave out scene files that cannot be read, listed under "skipped" in the JSON.
        stream: score all of the data one scenario at a time, never holding the data set (no
            split planner: split all; no figures, predictions or skip_bad).
    """

    run_dir: Path
    data: tuple[str, ...] = ()
    split: str | None = None
    k: int = 6
    figures: int = 6
    seed: int = 0
    versus: Path | None = None
    predictions: Path | None = None
    out: Path | None = None
    skip_bad: bool = False
    stream: bool = False

    def __post_init__(self) -> None:
        (
            FieldChecks(self)
            .number("k", integer=True, minimum=1)
            .number("figures", integer=True, minimum=0)
            .number("seed", integer=True, minimum=0, maximum=MAX_SEED)
            .done()
        )


FLAGS = ConfigFlags(
    EvalTrajConfig,
    overrides=(
        Flag("run_dir", positional=True),
        Flag("data", metavar="PATH", default=[]),
        Flag("split", choices=(*SPLITS, "all")),
        Flag("versus", metavar="DIR2"),
        Flag("predictions", metavar="F.npz"),
        Flag("out", metavar="F.json"),
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
        predictions=config.predictions,
        versus=config.versus,
        skip_bad=config.skip_bad,
        stream=config.stream,
    )
    report = result.to_dict()
    text = json.dumps(report, indent=2)
    write_bytes_atomic(config.out or config.run_dir / f"eval_{result.split}.json", text.encode())
    print(text)
    # For a person, on stderr so that stdout stays one JSON document.
    print(f"\nminFDE{config.k} by trajectory type of the true future:", file=sys.stderr)
    print(format_by_type(report), file=sys.stderr)
    return 0
