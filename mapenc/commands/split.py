"""`mapenc split --data PATH... [--json] [--write-fixed FILE]`: the train/val/test split of data.

Prints the split of the scenes found under ``--data`` (``mapenc.data.split``): with ``--json``
``{"train": [...], "val": [...], "test": [...], "dropped": {name: why}}`` (names relative to the
``--data`` folder as given), otherwise a summary per split (scenes, recordings, samples per
location). ``--write-fixed FILE`` plans the split afresh (ignoring fixed split files) and saves it
as a fixed split file with its provenance, the way ``mapenc/data/splits/*.json`` were made.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mapenc.commands.flags import ConfigFlags, Flag
from mapenc.data import recordings
from mapenc.data.split import plan_split, write_fixed_split
from mapenc.data.traj_sources import load_scenarios, plan_for, scene_names

HELP = "print the leak-free train/val/test split of scene files (whole recordings per split)"


@dataclass(frozen=True)
class SplitConfig:
    """Settings of `mapenc split`.

    Attributes:
        data: data paths (CommonRoad files/folders, AV2 or generic scene folders, Waymo
            ``.tfrecord`` files and shards).
        json: print the listing as JSON instead of the summary.
        write_fixed: plan afresh and save a fixed split file here.
        skip_bad: leave out scene files that cannot be read, listed under "skipped" (path -> error).
    """

    data: tuple[str, ...] = ()
    json: bool = False
    write_fixed: Path | None = None
    skip_bad: bool = False


FLAGS = ConfigFlags(
    SplitConfig,
    overrides=(
        Flag("data", required=True, metavar="PATH"),
        Flag("write_fixed", metavar="FILE"),
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per SplitConfig field."""
    FLAGS.add_to(parser)


def _provenance(config: SplitConfig) -> dict[str, Any]:
    return {
        "command": "mapenc split --data "
        + " ".join(config.data)
        + f" --write-fixed {config.write_fixed}",
        "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "grouping": {
            "window_s": recordings.WINDOW_S,
            "min_travel_m": recordings.MIN_TRAVEL_M,
            "signature_tol_m": recordings.SIGNATURE_TOL_M,
            "fit_tol_m": recordings.FIT_TOL_M,
        },
        "method": (
            "files sharing a vehicle (3 s windows matched by rigid-invariant speed/turn "
            "signatures, confirmed by a rigid fit within 5 cm over every step both files observe "
            "it) form one recording, and every INTERACTION track file or generated scene is a "
            "recording of its own; whole recordings per split, near 60/15/25 % of samples, "
            "every location in test; exact duplicates dropped"
        ),
    }


def run(args: argparse.Namespace) -> int:
    """Print the split (and write the fixed file when asked), return 0."""
    config = FLAGS.build(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # map repairs are reported by `mapenc info`, not here
        skipped: dict[str, str] | None = {} if config.skip_bad else None
        scenarios = load_scenarios(config.data, skipped)
    with_tracks = [sc for sc in scenarios if any(t.valid.any() for t in sc.tracks)]
    if config.write_fixed is not None:
        plan = plan_split(with_tracks, scene_names(with_tracks, config.data))
        write_fixed_split(plan, with_tracks, config.write_fixed, **_provenance(config))
        print(f"wrote {config.write_fixed}", file=sys.stderr)
    else:
        plan = plan_for(with_tracks, config.data)
    unreadable = {} if skipped is None else {"skipped": skipped}
    if config.json:
        print(json.dumps({**plan.listing(), **unreadable}, indent=1))
    else:
        print(json.dumps({"source": plan.source, **plan.summary(), **unreadable}, indent=1))
    return 0
