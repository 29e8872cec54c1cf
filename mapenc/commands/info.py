"""`mapenc info PATH [--tracks CSV] [--dt S] [--heading-units deg] [--png out.png]`: what a map
or scenario holds.

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
from mapenc.errors import ConfigError, printable
from mapenc.maps.geojson import HEADING_UNITS
from mapenc.maps.io import (
    interaction_track_files,
    is_waymo_file,
    iter_scenarios,
    load_map_or_scenario,
    summarize,
    waymo_record,
)
from mapenc.maps.types import Scenario, VectorMap
from mapenc.safeio import figure_path

HELP = "print what a map or scenario holds (counts, bounds, tracks); optionally draw it"


@dataclass(frozen=True)
class InfoConfig:
    """Settings of `mapenc info`.

    Attributes:
        path: a map file, a scenario file, a scene folder, or an INTERACTION release or
            location folder.
        tracks: tracks CSV for a GeoJSON map given as a file (generic format).
        dt: seconds per step for the generic format, overriding the GeoJSON's ``properties.dt``.
        png: where to draw the map and tracks, or None.
        heading_units: "rad" or "deg" for the generic format's tracks CSV, overriding the
            GeoJSON's ``properties.heading_units`` (default radians).
    """

    path: Path
    tracks: Path | None = None
    dt: float | None = None
    png: Path | None = None
    heading_units: str | None = None


FLAGS = ConfigFlags(
    InfoConfig,
    overrides=(Flag("path", positional=True), Flag("heading_units", choices=HEADING_UNITS)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per InfoConfig field."""
    FLAGS.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Print the summary as JSON; draw the PNG when asked. Returns 0.

    A Waymo file and an INTERACTION release or location folder are read one scenario at a time;
    for many scenarios (a shard, several recordings) it prints ``{"source": ..., "scenarios": [one
    summary per scenario]}``, and ``--png`` then needs one named (``FILE#i``, a track file).
    """
    config = FLAGS.build(args)
    shard = is_waymo_file(config.path) and waymo_record(config.path)[1] is None
    if shard or interaction_track_files(config.path):
        return _run_on_many(config)
    vector_map, scenario = load_map_or_scenario(
        config.path, config.tracks, config.dt, config.heading_units
    )
    print(json.dumps(summarize(vector_map, scenario), indent=2))
    _draw(config, vector_map, scenario)
    return 0


def _run_on_many(config: InfoConfig) -> int:
    """`mapenc info` on a Waymo file or an INTERACTION folder, reading one scenario at a time."""
    summaries, scenario = [], None
    for scenario in iter_scenarios(config.path):
        summaries.append(summarize(scenario.map, scenario))
    if scenario is not None and len(summaries) == 1:
        print(json.dumps(summaries[0], indent=2))
        _draw(config, scenario.map, scenario)
        return 0
    print(json.dumps({"source": str(config.path), "scenarios": summaries}, indent=2))
    if config.png is not None:
        one = (
            f"name it as {config.path}#i"
            if is_waymo_file(config.path)
            else "name one of its vehicle_tracks_NNN.csv files"
        )
        raise ConfigError(
            f"{config.path}: holds {len(summaries)} scenarios, --png draws one: {one}"
        )
    return 0


def _draw(config: InfoConfig, vector_map: VectorMap, scenario: Scenario | None) -> None:
    """Draw the map and tracks into ``config.png`` when it is set."""
    if config.png is not None:
        from mapenc.maps.plot import draw_map_png

        draw_map_png(vector_map, scenario, config.png)
        print(f"wrote {printable(str(figure_path(config.png)))}")
