"""`mapenc info PATH [--tracks CSV] [--dt S] [--png out.png]`: what a map or scenario holds.

Prints JSON: the map's counts, bounds and projection (``VectorMap.summary()``) and, for a
scenario, its track count, kinds, dt, number of steps and focal track. With ``--png``, draws the
map with the tracks over it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from mapenc.commands.flags import ConfigFlags, Flag
from mapenc.maps.io import load_map_or_scenario, summarize

HELP = "print what a map or scenario holds (counts, bounds, tracks); optionally draw it"


@dataclass(frozen=True)
class InfoConfig:
    """Settings of `mapenc info`.

    Attributes:
        path: a map file, a scenario file, or a scene folder.
        tracks: tracks CSV for a GeoJSON map given as a file (generic format).
        dt: seconds per step for the generic format, overriding the GeoJSON's ``properties.dt``.
        png: where to draw the map and tracks, or None.
    """

    path: Path
    tracks: Path | None = None
    dt: float | None = None
    png: Path | None = None


FLAGS = ConfigFlags(InfoConfig, overrides=(Flag("path", positional=True),))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per InfoConfig field."""
    FLAGS.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Print the summary as JSON; draw the PNG when asked. Returns 0."""
    config = FLAGS.build(args)
    vector_map, scenario = load_map_or_scenario(config.path, config.tracks, config.dt)
    print(json.dumps(summarize(vector_map, scenario), indent=2))
    if config.png is not None:
        from mapenc.maps.plot import draw_map_png

        draw_map_png(vector_map, scenario, config.png)
        print(f"wrote {config.png}")
    return 0
