"""How fast the CommonRoad and Lanelet2 readers load real maps.

Times, single process, over the real data folder (``MAPENC_REAL_DATA`` or ``--data``):

- the 1,134 ``commonroad_osm_sumo`` files: ``read_commonroad_map`` (maps only) and
  ``read_commonroad_scenario`` (map + tracks);
- the 122 NGSIM scenarios: the same two readers;
- the Karlsruhe Lanelet2 map: ``read_lanelet2_map``.

Each set is first read with the baseline, gunzip + stock ``defusedxml.ElementTree.fromstring``
(a parse tree only, nothing extracted). Prints files/s and total seconds per pass and each reader's
time as a ratio to the baseline's on the same files. Usage: ``nice python benchmarks/map_load_speed.py [--data DIR] [--limit N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from defusedxml.ElementTree import fromstring
from tqdm import tqdm

from mapenc.maps.commonroad import read_commonroad_map, read_commonroad_scenario
from mapenc.maps.io import read_bytes
from mapenc.maps.lanelet2 import read_lanelet2_map


def stock_parse(path: Path) -> Any:
    """The baseline: the file's parse tree from stock defusedxml, nothing extracted."""
    return fromstring(read_bytes(path))


def time_pass(name: str, load: Callable[[Path], Any], paths: list[Path]) -> float:
    """Seconds to run ``load`` on every path (warnings counted, not shown)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        for path in tqdm(paths, desc=name, unit="file", leave=False, file=sys.stderr):
            load(path)
        seconds = time.perf_counter() - start
    print(
        f"{name:<34} {len(paths):5d} files {seconds:8.2f} s {len(paths) / seconds:8.1f} files/s"
        f"  ({len(caught)} repair warnings)"
    )
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("MAPENC_REAL_DATA"))
    parser.add_argument("--limit", type=int, default=None, help="first N OSM-SUMO files only")
    args = parser.parse_args()
    if args.data is None or not Path(args.data).is_dir():
        parser.error("give --data or set MAPENC_REAL_DATA to the real data folder")
    data = Path(args.data)
    osm_sumo = sorted((data / "commonroad_osm_sumo").glob("*.xml.gz"))[: args.limit]
    ngsim = sorted((data / "commonroad_ngsim").glob("*/*.xml.gz"))
    karlsruhe = [data / "maps_only" / "lanelet2_karlsruhe" / "mapping_example.osm"]

    datasets: list[tuple[str, list[Path], list[tuple[str, Callable[[Path], Any]]]]] = [
        (
            "OSM-SUMO",
            osm_sumo,
            [("map", read_commonroad_map), ("map+scenario", read_commonroad_scenario)],
        ),
        (
            "NGSIM",
            ngsim,
            [("map", read_commonroad_map), ("map+scenario", read_commonroad_scenario)],
        ),
        ("Lanelet2 Karlsruhe", karlsruhe, [("map", read_lanelet2_map)]),
    ]
    summary = []
    for dataset, paths, readers in datasets:
        baseline = time_pass(f"{dataset} baseline parse", stock_parse, paths)
        for what, load in readers:
            seconds = time_pass(f"{dataset} {what}", load, paths)
            summary.append(f"  {dataset + ' ' + what:<32} {seconds / baseline:5.2f}x")
    print("time relative to a stock defusedxml parse of the same files:")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
