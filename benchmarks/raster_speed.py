"""Rasterization speed: naive per-agent rasterio vs mapenc's exact and fast modes.

Everything is measured in one run on one thread: rasters per second for a batch of poses on
lane centerlines (random headings), 224x224 at 0.5 m/px, layers drivable_area, lane_boundaries,
centerlines, crosswalks. The naive baseline (per agent, per layer ``rasterio.features.rasterize``
of shapely-clipped geometry, float32) is implemented here and every figure is also given as a
ratio to it. Also measured: a big real AV2 city map, many CommonRoad OSM maps, and a torch
DataLoader with 0 and 2 workers.

    python benchmarks/raster_speed.py --data /work/shared/data [--osm-count 200] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import torch
from affine import Affine
from rasterio.features import rasterize
from torch.utils.data import DataLoader, Dataset

from mapenc.errors import ConfigError
from mapenc.maps import VectorMap, load_map
from mapenc.raster import Rasterizer, RasterSpec
from mapenc.raster.layers import LAYERS, map_geometry

SPEC = RasterSpec()  # 224x224, 0.5 m/px, agent at (0.25, 0.5), the four layers above
# Figures per method; "reused": the caller passes the same output buffer every call (out=...),
# which saves the page faults of fresh memory.
RATE_COLUMNS = (
    "exact_f32",
    "exact_f32_reused",
    "exact_u8",
    "fast_u8",
    "fast_u8_reused",
    "fast_f32",
    "fast_f32_reused",
)


class NaiveRasterizer:
    """The baseline: for each agent and layer, clip the layer's geometry to the agent's window
    with shapely and burn it with ``rasterio.features.rasterize`` through a rotated transform."""

    def __init__(self, vector_map: VectorMap, spec: RasterSpec) -> None:
        self.spec = spec
        self.geometry = {
            name: shapely.union_all(map_geometry(vector_map, name)) for name in spec.layers
        }

    def rasterize(self, poses: np.ndarray) -> np.ndarray:
        n, (h, w) = len(poses), self.spec.size_px
        out = np.zeros((n, self.spec.num_channels, h, w), dtype=np.float32)
        for a, m in enumerate(self.spec.raster_from_city(poses)):
            city_from_raster = np.linalg.inv(m)
            transform = Affine(*city_from_raster[0], *city_from_raster[1])
            window = shapely.polygons(self.spec.window_corners_city(poses[a : a + 1])[0])
            for c, name in enumerate(self.spec.layers):
                clipped = self.geometry[name].intersection(window)
                if clipped.is_empty:
                    continue
                out[a, c] = rasterize(
                    [clipped],
                    out_shape=(h, w),
                    transform=transform,
                    all_touched=LAYERS[name].kind == "line",
                    dtype=np.float32,
                )
        return out


def poses_on_lanes(m: VectorMap, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) poses at random centerline points of random lanes, random headings."""
    rng = np.random.default_rng(seed)
    lanes = [m.lanes[k] for k in rng.integers(0, len(m.lanes), count)]
    xy = np.stack([lane.centerline[rng.integers(0, len(lane.centerline))] for lane in lanes])
    return np.concatenate([xy, rng.uniform(-np.pi, np.pi, (count, 1))], axis=1)


def rate(fn: Callable[[], Any], count: int, repeats: int) -> float:
    """Best rasters/s over ``repeats`` calls of ``fn`` (each producing ``count`` rasters)."""
    fn()  # warm-up: caches, page faults
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return count / min(times)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def bench_map(m: VectorMap, poses: np.ndarray, repeats: int, naive_count: int) -> dict[str, float]:
    """Rates of every method on one map, plus fast-vs-exact IoU of the filled layers."""
    naive = NaiveRasterizer(m, SPEC)
    start = time.perf_counter()
    exact = Rasterizer(m, SPEC)
    exact.rasterize(poses[:1])
    setup_exact = time.perf_counter() - start
    start = time.perf_counter()
    fast = Rasterizer(m, SPEC, mode="fast")
    setup_fast = time.perf_counter() - start
    n = len(poses)
    shape = (n, SPEC.num_channels, *SPEC.size_px)
    buf_f32, buf_u8 = np.zeros(shape, np.float32), np.zeros(shape, np.uint8)
    result = {
        "naive_f32": rate(lambda: naive.rasterize(poses[:naive_count]), naive_count, 1),
        "exact_f32": rate(lambda: exact.rasterize(poses), n, repeats),
        "exact_f32_reused": rate(lambda: exact.rasterize(poses, out=buf_f32), n, repeats),
        "exact_u8": rate(lambda: exact.rasterize(poses, np.uint8), n, repeats),
        "fast_u8": rate(lambda: fast.rasterize(poses, np.uint8), n, repeats),
        "fast_u8_reused": rate(lambda: fast.rasterize(poses, np.uint8, out=buf_u8), n, repeats),
        "fast_f32": rate(lambda: fast.rasterize(poses), n, repeats),
        "fast_f32_reused": rate(lambda: fast.rasterize(poses, out=buf_f32), n, repeats),
        "setup_exact_s": setup_exact,
        "setup_fast_s": setup_fast,
    }
    e, f = exact.rasterize(poses, np.uint8) > 0, fast.rasterize(poses, np.uint8) > 0
    for name in ("drivable_area", "crosswalks"):
        c = SPEC.layers.index(name)
        result[f"iou_{name}"] = iou(e[:, c], f[:, c])
    ref = naive.rasterize(poses[:naive_count]) > 0
    result["exact_vs_naive_mismatch"] = float((ref != e[:naive_count]).mean())
    return result


