"""`mapenc train-mnist --encoder NAME --out DIR [...]`: train the MNIST VAE baseline.

One flag per field of ``mapenc.experiments.mnist.MnistExperimentConfig`` (model + TrainConfig);
trains with ``mapenc.train.fit`` (progress bar, CSV logs, checkpoints; ``--resume`` continues a
killed run; works under ``torchrun --nproc_per_node=N``), evaluates on the test split and prints
the metrics as JSON (also written to ``DIR/metrics.json``).
"""

from __future__ import annotations

import argparse
import json

from mapenc.commands.flags import (
    ConfigFlags,
    Flag,
    add_run_folder_arguments,
    resolved_path,
    train_flags,
)
from mapenc.experiments.mnist import MnistExperimentConfig, train_and_evaluate
from mapenc.train.distributed import shutdown_distributed

HELP = "train the MNIST VAE baseline with a registered encoder; prints test metrics as JSON"

# Flags spelt otherwise than --field-name (the names users' scripts and the README call).
FLAGS = ConfigFlags(
    MnistExperimentConfig,
    MnistExperimentConfig(),
    (
        Flag("data", parse=resolved_path),
        Flag("model.encoder", ("--encoder",)),
        Flag("model.decoder", ("--decoder",)),
        Flag("model.encoder_settings", ("--encoder-setting",)),
        Flag("model.decoder_settings", ("--decoder-setting",)),
        Flag("eval_iw_k", ("--iw",), metavar="K"),
        *train_flags(),
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per MnistExperimentConfig field, plus the run folder, --resume and --overwrite."""
    FLAGS.add_to(parser)
    add_run_folder_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, print the metrics JSON (rank 0 only under torchrun). Returns 0."""
    try:
        metrics = train_and_evaluate(
            FLAGS.build(args), args.out, resume=args.resume, overwrite=args.overwrite
        )
    finally:
        shutdown_distributed()
    if metrics:
        print(json.dumps(metrics, indent=2))
    return 0
