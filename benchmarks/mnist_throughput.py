"""Training throughput of the MNIST VAE per encoder, as a ratio to ``seed_global`` in the same run.

    python benchmarks/mnist_throughput.py [--encoders seed_global conv-spatial resnet]
                                          [--decoder NAME] [--steps 20] [--batch-size 128]
                                          [--threads 1]

Each encoder gets an ImageVAE (its mirror decoder or ``--decoder``, z = 20, Bernoulli) trained
with Adam on one batch of embedded MNIST digits, binarised once (what every decoder accepts; the
speed does not depend on the values): a few warm-up steps, then ``--steps`` timed optimiser steps
(forward, backward, update). Prints images/s, parameters and the ratio to the first encoder.
"""

from __future__ import annotations

import argparse
import time

import torch

from mapenc.data.mnist import mnist_datasets
from mapenc.train import count_parameters
from mapenc.vae.image import ImageVAEConfig, build_image_vae


def images_per_second(
    encoder: str, decoder: str | None, batch: torch.Tensor, steps: int, warmup: int = 3
) -> tuple[float, int]:
    """Training images/s of the VAE with ``encoder`` (and ``decoder``, None = its mirror) on
    ``batch`` ``[B, 1, 28, 28]``, and its size."""
    torch.manual_seed(0)
    model = build_image_vae(ImageVAEConfig(encoder=encoder, decoder=decoder, latent_dim=20))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(warmup + steps):
        if step == warmup:
            started = time.perf_counter()
        loss, _ = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * len(batch) / (time.perf_counter() - started), count_parameters(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["seed_global", "conv-spatial", "resnet"])
    parser.add_argument("--decoder", help="registered decoder for every encoder (default: mirrors)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = mnist_datasets(binarize="static")[0].images[: args.batch_size]
    decoder = args.decoder or "mirror"
    print(
        f"batch {args.batch_size}, {args.steps} timed steps, {args.threads} thread(s), {decoder} decoder"
    )
    print(f"{'encoder':<14} {'params':>10} {'images/s':>10} {'ratio':>7}")
    baseline = None
    for name in args.encoders:
        rate, params = images_per_second(name, args.decoder, batch, args.steps)
        baseline = baseline or rate
        print(f"{name:<14} {params:>10,} {rate:>10.0f} {rate / baseline:>7.2f}")


if __name__ == "__main__":
    main()
