"""`mapenc prepare --data PATH... --out DIR [--workers N]`: convert sources into a scenario store.

Every source under ``--data`` (Waymo shards, INTERACTION recordings, CommonRoad files, AV2 and
generic scene folders) is read once and written as a store shard under ``--out``
(``mapenc.data.scenario_store``), ``--workers`` files at a time, with progress. Sources already
converted (same content) are kept. Prints a JSON summary: sources, shards written and reused,
scenarios. Train and evaluate on the store with ``--data DIR`` (its ``*.scenarios`` shards).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from mapenc.commands.flags import ConfigFlags, Flag
from mapenc.data.scenario_store import prepare_store

HELP = "convert scenario sources once into a scenario store read at memory speed"


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of `mapenc prepare`.

    Attributes:
        data: data paths (Waymo ``.tfrecord`` files and shards, INTERACTION track files or
            folders, CommonRoad files, AV2 or generic scene folders, or folders holding them).
        out: the store folder.
        workers: processes converting files at the same time.
    """

    data: tuple[str, ...] = ()
    out: Path = Path("store")
    workers: int = 1


FLAGS = ConfigFlags(
    PrepareConfig,
    overrides=(
        Flag("data", required=True, metavar="PATH"),
        Flag("out", required=True, metavar="DIR"),
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per PrepareConfig field."""
    FLAGS.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Prepare the store, print the summary, return 0."""
    config = FLAGS.build(args)
    prepared = prepare_store(config.data, config.out, workers=config.workers)
    summary = {
        "store": str(config.out),
        "sources": len(prepared),
        "written": sum(not p.reused for p in prepared),
        "reused": sum(p.reused for p in prepared),
        "scenarios": sum(p.scenarios for p in prepared),
    }
    print(json.dumps(summary, indent=1))
    return 0
