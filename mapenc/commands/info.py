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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mapenc info`, one per InfoConfig field."""
    parser.add_argument("path", type=Path, help="map or scenario file, or a scene folder")
    parser.add_argument("--tracks", type=Path, help="tracks CSV for a GeoJSON map file")
    parser.add_argument("--dt", type=float, help="seconds per step (generic format)")
    parser.add_argument("--png", type=Path, help="draw the map and tracks into this PNG")


def run(args: argparse.Namespace) -> int:
    """Print the summary as JSON; draw the PNG when asked. Returns 0."""
    config = InfoConfig(path=args.path, tracks=args.tracks, dt=args.dt, png=args.png)
    vector_map, scenario = load_map_or_scenario(config.path, config.tracks, config.dt)
    print(json.dumps(summarize(vector_map, scenario), indent=2))
    if config.png is not None:
        from mapenc.maps.plot import draw_map_png

        draw_map_png(vector_map, scenario, config.png)
        print(f"wrote {config.png}")
    return 0
