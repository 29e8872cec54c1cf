"""`mapenc compare --task mnist|traj --encoders A,B --seeds S --out DIR`: the encoder study.

Maps onto ``mapenc.study.CompareConfig``; trains every encoder ``S`` times under the same budget
into ``DIR/runs/<encoder>-s<seed>/`` (finished runs are skipped, so a killed study resumes), then
writes ``DIR/results.json``, ``DIR/summary.json`` and PNGs, and prints a mean ± std table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mapenc.study.compare import (
    DEFAULT_ENCODERS,
    NO_MAP,
    CompareConfig,
    format_table,
    run_compare,
    summarise,
)
from mapenc.study.probes import ProbeConfig
from mapenc.study.protocol import STUDY_TASKS

HELP = "compare encoders on MNIST or trajectories over seeds: results.json, table, plots, probes"

# With only a time or step budget, that budget decides when a run stops.
EPOCHS_UNDER_BUDGET = 10_000


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in _names(text))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mapenc compare`, one per CompareConfig field."""
    defaults = CompareConfig()
    parser.add_argument("--task", choices=STUDY_TASKS, default=defaults.task)
    parser.add_argument(
        "--data",
        nargs="+",
        default=[],
        metavar="PATH",
        help="mnist: mnist.npz / IDX folder / CSV (default embedded 5k); "
        "traj: CommonRoad folders, scene folders or synthetic:N",
    )
    parser.add_argument(
        "--encoders",
        type=_names,
        default=DEFAULT_ENCODERS,
        help=f"comma-separated registered encoders (see `mapenc describe --help`), or {NO_MAP!r} (traj: no map)",
    )
    parser.add_argument("--seeds", type=int, default=defaults.seeds, help="runs per encoder")
    parser.add_argument("--epochs", type=int, help="per run (default 10, unbounded with a budget)")
    parser.add_argument("--max-minutes", type=float, help="training minutes per run")
    parser.add_argument("--max-steps", type=int, help="optimiser steps per run")
    parser.add_argument("--batch-size", type=int, help="default 128 (mnist) / 64 (traj)")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument(
        "--decoder",
        default=defaults.decoder,
        help="mnist: one decoder for every encoder; 'mirror' gives each encoder its own",
    )
    parser.add_argument("--iw", type=int, default=defaults.iw_k, help="mnist: k of the test NLL")
    parser.add_argument(
        "--raster-sizes",
        type=_sizes,
        default=defaults.raster_sizes,
        help="traj: comma-separated pixels per side over a 64 m extent (64 = 1 m/px)",
    )
    splits = ("train", "val", "test", "all")
    parser.add_argument("--train-split", default=defaults.train_split, choices=splits)
    parser.add_argument("--eval-split", default=defaults.eval_split, choices=splits)
    parser.add_argument("--cache-dir", default="", help="traj raster cache")
    parser.add_argument("--probe-samples", type=int, default=defaults.probe_samples)
    parser.add_argument("--device", default=defaults.device, help="auto, cpu, cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--out", type=Path, required=True, help="study folder")


def config_from_args(args: argparse.Namespace) -> CompareConfig:
    """The CompareConfig the arguments describe."""
    budget = args.max_minutes is not None or args.max_steps is not None
    data = tuple(str(Path(p).resolve()) if Path(p).exists() else p for p in args.data)
    return CompareConfig(
        task=args.task,
        encoders=args.encoders,
        seeds=args.seeds,
        data=data,
        epochs=args.epochs or (EPOCHS_UNDER_BUDGET if budget else 10),
        max_minutes=args.max_minutes,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        decoder=None if args.decoder == "mirror" else args.decoder,
        iw_k=args.iw,
        raster_sizes=args.raster_sizes,
        train_split=args.train_split,
        eval_split=args.eval_split,
        cache_dir=args.cache_dir,
        probe_samples=args.probe_samples,
        probe=ProbeConfig(),
        device=args.device,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the study, print the table and where the files are; returns 0."""
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    config = config_from_args(args)
    rows = run_compare(config, args.out)
    print(format_table(summarise(rows), config.task))
    print(f"rows: {args.out / 'results.json'}; summary and PNGs in {args.out}")
    return 0
