"""`mapenc eval-traj DIR [--data PATH...] [--split S] [--k 6] [--versus DIR2] [--predictions F.npz]`.

Scores a train-traj run beside the training-free baselines (``mapenc.evaluation``) and prints
JSON: ``model`` and ``baselines`` (minADE, minFDE, miss rate, off-road rate; metres, AV2
definitions, see ``mapenc.metrics``), ``model_minus_baseline`` (paired bootstrap 95 % intervals
over whole scenes), ``by_location``, ``by_kind``, and with ``--versus`` the same comparison
against a second run (e.g. the no-map twin). ``--split`` defaults to test on the data the run was
trained on and to all of any other data (zero-shot; ``"zero_shot": true`` in the JSON). The JSON
goes to ``--out`` (default ``DIR/eval_<split>.json``), PNGs of sampled cases to ``DIR/eval_<split>/``,
and with ``--predictions`` the forecasts to an ``.npz`` for rescoring.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mapenc.forecasting import evaluate_traj

HELP = "score a trained trajectory VAE beside training-free baselines, with bootstrap intervals"


@dataclass(frozen=True)
class EvalTrajConfig:
    """Settings of `mapenc eval-traj`.

    Attributes:
        run_dir: the train-traj output folder.
        data: data paths; empty for the ones the run was trained on.
        split: which split to score; None: test on the training data, all on other data.
        k: futures per sample.
        figures: number of cases drawn as PNG.
        seed: seed of the bootstrap, of sampled modes beyond the model's and of the drawn cases.
        versus: a second run scored on the same samples and compared with this one.
        predictions: where to write the forecasts (.npz), or None.
        out: where to write the JSON (None: ``run_dir/eval_<split>.json``).
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
    parser.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        help="default: test on the training data, all on other data (zero-shot)",
    )
    parser.add_argument("--k", type=int, default=6, help="futures per sample")
    parser.add_argument("--figures", type=int, default=6, help="cases to draw as PNG")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--versus", type=Path, metavar="DIR2", help="a run to compare against")
    parser.add_argument("--predictions", type=Path, metavar="F.npz", help="write the forecasts")
    parser.add_argument("--out", type=Path, metavar="F.json", help="where to write the JSON")


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
        versus=args.versus,
        predictions=args.predictions,
        out=args.out,
    )
    result = evaluate_traj(
        config.run_dir,
        config.data or None,
        config.split,
        config.k,
        config.figures,
        config.seed,
        predictions=config.predictions,
        versus=config.versus,
    )
    text = json.dumps(result, indent=2)
    out = config.out or config.run_dir / f"eval_{result['split']}.json"
    out.write_text(text)
    print(text)
    return 0
