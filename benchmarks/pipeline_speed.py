"""The dataset loop end to end: read a scenario, set up its map, rasterize the agents to predict.

For each source of the real data folder (``MAPENC_REAL_DATA`` or ``--data``), in one process:

- Waymo Open Motion: the ``womd_210`` shards, gunzipped into a temporary folder (real shards are
  uncompressed), the first ``--count`` scenarios; agents: ``tracks_to_predict`` at
  ``current_step``;
- AV2: the forecasting scenario folder and the sensor-log folders, cycled to ``--count``; agents:
  the focal and scored tracks at the last observed step (forecasting), up to ``--agents``
  vehicles at the middle step (sensor logs);
- INTERACTION: the ``vehicle_tracks_NNN.csv.gz`` recordings, up to ``--recordings`` of them, when
  ``load_scenario`` reads them; agents: every valid track at every 10th step (many poses on one
  map), at most ``--max-samples`` per recording;
- the scenario store (``mapenc prepare``, ``mapenc.maps.store``): the same Waymo scenarios
  written once into a temporary store shard, then read back;
- streaming (``mapenc.data.streaming.StreamingSamples``): the training samples/s it feeds from
  two store shards of those scenarios through a DataLoader with 0 and 2 workers.

Each loop is timed as read (the reader hands out the Scenario), set-up (``Rasterizer(...)``) and
rasterize (``rasterize`` of the agents' poses, 224 x 224 at 0.5 m, the default layers), for every
raster mode in ``--modes``. The floor of each source is the bare parse of the same files, timed in
the same run: ``Scenario.FromString`` over the TFRecord framing (Waymo and the store),
``pyarrow.parquet.read_table`` + ``json.loads`` of the map (AV2), ``pyarrow.csv.read_csv`` of the
tracks + ``defusedxml`` parse of the map (INTERACTION). Floor and loops take turns, each loop
``--repeats`` times, and the fastest times count (on a shared machine other work only slows a
run).
Prints scenarios/s and samples/s end to end, the read alone and end to end as shares of the
floor, and the split.

Usage: ``OMP_NUM_THREADS=1 nice python benchmarks/pipeline_speed.py [--data DIR] [--count N]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import cycle, islice
from pathlib import Path

import numpy as np

from mapenc.errors import MapencError
from mapenc.maps import Scenario, iter_scenarios, load_scenario
from mapenc.maps.store import STORE_SUFFIX, write_store_shard
from mapenc.maps.tfrecord import iter_records
from mapenc.maps.waymo_proto import scenario_pb2
from mapenc.raster import Rasterizer, RasterSpec
from mapenc.raster.rasterizer import RASTER_MODES

RECORDING_STRIDE_STEPS = 10  # INTERACTION: one sample time per second at 10 Hz


@dataclass
class Timing:
    """Seconds spent per stage over one source and mode, and what went through."""

    read: float = 0.0
    setup: float = 0.0
    rasterize: float = 0.0
    scenarios: int = 0
    samples: int = 0

    @property
    def total(self) -> float:
        return self.read + self.setup + self.rasterize


@dataclass
class Source:
    """One data source: how its scenarios are read and what its floor is.

    Attributes:
        name: printed name.
        scenarios: a fresh iterator over its scenarios (the reader under test).
        floor: parses the same files with the bare format library; returns the scenarios parsed.
        note: why the source was not timed, when it was not.
    """

    name: str
    scenarios: Callable[[], Iterator[Scenario]]
    floor: Callable[[], int]
    note: str = ""
    floor_seconds: float = field(default=0.0)


def agent_poses(scenario: Scenario, max_agents: int, max_samples: int) -> np.ndarray:
    """(N, 3) city-frame poses [x, y, heading] of the agents a training loop would rasterize."""
    if scenario.tracks_to_predict or scenario.focal_track_id is not None:
        t = scenario.current_step if scenario.current_step is not None else 49
        ids = list(scenario.tracks_to_predict)
        if scenario.focal_track_id is not None:
            ids.append(scenario.focal_track_id)
            ids += [tr.id for tr in scenario.tracks if tr.category == 2]
        chosen = [scenario.track(i) for i in dict.fromkeys(ids)]
        rows = [[*tr.xy[t], tr.heading[t]] for tr in chosen if tr.valid[t]]
    elif scenario.first_step or scenario.num_steps > 300:  # a long recording (INTERACTION)
        rows = []
        for t in range(0, scenario.num_steps, RECORDING_STRIDE_STEPS):
            rows += [[*tr.xy[t], tr.heading[t]] for tr in scenario.tracks if tr.valid[t]]
        rows = rows[:max_samples]
    else:
        t = scenario.num_steps // 2
        vehicles = [tr for tr in scenario.tracks if tr.kind == "vehicle" and tr.valid[t]]
        rows = [[*tr.xy[t], tr.heading[t]] for tr in vehicles[:max_agents]]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def run_loop(source: Source, mode: str, spec: RasterSpec, args: argparse.Namespace) -> Timing:
    """Time read / set-up / rasterize over every scenario of ``source`` in ``mode``."""
    timing = Timing()
    scenarios = source.scenarios()
    while True:
        start = time.perf_counter()
        scenario = next(scenarios, None)
        read = time.perf_counter()
        if scenario is None:
            return timing
        rasterizer = Rasterizer(scenario.map, spec, mode=mode)  # type: ignore[arg-type]
        built = time.perf_counter()
        poses = agent_poses(scenario, args.agents, args.max_samples)
        if len(poses):
            rasterizer.rasterize(poses, dtype=np.uint8)
        done = time.perf_counter()
        timing.read += read - start
        timing.setup += built - read
        timing.rasterize += done - built
        timing.scenarios += 1
        timing.samples += len(poses)


def waymo_source(shards: list[Path], count: int) -> Source:
    """The first ``count`` scenarios of the (uncompressed) shards."""

    def scenarios() -> Iterator[Scenario]:
        return islice((sc for shard in shards for sc in iter_scenarios(shard)), count)

    def floor() -> int:
        payloads = islice((p for shard in shards for p in iter_records(shard)), count)
        return sum(1 for p in payloads if scenario_pb2.Scenario.FromString(p))

    return Source("Waymo (womd_210 shards)", scenarios, floor)


def av2_source(data: Path, count: int) -> Source:
    """AV2 scenario folders (forecasting + sensor logs), cycled to ``count`` reads."""
    folders = sorted((data / "av2" / "forecasting").iterdir())
    folders += sorted((data / "av2" / "sensor_logs").iterdir())
    folders = [f for f in folders if f.is_dir()]

    def scenarios() -> Iterator[Scenario]:
        return (load_scenario(f) for f in islice(cycle(folders), count))

    def floor() -> int:
        import pyarrow.parquet as pq

        for folder in islice(cycle(folders), count):
            parquet = next(
                p for p in sorted(folder.rglob("*.parquet")) if "annotations" not in p.name
            )
            pq.read_table(parquet)
            json.loads(next(folder.rglob("log_map_archive_*.json")).read_bytes())
        return count

    return Source(f"AV2 ({len(folders)} scenario folders)", scenarios, floor)


def interaction_source(data: Path, count: int) -> Source:
    """INTERACTION recordings (one per ``vehicle_tracks_NNN.csv.gz``), ``count`` of them spread
    over the locations."""
    by_location = [
        sorted(folder.glob("vehicle_tracks_*.csv*"))
        for folder in sorted((data / "interaction" / "recorded_trackfiles").iterdir())
    ]
    files = [f for group in zip(*by_location, strict=False) for f in group][:count]

    def scenarios() -> Iterator[Scenario]:
        return (load_scenario(f) for f in files)

    def floor() -> int:
        import pyarrow.csv as pcsv
        from defusedxml.ElementTree import fromstring

        for f in files:
            pcsv.read_csv(f)
            location = f.parent.name.removeprefix("DR_")
            osm = data / "interaction" / "maps" / f"DR_{location}.osm"
            fromstring(osm.read_bytes())
        return len(files)

    source = Source(f"INTERACTION ({len(files)} recordings)", scenarios, floor)
    try:
        load_scenario(files[0])
    except MapencError as err:
        source.note = f"not readable yet: {err}"
    return source


def store_source(shards: list[Path], count: int, folder: Path) -> Source:
    """The same Waymo scenarios written once (outside the timing) into a scenario-store shard,
    read back; the floor is the protobuf parse of those scenarios."""
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / f"bench{STORE_SUFFIX}"
    waymo = waymo_source(shards, count)
    write_store_shard(waymo.scenarios(), store, "benchmark")
    return Source(
        "scenario store (the Waymo scenarios)", lambda: iter_scenarios(store), waymo.floor
    )


def fastest(runs: list[Timing]) -> Timing:
    """The fastest of repeated runs, stage by stage (a busy machine only ever slows a run)."""
    return Timing(
        read=min(r.read for r in runs),
        setup=min(r.setup for r in runs),
        rasterize=min(r.rasterize for r in runs),
        scenarios=runs[0].scenarios,
        samples=runs[0].samples,
    )


def print_row(source: Source, mode: str, timing: Timing) -> None:
    """One table row: rates, the read alone and end to end as shares of the floor, the split."""
    total = timing.total
    floor_rate = timing.scenarios / source.floor_seconds
    rate = timing.scenarios / total
    read_rate = timing.scenarios / timing.read
    print(
        f"| {source.name} | {mode} | {rate:.1f} | {timing.samples / total:.1f} | "
        f"{floor_rate:.1f} | {read_rate:.1f} ({read_rate / floor_rate:.2f}x) | "
        f"{100 * rate / floor_rate:.1f} % | "
        f"{100 * timing.read / total:.0f} / {100 * timing.setup / total:.0f} / "
        f"{100 * timing.rasterize / total:.0f} % |",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("MAPENC_REAL_DATA"))
    parser.add_argument("--count", type=int, default=40, help="Waymo and AV2 scenarios")
    parser.add_argument("--recordings", type=int, default=8, help="INTERACTION recordings")
    parser.add_argument("--agents", type=int, default=8, help="agents per sensor-log scenario")
    parser.add_argument("--max-samples", type=int, default=400, help="poses per recording")
    parser.add_argument(
        "--stream-workers",
        type=int,
        nargs="*",
        default=[0, 2],
        help="DataLoader workers to time StreamingSamples with (none: skip)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs per loop; the fastest counts")
    parser.add_argument(
        "--modes", nargs="+", default=[m for m in ("exact", "fast", "auto") if m in RASTER_MODES]
    )
    parser.add_argument("--sources", nargs="*", default=["waymo", "av2", "interaction", "store"])
    args = parser.parse_args()
    if args.data is None or not Path(args.data).is_dir():
        parser.error("give --data or set MAPENC_REAL_DATA")
    data = Path(args.data)
    warnings.simplefilter("ignore")  # degenerate-feature warnings, once per scenario
    spec = RasterSpec(size_px=(224, 224), pixel_size_m=0.5)
    with tempfile.TemporaryDirectory() as tmp:
        shards = []
        for packed in sorted((data / "waymo" / "womd_210").glob("*.tfrecord-*.gz")):
            shard = Path(tmp) / packed.name.removesuffix(".gz")
            with gzip.open(packed) as src, shard.open("wb") as out:
                shutil.copyfileobj(src, out)
            shards.append(shard)
        makers: dict[str, Callable[[], Source]] = {
            "waymo": lambda: waymo_source(shards, args.count),
            "av2": lambda: av2_source(data, args.count),
            "interaction": lambda: interaction_source(data, args.recordings),
            "store": lambda: store_source(shards, args.count, Path(tmp) / "store"),
        }
        print(
            "| source | mode | end to end scenarios/s | samples/s | floor (bare parse) "
            "scenarios/s | read alone scenarios/s (x floor) | end to end share of floor | "
            "read / set-up / rasterize |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name in args.sources:
            source = makers[name]()
            if source.note:
                print(f"| {source.name} | - | {source.note} |")
                continue
            # Floor and loops take turns, so a burst of other work slows both alike.
            floors: list[float] = []
            runs: dict[str, list[Timing]] = {mode: [] for mode in args.modes}
            for _ in range(args.repeats):
                for mode in args.modes:
                    start = time.perf_counter()
                    source.floor()
                    floors.append(time.perf_counter() - start)
                    runs[mode].append(run_loop(source, mode, spec, args))
            source.floor_seconds = min(floors)
            for mode in args.modes:
                print_row(source, mode, fastest(runs[mode]))
        if args.stream_workers:
            print_streaming(shards, args, Path(tmp) / "stream")
    return 0


def print_streaming(shards: list[Path], args: argparse.Namespace, folder: Path) -> None:
    """Training samples/s that ``StreamingSamples`` feeds through a DataLoader with each of
    ``--stream-workers`` workers, from a scenario-store shard of ``--count`` Waymo scenarios."""
    from torch.utils.data import DataLoader

    from mapenc.data.streaming import StreamingSamples
    from mapenc.data.trajectory import TrajTask

    folder.mkdir(parents=True, exist_ok=True)
    scenarios = list(waymo_source(shards, args.count).scenarios())
    halves = [scenarios[: len(scenarios) // 2], scenarios[len(scenarios) // 2 :]]
    store = [folder / f"half{k}{STORE_SUFFIX}" for k in range(2)]
    for part, path in zip(halves, store, strict=True):
        write_store_shard(part, path, "benchmark")
    spec = RasterSpec(size_px=(64, 64), pixel_size_m=1.0)
    print("\n| streamed from the store (64 x 64 rasters, exact) | DataLoader workers | samples/s |")
    print("|---|---|---|")
    for workers in args.stream_workers:
        dataset = StreamingSamples(store, TrajTask(), spec, batch_size=64)
        start = time.perf_counter()
        count = sum(
            len(b["past"]) for b in DataLoader(dataset, batch_size=None, num_workers=workers)
        )
        rate = count / (time.perf_counter() - start)
        print(
            f"| {count} samples of {len(scenarios)} scenarios | {workers} | {rate:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    raise SystemExit(main())
