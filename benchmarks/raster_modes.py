"""Rasterizer modes side by side: exact, fast and torch on the CPU, torch on CUDA when present.

One run, 4 x 224 x 224 uint8 rasters (drivable_area, lane_boundaries, centerlines, crosswalks;
0.5 m/px), poses on random lane centerline points with random headings; batch 256 on the CPU and
4,096 on a GPU; the AV2 forecasting map and the largest AV2 sensor-log city map. Reported:
rasters/s (best of ``--repeats`` calls, set-up and first-call tile drawing excluded), the ratio
to the fast mode measured in the same run, the torch mode's agreement with exact (smallest
per-agent IoU over the four layers, agents with > 200 lit pixels) and peak GPU memory.
"torch cpu sample" is the torch mode with ``TorchSettings(binary="sample")``: binary layers
sampled from the tiles like the fast mode, instead of drawn from the vectors. Then the agreement
table: the torch mode against exact with the heading layers too, on the AV2 map and NGSIM.
Then the auto mode's crossover per map: the fast mode's set-up (drawing the map once) over what
it saves per pose against exact, i.e. the poses per call from which fast is the cheaper mode
(``mapenc.raster.rasterizer.AUTO_FAST_POSES`` is the median of the maps' figures).

``--cuda-only`` skips the CPU modes (and the tables that need them): the torch mode on CUDA at
batches of ``--batch-gpu`` (default 4,096 and 16,384), with peak GPU memory.

    python benchmarks/raster_modes.py --data /work/shared/data [--threads 1] [--repeats 3]
        [--parts speed agreement crossover] [--cuda-only]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mapenc.maps import VectorMap, load_map
from mapenc.raster import Rasterizer, RasterSpec, TorchSettings
from mapenc.testing import mode_agreement

PARTS = ("speed", "agreement", "crossover")
# Maps whose poses share one map (INTERACTION, NGSIM) beside a small AV2 map, for the crossover.
CROSSOVER_MAPS = (
    "av2/forecasting/*/log_map_archive_*.json",
    "interaction/maps/DR_USA_Intersection_EP0.osm",
    "commonroad_ngsim/Lankershim/*.xml.gz",
    "commonroad_ngsim/Peachtree/*.xml.gz",
    "commonroad_ngsim/US101/*.xml.gz",
)
SPEC = RasterSpec()  # 224 x 224 at 0.5 m/px, the four layers above
AGREEMENT_SPEC = RasterSpec(layers=(*SPEC.layers, "lane_heading_sin", "lane_heading_cos"))
AGREEMENT_MAPS = (
    "av2/forecasting/*/log_map_archive_*.json",
    "commonroad_ngsim/Lankershim/*.xml.gz",
    "commonroad_ngsim/Peachtree/*.xml.gz",
    "commonroad_ngsim/US101/*.xml.gz",
)


def poses_on_lanes(m: VectorMap, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) poses at random centerline points of random lanes, random headings."""
    rng = np.random.default_rng(seed)
    lanes = [m.lanes[k] for k in rng.integers(0, len(m.lanes), count)]
    xy = np.stack([lane.centerline[rng.integers(0, len(lane.centerline))] for lane in lanes])
    return np.concatenate([xy, rng.uniform(-np.pi, np.pi, (count, 1))], axis=1)


def rate(fn: Callable[[], Any], count: int, repeats: int, sync: bool = False) -> float:
    """Best rasters/s over ``repeats`` calls of ``fn`` (each producing ``count`` rasters), after
    one warm-up call (tiles drawn, caches filled)."""
    fn()
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return count / min(times)


