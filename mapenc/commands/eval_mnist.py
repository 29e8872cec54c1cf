"""`mapenc eval-mnist DIR [--data PATH] [--iw K] [--first N]`: test metrics and pictures of a run.

Prints JSON with ``test_loss`` (negative ELBO), ``nll`` (``K``-sample importance-weighted bound),
``kl``, ``recon`` (all nats per image, lower is better), ``active_units``, ``iw_k`` and
``test_images`` (all of the test split, or its first ``N`` for a costly ``K``); writes it
to ``DIR/eval.json`` with ``reconstructions.png``, ``samples.png``, ``loss_curves.png`` and, for
a 2-D latent, ``latent_scatter.png`` beside it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from mapenc.checks import FieldChecks
from mapenc.commands.flags import ConfigFlags, Flag
from mapenc.experiments import mnist
from mapenc.train.checkpoint import write_json

HELP = "evaluate a train-mnist run: JSON metrics (nats) and PNG reconstructions/samples/latent"


@dataclass(frozen=True)
class EvalMnistConfig:
    """Settings of `mapenc eval-mnist`.

    Attributes:
        run_dir: the folder ``train-mnist --out`` wrote.
        data: MNIST source to test on instead of the run's own.
        iw_k: samples of the importance-weighted NLL bound.
        first: evaluate on the first ``first`` test images only (None: all of them).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``...
    """

    run_dir: Path
    data: str | None = None
    iw_k: int = 100
    first: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        checks = FieldChecks(self).number("iw_k", integer=True, minimum=1)
        checks.number("first", integer=True, minimum=1, optional=True).done()


FLAGS = ConfigFlags(
    EvalMnistConfig,
    EvalMnistConfig(Path()),
    (Flag("run_dir", positional=True), Flag("iw_k", ("--iw",), metavar="K")),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per EvalMnistConfig field."""
    FLAGS.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print and write the JSON, draw the PNGs. Returns 0."""
    from mapenc.experiments import plots

    config = FLAGS.build(args)
    metrics = mnist.evaluate(
        config.run_dir, config.data, iw_k=config.iw_k, first=config.first, device=config.device
    ).to_dict()
    write_json(config.run_dir / "eval.json", metrics)
    print(json.dumps(metrics, indent=2))
    plots.save_mnist_run_pictures(config.run_dir, config.data, config.device)
    return 0
