"""MNIST VAE baseline in about a minute on a CPU, with pictures.

    python examples/mnist_baseline.py                      # embedded 5,000 digits, seed_global
    python examples/mnist_baseline.py --data mnist.npz --encoder conv-spatial --minutes 10

Trains an ImageVAE (grey-level Bernoulli targets, the PyTorch-example protocol) with the chosen
registered encoder and its mirror decoder, evaluates it on the test split, and writes into
``--out`` (default ``runs/mnist_baseline/``): ``metrics.json`` (nats per image),
``reconstructions.png``, ``samples.png``, ``loss_curves.png``, plus the run's checkpoint and CSV
logs (``mapenc eval-mnist runs/mnist_baseline`` evaluates it again).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mapenc.experiments import mnist, plots
from mapenc.train import TrainConfig
from mapenc.vae.image import ImageVAEConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="mnist.npz or IDX folder (default: the embedded 5k subset)")
    parser.add_argument("--encoder", default="seed_global")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("runs/mnist_baseline"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = mnist.MnistExperimentConfig(
        model=ImageVAEConfig(encoder=args.encoder, latent_dim=args.latent_dim),
        train=TrainConfig(epochs=1000, max_minutes=args.minutes, batch_size=128, lr=1e-3),
        data=args.data,
        binarize="none",
        eval_iw_k=20,
    )
    metrics = mnist.train_and_evaluate(config, args.out, overwrite=True)
    plots.save_mnist_run_pictures(args.out)
    print(json.dumps(metrics, indent=2))
    print(f"wrote {args.out}/metrics.json, reconstructions.png, samples.png, loss_curves.png")


if __name__ == "__main__":
    main()