class PoseBatches(Dataset[torch.Tensor]):
    """Batches of rasters of fixed poses: item k is the (B, C, H, W) uint8 raster of batch k."""

    def __init__(self, rasterizer: Rasterizer, poses: np.ndarray, batch: int) -> None:
        self.rasterizer, self.poses, self.batch = rasterizer, poses, batch

    def __len__(self) -> int:
        return (len(self.poses) + self.batch - 1) // self.batch

    def __getitem__(self, k: int) -> torch.Tensor:
        chunk = self.poses[k * self.batch : (k + 1) * self.batch]
        return torch.from_numpy(self.rasterizer.rasterize(chunk, np.uint8))


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def loader_rate(rasterizer: Rasterizer, poses: np.ndarray, workers: int, batch: int) -> float:
    """Rasters/s through a DataLoader over ``PoseBatches`` (set-up and worker start excluded)."""
    loader = DataLoader(
        PoseBatches(rasterizer, poses, batch),
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_one_thread if workers else None,
        persistent_workers=workers > 0,
    )
    for _ in loader:  # warm-up epoch: starts the workers
        pass
    start = time.perf_counter()
    count = sum(len(x) for x in loader)
    return count / (time.perf_counter() - start)


def biggest(paths: list[Path]) -> tuple[Path, VectorMap]:
    maps = [(p, load_map(p)) for p in paths]
    return max(
        maps,
        key=lambda pm: (pm[1].bounds[2] - pm[1].bounds[0]) * (pm[1].bounds[3] - pm[1].bounds[1]),
    )


def fmt_row(name: str, r: dict[str, float]) -> str:
    base = r["naive_f32"]
    cells = [f"{r[k]:6.0f} ({r[k] / base:5.1f}x)" for k in RATE_COLUMNS]
    return (
        f"| {name} | {base:7.0f} | "
        + " | ".join(cells)
        + f" | {r['iou_drivable_area']:.3f} / {r['iou_crosswalks']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("MAPENC_REAL_DATA", "../shared/data"))
    )
    parser.add_argument("--batch", type=int, default=200, help="poses per rasterize call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (best kept)")
    parser.add_argument("--naive-count", type=int, default=50, help="poses for the slow baseline")
    parser.add_argument(
        "--osm-count", type=int, default=200, help="CommonRoad OSM maps to run (0: none)"
    )
    parser.add_argument("--osm-batch", type=int, default=50, help="poses per OSM map")
    parser.add_argument(
        "--quick", action="store_true", help="skip the big map, OSM maps and DataLoader"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    columns = " | ".join(f"{k.replace('_', ' ')} /s (x naive)" for k in RATE_COLUMNS)
    print(f"| map | naive f32 /s | {columns} | IoU fast vs exact (drivable / crosswalks) |")
    print("|" + "---|" * (len(RATE_COLUMNS) + 3))
    av2_path = sorted(args.data.glob("av2/forecasting/*/log_map_archive_*.json"))[0]
    av2 = load_map(av2_path)
    poses = poses_on_lanes(av2, args.batch)
    small = bench_map(av2, poses, args.repeats, args.naive_count)
    print(fmt_row(f"AV2 forecasting {av2.summary()['extent_m']} m", small), flush=True)
    print(
        f"  set-up: exact {small['setup_exact_s']:.2f} s, fast {small['setup_fast_s']:.2f} s; "
        f"exact vs naive pixels differing: {small['exact_vs_naive_mismatch']:.2e}",
        flush=True,
    )
    if args.quick:
        return

    _, big = biggest(sorted(args.data.glob("av2/sensor_logs/*/map/log_map_archive_*.json")))
    large = bench_map(big, poses_on_lanes(big, args.batch), args.repeats, args.naive_count)
    print(fmt_row(f"AV2 sensor-log city map {big.summary()['extent_m']} m", large), flush=True)
    print(
        f"  set-up: exact {large['setup_exact_s']:.2f} s, fast {large['setup_fast_s']:.2f} s",
        flush=True,
    )

    if args.osm_count:
        paths = sorted(args.data.glob("commonroad_osm_sumo/*.xml.gz"))
        step = max(1, len(paths) // args.osm_count)
        rows, too_big = [], 0
        for p in paths[::step][: args.osm_count]:
            m = load_map(p)
            if not m.lanes:
                continue
            try:
                rows.append(bench_map(m, poses_on_lanes(m, args.osm_batch), 1, 5))
            except ConfigError:  # fast mode's memory guard: map too large for a global raster
                too_big += 1
        keys = ("naive_f32", *RATE_COLUMNS, "iou_drivable_area", "iou_crosswalks")
        median = {k: statistics.median(r[k] for r in rows) for k in keys}
        print(
            fmt_row(f"{len(rows)} CommonRoad OSM maps (median; {too_big} too big for fast)", median)
        )
        print(
            f"  min IoU drivable {min(r['iou_drivable_area'] for r in rows):.3f}; median set-up "
            f"exact {statistics.median(r['setup_exact_s'] for r in rows):.2f} s, "
            f"fast {statistics.median(r['setup_fast_s'] for r in rows):.2f} s",
            flush=True,
        )

    print(
        "\n| DataLoader (AV2 forecasting map, uint8, batches of 50) | 0 workers /s | 2 workers /s |"
    )
    print("|---|---|---|")
    many = poses_on_lanes(av2, 2000, seed=2)
    for mode in ("exact", "fast"):
        r = Rasterizer(av2, SPEC, mode=mode)
        rates = [loader_rate(r, many, workers, 50) for workers in (0, 2)]
        print(f"| {mode} | {rates[0]:.0f} | {rates[1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
