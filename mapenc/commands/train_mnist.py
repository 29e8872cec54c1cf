"""`mapenc train-mnist --encoder NAME --out DIR [...]`: train the MNIST VAE baseline.

Maps its arguments onto ``MnistExperimentConfig`` (model + ``TrainConfig``), trains with
``mapenc.train.fit`` (progress bar, CSV logs, checkpoints; ``--resume`` continues a killed run;
works under ``torchrun --nproc_per_node=N``), evaluates on the test split and prints the metrics
as JSON (also written to ``DIR/metrics.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mapenc.data.mnist import BINARIZE_MODES
from mapenc.experiments.mnist import MnistExperimentConfig, train_and_evaluate
from mapenc.train import TrainConfig
from mapenc.train.distributed import shutdown_distributed
from mapenc.vae.image import LIKELIHOODS, ImageVAEConfig

HELP = "train the MNIST VAE baseline with a registered encoder; prints test metrics as JSON"


def setting(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)`` with VALUE read as JSON when it parses, else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mapenc train-mnist`, one per config field."""
    defaults_model, defaults_train = ImageVAEConfig(), TrainConfig()
    parser.add_argument(
        "--data", help="mnist.npz, a folder of IDX files, or a CSV (default: embedded 5k)"
    )
    parser.add_argument("--encoder", default=defaults_model.encoder, help="registered encoder name")
    parser.add_argument("--decoder", help="registered decoder name (default: the encoder's mirror)")
    parser.add_argument(
        "--decoder-setting",
        action="append",
        default=[],
        type=setting,
        metavar="KEY=VALUE",
        help="a decoder config field, repeatable (e.g. first_kernel=5); VALUE is read as JSON",
    )
    parser.add_argument(
        "--latent-dim", type=int, default=defaults_model.latent_dim, help="D, size of z"
    )
    parser.add_argument(
        "--feature-dim", type=int, default=defaults_model.feature_dim, help="encoder output length"
    )
    parser.add_argument("--likelihood", choices=LIKELIHOODS, default=defaults_model.likelihood)
    parser.add_argument("--binarize", choices=BINARIZE_MODES, default="none")
    parser.add_argument("--epochs", type=int, default=defaults_train.epochs)
    parser.add_argument("--max-minutes", type=float, help="wall-clock training budget")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    parser.add_argument("--batch-size", type=int, default=defaults_train.batch_size)
    parser.add_argument("--lr", type=float, default=defaults_train.lr)
    parser.add_argument("--seed", type=int, default=defaults_train.seed)
    parser.add_argument(
        "--device", default=defaults_train.device, help="auto, cpu, cuda, cuda:1, ..."
    )
    parser.add_argument("--checkpoint-every", type=int, help="also checkpoint every N steps")
    parser.add_argument(
        "--iw", type=int, default=MnistExperimentConfig().eval_iw_k, help="k of the test NLL"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")


def config_from_args(args: argparse.Namespace) -> MnistExperimentConfig:
    """The experiment config the arguments describe."""
    return MnistExperimentConfig(
        model=ImageVAEConfig(
            encoder=args.encoder,
            decoder=args.decoder,
            latent_dim=args.latent_dim,
            feature_dim=args.feature_dim,
            likelihood=args.likelihood,
            decoder_settings=dict(args.decoder_setting),
        ),
        train=TrainConfig(
            epochs=args.epochs,
            max_minutes=args.max_minutes,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=args.device,
            checkpoint_every_steps=args.checkpoint_every,
            progress=not args.no_progress,
        ),
        data=None if args.data is None else str(Path(args.data).resolve()),
        binarize=args.binarize,
        eval_iw_k=args.iw,
    )


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, print the metrics JSON (rank 0 only under torchrun). Returns 0."""
    try:
        metrics = train_and_evaluate(config_from_args(args), args.out, resume=args.resume)
    finally:
        shutdown_distributed()
    if metrics:
        print(json.dumps(metrics, indent=2))
    return 0
