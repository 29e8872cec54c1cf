"""Train and evaluate the map-conditioned trajectory VAE on the embedded synthetic town (CPU, minutes).

    python examples/trajectory_vae.py [OUT_DIR]

Trains with and without the map branch on the synthetic town's train split, then prints both
eval-traj results (test split, K = 6) next to the constant-velocity baseline.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import torch

from mapenc.experiments.trajectory import (
    SYNTHETIC_RASTER,
    make_experiment_config,
    train_and_evaluate,
)
from mapenc.train import TrainConfig

DATA = ["synthetic:12"]


def main() -> None:
    torch.set_num_threads(1)
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/trajectory_vae"
    train = TrainConfig(epochs=6, max_minutes=2.0, batch_size=64, grad_clip_norm=5.0)
    table = {}
    for name, use_map in (("map", True), ("no-map", False)):
        config = make_experiment_config(DATA, use_map=use_map, raster=SYNTHETIC_RASTER, train=train)
        config = dataclasses.replace(config, cache_dir=f"{out}/cache")
        result = train_and_evaluate(config, f"{out}/{name}", overwrite=True)
        table[name] = result
        print(
            name,
            json.dumps(
                {k: result[k] for k in ("n", "model", "constant_velocity", "params", "seconds")}
            ),
        )
    cv = table["map"]["constant_velocity"]["FDE"]
    for name, result in table.items():
        print(
            f"{name:7s} minADE6 {result['model']['minADE']:.2f} m  minFDE6 {result['model']['minFDE']:.2f} m"
            f"  off-road {result['model']['offroad_rate']:.3f}  (CV FDE {cv:.2f} m)"
        )


if __name__ == "__main__":
    main()