def interleaved_rates(
    fns: dict[str, Callable[[], Any]], count: int, repeats: int
) -> dict[str, float]:
    """Best rasters/s of each of ``fns`` (each producing ``count`` rasters) over ``repeats``
    rounds that call every one in turn, after one warm-up call each: on a machine shared with
    other jobs, the modes then see the same load and their ratios hold."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: count / seconds for name, seconds in best.items()}


def bench_cuda(m: VectorMap, batch: int, repeats: int) -> dict[str, float]:
    """The torch mode on CUDA: rasters/s of ``batch`` poses and the peak GPU memory."""
    gpu = Rasterizer(m, SPEC, mode="torch", device="cuda")
    big = torch.from_numpy(poses_on_lanes(m, batch, seed=1)).cuda()
    torch.cuda.reset_peak_memory_stats()
    return {
        "torch cuda": rate(lambda: gpu.rasterize_tensor(big, torch.uint8), batch, repeats, True),
        "gpu memory GiB": torch.cuda.max_memory_allocated() / 2**30,
    }


def bench_map(
    m: VectorMap, batch_cpu: int, batch_gpu: int, repeats: int, cuda_only: bool
) -> dict[str, float]:
    """Rates of each mode on one map, the torch mode's agreement with exact, GPU memory."""
    if cuda_only:
        return bench_cuda(m, batch_gpu, repeats)
    poses = poses_on_lanes(m, batch_cpu)
    exact = Rasterizer(m, SPEC)
    fast = Rasterizer(m, SPEC, mode="fast")
    on_cpu = Rasterizer(m, SPEC, mode="torch", device="cpu")
    sampled = Rasterizer(
        m, SPEC, mode="torch", device="cpu", torch_settings=TorchSettings(binary="sample")
    )
    poses_t = torch.from_numpy(poses)
    result = interleaved_rates(
        {
            "exact": lambda: exact.rasterize(poses, np.uint8),
            "fast": lambda: fast.rasterize(poses, np.uint8),
            "torch cpu": lambda: on_cpu.rasterize_tensor(poses_t, torch.uint8),
            "torch cpu sample": lambda: sampled.rasterize_tensor(poses_t, torch.uint8),
        },
        batch_cpu,
        repeats,
    )
    reference = exact.rasterize(poses, np.uint8)
    for name, r in (("torch", on_cpu), ("sample", sampled)):
        agreement = mode_agreement(reference, r.rasterize(poses, np.uint8), SPEC.layers)
        result[f"min IoU {name}"] = min(agreement.values())
    if torch.cuda.is_available():
        result.update(bench_cuda(m, batch_gpu, repeats))
    return result


