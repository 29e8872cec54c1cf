"""`mapenc compare --task mnist|traj --encoders A,B --seeds S --out DIR`: the encoder study.

One flag per field of ``mapenc.study.CompareConfig``; trains every encoder ``S`` times for the
same number of optimiser steps into ``DIR/runs/<encoder>-s<seed>/`` (finished runs are skipped,
so a killed study resumes; ``--workers N`` trains N at a time), then writes ``DIR/results.json``,
``DIR/summary.json`` and PNGs, and prints a mean ± std table and, for trajectories, each
encoder's and baseline's means with 95 % intervals over scenes and seeds and the paired
differences to ``none``, then minFDE of all, moving and turning agents (the Waymo trajectory
types of the true futures, ``by_trajectory_type`` in ``summary.json``) with the same intervals,
and the family of minFDE differences with Holm-adjusted p-values (``multiple_comparisons``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from mapenc.commands.flags import ConfigFlags, Flag, comma_list
from mapenc.data.traj_sources import SPLITS
from mapenc.raster import list_layers
from mapenc.study.compare import (
    SUMMARY_NAME,
    format_corrected,
    format_intervals,
    format_table,
    format_type_intervals,
    run_compare,
    summarise,
)
from mapenc.study.config import NO_MAP, STUDY_ANCHORS, STUDY_TASK_NAMES, CompareConfig
from mapenc.study.probes import ProbeConfig
from mapenc.study.tasks import STUDY_TASKS

HELP = "compare encoders on MNIST or trajectories over seeds: results.json, table, plots, probes"
MIRROR = "mirror"


def existing_path_resolved(text: str) -> str:
    """A data path made absolute when it exists (``synthetic:N`` and the like stay as they are)."""
    return str(Path(text).resolve()) if Path(text).exists() else text


def count_or_all(text: str) -> int | None:
    """A positive count, or None for ``all``."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a count or 'all'") from None


def decoder_choice(text: str) -> str | None:
    """A registered decoder name, or None for ``mirror`` (each encoder's own decoder)."""
    return None if text == MIRROR else text


FLAGS = ConfigFlags(
    CompareConfig,
    CompareConfig(),
    (
        Flag("task", choices=STUDY_TASK_NAMES),
        Flag(
            "encoders",
            parse=comma_list(str),
            help=f"comma-separated registered encoders, or {NO_MAP!r} (traj: no map)",
        ),
        Flag("data", parse=existing_path_resolved, metavar="PATH", default=[]),
        Flag("raster_sizes", parse=comma_list(int), help="traj: comma-separated pixels per side"),
        Flag("layers", choices=list_layers(), metavar="LAYER", help="traj: raster layers"),
        Flag(
            "references",
            parse=comma_list(str),
            help="comma-separated encoders every other method's difference is taken to, each "
            f"with its interval (default: {NO_MAP!r} for traj, the first encoder for mnist)",
        ),
        Flag(
            "decoder",
            parse=decoder_choice,
            help=f"mnist: one decoder for every encoder; {MIRROR!r} gives each encoder its own",
        ),
        Flag("iw_k", ("--iw",), metavar="K"),
        Flag("eval_images", parse=count_or_all, metavar="N|all"),
        Flag("anchors", choices=STUDY_ANCHORS),
        Flag("train_split", choices=(*SPLITS, "all")),
        Flag("eval_split", choices=(*SPLITS, "all")),
        Flag("progress", ("--no-progress",), help="no progress bars"),
        *(
            Flag(f"probe.{field.name}", (f"--probe-{field.name.replace('_', '-')}",))
            for field in dataclasses.fields(ProbeConfig)
        ),
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per CompareConfig field, plus the study folder."""
    FLAGS.add_to(parser)
    parser.add_argument("--out", type=Path, required=True, help="study folder")


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the study, print the table and where the files are; returns 0."""
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    config = FLAGS.build(args)
    rows = run_compare(config, args.out)
    task = STUDY_TASKS[config.task]
    print(format_table(summarise(rows), task.headline_metrics, task.table_digits))
    saved = json.loads((args.out / SUMMARY_NAME).read_text())
    for reference in saved.get("references", []):
        intervals = format_intervals(saved, reference)
        if intervals:
            print(
                f"\nmeans and differences to {reference}, 95 % intervals over "
                f"{saved['intervals_over']}:"
            )
            print(intervals)
        by_type = format_type_intervals(saved, reference)
        if by_type:
            print(f"\nminFDE of all, moving and turning agents and differences to {reference}:")
            print(by_type)
    corrected = format_corrected(saved)
    if corrected:
        print(f"\n{saved['multiple_comparisons']['method']}:")
        print(corrected)
    print(f"rows: {args.out / 'results.json'}; summary and PNGs in {args.out}")
    return 0
