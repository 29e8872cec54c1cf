"""`mapenc info PATH [--tracks CSV] [--dt S] [--png out.png]`: what a map or scenario holds.

Prints JSON: the map's counts, bounds and projection (``VectorMap.summary()``) and, for a
scenario, its track count, kinds, dt, number of steps and focal track. With ``--png``, draws the
map with the tracks over it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mapenc.errors import MapencError
from mapenc.maps.io import holds_tracks, load_map, load_scenario, reading_once
from mapenc.maps.types import Scenario, VectorMap

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
    vector_map, scenario = load_map_or_scenario(config)
    print(json.dumps(summarize(vector_map, scenario), indent=2))
    if config.png is not None:
        draw_png(vector_map, scenario, config.png)
        print(f"wrote {config.png}")
    return 0


def load_map_or_scenario(config: InfoConfig) -> tuple[VectorMap, Scenario | None]:
    """The scenario when the path holds tracks (AV2 parquet or folder, generic scene, CommonRoad
    XML with dynamic obstacles), else the map alone. Each file is read once."""
    with reading_once():
        if config.tracks is None and not holds_tracks(config.path):
            return load_map(config.path), None
        scenario = load_scenario(config.path, tracks=config.tracks, dt=config.dt)
    return scenario.map, scenario


def summarize(vector_map: VectorMap, scenario: Scenario | None) -> dict[str, Any]:
    """``VectorMap.summary()`` plus, for a scenario, a ``scenario`` entry with track counts."""
    summary: dict[str, Any] = {"map": vector_map.summary()}
    if scenario is not None:
        kinds = Counter(track.kind for track in scenario.tracks)
        summary["scenario"] = {
            "source": scenario.source,
            "tracks": len(scenario.tracks),
            "kinds": dict(kinds.most_common()),
            "dt_s": scenario.dt,
            "steps": scenario.num_steps,
            "duration_s": round(scenario.dt * max(scenario.num_steps - 1, 0), 3),
            "valid_positions": int(sum(int(t.valid.sum()) for t in scenario.tracks)),
            "focal_track_id": scenario.focal_track_id,
        }
    return summary


def draw_png(vector_map: VectorMap, scenario: Scenario | None, path: Path) -> None:
    """Draw the map (and tracks) into a PNG at ``path`` with matplotlib's Agg backend."""
    try:
        import matplotlib
    except ImportError:
        raise MapencError(
            "--png needs matplotlib; install it with `pip install mapenc[viz]`"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mapenc.maps.plot import plot_map, plot_tracks

    fig, ax = plt.subplots(figsize=(8, 8), dpi=120)
    try:
        plot_map(ax, vector_map)
        if scenario is not None:
            plot_tracks(ax, scenario)
        ax.set_title(Path(vector_map.source).name or "map")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
    finally:
        plt.close(fig)