def biggest(paths: list[Path]) -> VectorMap:
    maps = [load_map(p) for p in paths]
    return max(maps, key=lambda m: (m.bounds[2] - m.bounds[0]) * (m.bounds[3] - m.bounds[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("MAPENC_REAL_DATA", "../shared/data"))
    )
    parser.add_argument("--batch-cpu", type=int, default=256)
    parser.add_argument("--batch-gpu", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (best kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--agreement-agents", type=int, default=48, help="poses per map")
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="tables to print"
    )
    parser.add_argument("--cuda-only", action="store_true", help="only the torch mode on CUDA")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"CPU threads: {args.threads}; GPU: {device}; torch {torch.__version__}")
    if args.cuda_only and not torch.cuda.is_available():
        raise SystemExit("--cuda-only: torch sees no CUDA device")
    if "speed" in args.parts:
        print_speed(args)
    if "agreement" in args.parts and not args.cuda_only:
        print_agreement(args.data, args.agreement_agents)
    if "crossover" in args.parts and not args.cuda_only:
        print_crossover(args.data, args.batch_cpu, args.repeats)


def print_speed(args: argparse.Namespace) -> None:
    """Rasters/s of each mode on the AV2 forecasting map and the largest AV2 city map."""
    maps = {
        "AV2 forecasting": load_map(
            sorted(args.data.glob("av2/forecasting/*/log_map_archive_*.json"))[0]
        ),
        "AV2 largest city map": biggest(
            sorted(args.data.glob("av2/sensor_logs/*/map/log_map_archive_*.json"))
        ),
    }
    columns = ["exact", "fast", "torch cpu", "torch cpu sample", "torch cuda"]
    if args.cuda_only:
        columns = ["torch cuda"]
    print(
        "| map (extent m) | GPU batch | "
        + " | ".join(f"{c} /s (x fast)" for c in columns)
        + " | min IoU torch / sample vs exact | GPU memory |"
    )
    print("|" + "---|" * (len(columns) + 4))
    for name, m in maps.items():
        for batch_gpu in args.batch_gpu:
            r = bench_map(m, args.batch_cpu, batch_gpu, args.repeats, args.cuda_only)
            fast = r.get("fast")
            cells = [
                (f"{r[c]:,.0f}" + (f" ({r[c] / fast:.2f}x)" if fast else ""))
                if c in r
                else "no GPU"
                for c in columns
            ]
            memory = f"{r['gpu memory GiB']:.2f} GiB" if "gpu memory GiB" in r else "-"
            iou = (
                f"{r['min IoU torch']:.3f} / {r['min IoU sample']:.3f}"
                if "min IoU torch" in r
                else "-"
            )
            print(
                f"| {name} ({m.summary()['extent_m']}) | {batch_gpu:,} | "
                + " | ".join(cells)
                + f" | {iou} | {memory} |",
                flush=True,
            )
            if not torch.cuda.is_available():
                break  # the GPU batch changes nothing on the CPU


def seconds_per_pose(r: Rasterizer, poses: np.ndarray, repeats: int) -> float:
    return 1 / rate(lambda: r.rasterize(poses, np.uint8), len(poses), repeats)


def print_crossover(data: Path, batch: int, repeats: int) -> None:
    """Per map: the fast mode's set-up time, exact's and fast's time per pose, and the poses per
    call from which fast is cheaper (set-up / (exact - fast per pose))."""
    print(
        f"\n| auto crossover (one thread, batch {batch}) | fast set-up s | exact ms/pose | "
        "fast ms/pose | poses from which fast pays back |"
    )
    print("|---|---|---|---|---|")
    for pattern in CROSSOVER_MAPS:
        path = sorted(data.glob(pattern))[0]
        m = load_map(path)
        poses = poses_on_lanes(m, batch, seed=3)
        start = time.perf_counter()
        fast = Rasterizer(m, SPEC, mode="fast")
        setup = time.perf_counter() - start
        exact_s = seconds_per_pose(Rasterizer(m, SPEC), poses, repeats)
        fast_s = seconds_per_pose(fast, poses, repeats)
        crossover = setup / (exact_s - fast_s) if exact_s > fast_s else float("inf")
        print(
            f"| {path.name} | {setup:.2f} | {1e3 * exact_s:.3f} | {1e3 * fast_s:.3f} | "
            f"{crossover:,.0f} |",
            flush=True,
        )


def print_agreement(data: Path, count: int) -> None:
    """Per map: the torch mode's smallest per-agent IoU with exact on each binary layer (agents
    with > 200 lit pixels) and the share of centerline pixels with heading within 0.3."""
    names = [n for n in AGREEMENT_SPEC.layers if not n.startswith("lane_heading")]
    print(f"\n| map ({count} agents) | " + " | ".join(names) + " | heading within 0.3 |")
    print("|" + "---|" * (len(names) + 2))
    for pattern in AGREEMENT_MAPS:
        path = sorted(data.glob(pattern))[0]
        m = load_map(path)
        poses = poses_on_lanes(m, count, seed=2)
        exact = Rasterizer(m, AGREEMENT_SPEC).rasterize(poses, np.uint8)
        drawn = Rasterizer(m, AGREEMENT_SPEC, mode="torch").rasterize(poses, np.uint8)
        a = mode_agreement(exact, drawn, AGREEMENT_SPEC.layers)
        cells = [f"{a[f'iou_{n}']:.3f}" for n in names]
        print(f"| {path.name} | " + " | ".join(cells) + f" | {a['heading_within_0.3']:.3f} |")


if __name__ == "__main__":
    main()
