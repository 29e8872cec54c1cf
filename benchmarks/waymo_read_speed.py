"""How fast the Waymo Open Motion reader streams a shard, and how soon the first raster comes.

Builds a shard of ``--count`` scenarios in a temporary folder (deleted afterwards): the two real
scenarios of ``MAPENC_REAL_DATA`` / ``--data`` (``waymo/*.tfrecord``) repeated, or, with
``--synthetic``, synthetic towns written in the Waymo format. Then, in one process:

- baseline: the TFRecord framing alone (``iter_records``: read + both CRC-32C checks), and
  framing + protobuf parsing (``Scenario.FromString``), the floor for any protobuf reader;
- mapenc: ``iter_scenarios`` (framing, parsing, tracks, lanes with boundaries, polygons);
- time to the first raster: open the shard, read its first scenario, build a ``Rasterizer`` and
  rasterize one agent at its current step (exact and fast modes, 224 x 224 at 0.5 m).

Prints scenarios/s, MB/s and the reader's time as a ratio to the protobuf-parse baseline.
Usage: ``nice python benchmarks/waymo_read_speed.py [--data DIR] [--count N] [--synthetic]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from itertools import cycle, islice
from pathlib import Path
from typing import Any

from mapenc.maps import Scenario, iter_scenarios
from mapenc.maps.tfrecord import iter_records, write_records
from mapenc.maps.waymo_proto import scenario_pb2
from mapenc.raster import Rasterizer, RasterSpec


def real_payloads(data: Path, count: int) -> Iterator[bytes]:
    """``count`` records cycling over the real scenarios' records."""
    files = sorted((data / "waymo").glob("*.tfrecord"))
    if not files:
        raise SystemExit(f"no waymo/*.tfrecord under {data}")
    records = [payload for path in files for payload in iter_records(path)]
    return islice(cycle(records), count)


def synthetic_payloads(count: int) -> Iterator[bytes]:
    """``count`` synthetic towns with traffic, as Waymo records."""
    from mapenc.maps.synthetic import make_scenarios
    from mapenc.maps.waymo_write import scenario_to_proto

    for scenario in make_scenarios(count, seed=0):
        yield scenario_to_proto(scenario).SerializeToString()


def timed(name: str, run: Callable[[], int], count: int, megabytes: float) -> float:
    """Seconds of ``run()`` (which returns how many scenarios it went through); prints rates."""
    start = time.perf_counter()
    seen = run()
    seconds = time.perf_counter() - start
    assert seen == count, (name, seen, count)
    print(
        f"{name:<44} {seconds:7.2f} s {count / seconds:8.1f} scenarios/s "
        f"{megabytes / seconds:7.1f} MB/s"
    )
    return seconds


def first_raster(shard: Path, mode: Any) -> tuple[float, float, float]:
    """Seconds from opening ``shard`` to: its first scenario read, the Rasterizer built, and the
    first agent's raster (the first track to predict, else the first track, at its current step
    or first valid step)."""
    start = time.perf_counter()
    scenario: Scenario = next(iter_scenarios(shard))
    read = time.perf_counter()
    rasterizer = Rasterizer(scenario.map, RasterSpec(), mode=mode)
    built = time.perf_counter()
    agent = scenario.track((scenario.tracks_to_predict or (scenario.tracks[0].id,))[0])
    t = scenario.current_step if scenario.current_step is not None else 0
    if not agent.valid[t]:
        t = int(agent.valid.argmax())
    rasterizer.rasterize([[*agent.xy[t], agent.heading[t]]])
    done = time.perf_counter()
    return read - start, built - start, done - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("MAPENC_REAL_DATA"))
    parser.add_argument("--count", type=int, default=100, help="scenarios in the shard")
    parser.add_argument("--synthetic", action="store_true", help="synthetic towns, no real data")
    args = parser.parse_args()
    if not args.synthetic and (args.data is None or not Path(args.data).is_dir()):
        parser.error("give --data, set MAPENC_REAL_DATA, or use --synthetic")
    warnings.simplefilter("ignore")  # degenerate-feature warnings, once per scenario
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "bench.tfrecord-00000-of-00001"
        payloads = (
            synthetic_payloads(args.count)
            if args.synthetic
            else real_payloads(Path(args.data), args.count)
        )
        write_records(shard, payloads)
        megabytes = shard.stat().st_size / 1e6
        source = "synthetic towns" if args.synthetic else "the real scenarios, repeated"
        print(f"shard: {args.count} scenarios of {source}, {megabytes:.1f} MB")

        def framing() -> int:
            return sum(1 for _ in iter_records(shard))

        def protobuf_parse() -> int:
            return sum(1 for p in iter_records(shard) if scenario_pb2.Scenario.FromString(p))

        def mapenc_reader() -> int:
            return sum(1 for _ in iter_scenarios(shard))

        timed("baseline: framing + CRC-32C", framing, args.count, megabytes)
        parse = timed("baseline: framing + protobuf parse", protobuf_parse, args.count, megabytes)
        full = timed("mapenc iter_scenarios", mapenc_reader, args.count, megabytes)
        print(f"mapenc reader time / protobuf-parse baseline: {full / parse:.2f}x")
        for mode in ("exact", "fast"):
            read, built, done = first_raster(shard, mode)
            print(
                f"first raster ({mode}): scenario read {read:.3f} s, rasterizer built "
                f"{built:.3f} s, first raster {done:.3f} s after opening the shard"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
