"""What each map encoder of the trajectory study costs: parameters, MACs, bottleneck, samples/s.

    python benchmarks/map_encoder_cost.py [--data PATH ...] [--split test] [--layers L ...]
                                          [--encoders conv-global conv-spatial ... vector]
                                          [--batch-size 64] [--steps 20] [--threads 1]

Every encoder is built exactly as ``mapenc compare --task traj`` builds it (``--layers``, by
default the NGSIM ones, 64 x 64 at 1 m per pixel, or the encoder's own size over the same 64 m:
``seed_spatial`` 100 x 100; latent 32) and fed one batch of real samples of ``--split``: their
rasters for the CNNs, their polylines and past for ``vector`` (whose cost grows with the polylines present near
the agent, so random inputs would misstate it). Timed: ``--steps`` forward passes without gradients
(encoding for a forecast) and as many forward + backward passes (training), after warm-up, on the
CPU. Samples/s are printed with their ratio to the first encoder, measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch

from mapenc.study import CompareConfig
from mapenc.study.protocol import Run, bottleneck_facts
from mapenc.study.tasks import TrajStudy
from mapenc.vae.trajectory import build_map_encoder

ENCODERS = [
    "conv-global",
    "seed_spatial",
    "seed_spatial_conv",
    "conv-spatial",
    "conv-mixed",
    "resnet",
    "vector",
]


def samples_per_second(
    encoder: torch.nn.Module, inputs: Sequence[torch.Tensor], steps: int, backward: bool
) -> float:
    """Samples/s of ``steps`` passes of ``encoder(*inputs)`` (with a backward pass when
    ``backward``, else without gradients), after two untimed."""
    for step in range(steps + 2):
        if step == 2:
            started = time.perf_counter()
        with torch.set_grad_enabled(backward):
            latent = encoder(*inputs)
        if backward:
            encoder.zero_grad(set_to_none=True)
            latent.square().mean().backward()
    return steps * len(inputs[0]) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["synthetic:2"])
    parser.add_argument("--split", default="test")
    parser.add_argument("--encoders", nargs="+", default=ENCODERS)
    parser.add_argument("--layers", nargs="+", default=list(CompareConfig().layers))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    study = TrajStudy(
        CompareConfig(
            task="traj",
            encoders=tuple(args.encoders),
            seeds=1,
            data=tuple(args.data),
            layers=tuple(args.layers),
            eval_split=args.split,
            probe_samples=args.batch_size,
            progress=False,
        )
    )
    vector_run = Run("vector", 0)  # its samples carry rasters and polylines alike
    polylines = study.probe_samples(vector_run, study.experiment(vector_run))[1]
    assert polylines is not None
    print(
        f"{len(polylines[0])} samples spread over {args.split} of {' '.join(args.data)}, "
        f"{args.steps} timed passes, {args.threads} thread(s)"
    )
    print(
        f"{'encoder':<18} {'params':>9} {'MACs/sample':>12} {'bottleneck':>10} "
        f"{'encode/s':>9} {'ratio':>6} {'train/s':>8} {'ratio':>6}"
    )
    baseline: tuple[float, float] | None = None
    for name in args.encoders:
        run = Run(name, 0)
        experiment = study.experiment(run)
        torch.manual_seed(0)
        encoder = build_map_encoder(experiment.model)
        if encoder is None:
            parser.error(f"{name} has no map encoder")
        inputs = polylines if name == "vector" else (study.probe_samples(run, experiment)[0],)
        encoded = samples_per_second(encoder, inputs, args.steps, backward=False)
        trained = samples_per_second(encoder, inputs, args.steps, backward=True)
        baseline = baseline or (encoded, trained)
        facts = bottleneck_facts(encoder, study.encoder_input_shape(experiment))
        print(
            f"{name:<18} {facts['encoder_params']:>9,} {facts['encoder_macs']:>12,} "
            f"{facts['bottleneck_elements']:>10,} {encoded:>9.0f} {encoded / baseline[0]:>6.2f} "
            f"{trained:>8.0f} {trained / baseline[1]:>6.2f}"
        )


if __name__ == "__main__":
    main()
