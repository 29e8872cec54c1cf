"""The torch raster mode on a GPU, checked in under 3 minutes: what only a GPU shows.

On the AV2 forecasting map (and an NGSIM map for agreement), 4 x 224 x 224 uint8 rasters
(drivable_area, lane_boundaries, centerlines, crosswalks; 0.5 m/px), poses on lane centerlines:

1. agreement: CUDA rasters against the CPU torch mode and against exact. Tolerance: a pixel may
   differ only on an edge of the reference (within one pixel, 8-neighbourhood, of a pixel where
   the reference has the other value: float32 coordinates and CUDA's sin/cos/FMA rounding move
   pixel centres lying within ~1e-5 px of an edge), and at most 1e-3 of all pixels may differ;
   the smallest per-agent IoU with exact is printed too;
2. waits for the device in one ``rasterize_tensor`` call: warnings of
   ``torch.cuda.set_sync_debug_mode("warn")`` and the ``OpCount`` tally (expected: 3 per chunk);
3. the top CUDA kernels of one call of 4,096 poses (``torch.profiler``), and kernels per call;
4. rasters/s (best of 3, after a warm-up) and peak GPU memory at batches of 4,096 and 16,384,
   against the goal of 1,000,000 rasters/s.

Exits with status 1 when the agreement fails. ``--out FILE`` also writes the figures as JSON.

    python benchmarks/device_check.py --data /work/shared/data [--out device_check.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from raster_modes import poses_on_lanes, rate

from mapenc.maps import load_map
from mapenc.raster import Rasterizer, RasterSpec
from mapenc.raster.agreement import off_edge_differences
from mapenc.raster.opcount import OpCount
from mapenc.testing import mode_agreement

SPEC = RasterSpec()
MAPS = ("av2/forecasting/*/log_map_archive_*.json", "commonroad_ngsim/US101/*.xml.gz")
MAX_DIFFERING = 1e-3  # share of pixels that may differ (on edges only)
GOAL_PER_S = 1_000_000


def agreement(data: Path, poses_per_map: int) -> tuple[dict[str, Any], bool]:
    """CUDA vs the CPU torch mode and vs exact, per map."""
    result: dict[str, Any] = {}
    ok = True
    for pattern in MAPS:
        path = sorted(data.glob(pattern))[0]
        m = load_map(path)
        poses = poses_on_lanes(m, poses_per_map, seed=7)
        cuda = Rasterizer(m, SPEC, mode="torch", device="cuda").rasterize(poses, np.uint8)
        cpu = Rasterizer(m, SPEC, mode="torch", device="cpu").rasterize(poses, np.uint8)
        exact = Rasterizer(m, SPEC).rasterize(poses, np.uint8)
        row: dict[str, Any] = {}
        for name, reference in (("cpu torch", cpu), ("exact", exact)):
            off_edge = off_edge_differences(cuda, reference)
            share = float((cuda != reference).mean())
            row[name] = {"off_edge_pixels": off_edge, "differing_share": share}
            ok &= off_edge == 0 and share <= MAX_DIFFERING
        row["min_iou_exact"] = min(mode_agreement(exact, cuda, SPEC.layers).values())
        result[path.name] = row
        print(f"agreement {path.name}: {json.dumps(row)}", flush=True)
    return result, ok


def waits(r: Rasterizer, poses: torch.Tensor) -> dict[str, Any]:
    """Waits for the device in one call, seen by CUDA's sync debug mode and by ``OpCount``."""
    r.rasterize_tensor(poses, torch.uint8)  # warm-up
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            r.rasterize_tensor(poses, torch.uint8)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    with OpCount() as count:
        r.rasterize_tensor(poses, torch.uint8)
    result = {
        "sync_debug_warnings": len(syncs),
        "sync_debug_first": syncs[:5],
        "opcount_waits": count.waits,
        "opcount_wait_ops": dict(count.wait_ops),
        "opcount_kernels": count.kernels,
    }
    print(f"waits: {json.dumps(result)}", flush=True)
    return result


def top_kernels(r: Rasterizer, poses: torch.Tensor, rows: int = 15) -> dict[str, Any]:
    """The CUDA kernels of one call, by total device time."""
    from torch.profiler import ProfilerActivity, profile

    r.rasterize_tensor(poses, torch.uint8)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        r.rasterize_tensor(poses, torch.uint8)
        torch.cuda.synchronize()
    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    table = prof.key_averages().table(sort_by="device_time_total", row_limit=rows)
    print(table, flush=True)
    return {"cuda_kernels_per_call": len(events), "table": table}


def speed(r: Rasterizer, m: Any, batches: list[int]) -> dict[int, dict[str, float]]:
    """Rasters/s and peak GPU memory per batch size."""
    result = {}
    for batch in batches:
        poses = torch.from_numpy(poses_on_lanes(m, batch, seed=1)).cuda()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        per_s = rate(partial(r.rasterize_tensor, poses, torch.uint8), batch, 3, sync=True)
        peak = torch.cuda.max_memory_allocated() / 2**30
        result[batch] = {"rasters_per_s": per_s, "peak_gib": peak, "x_goal": per_s / GOAL_PER_S}
        print(
            f"speed batch {batch:,}: {per_s:,.0f} rasters/s ({per_s / GOAL_PER_S:.2f}x the "
            f"goal), peak {peak:.2f} GiB",
            flush=True,
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("MAPENC_REAL_DATA", "../shared/data"))
    )
    parser.add_argument("--agreement-poses", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("device_check: torch sees no CUDA device", file=sys.stderr)
        return 2
    start = time.perf_counter()
    print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}", flush=True)
    report: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    report["agreement"], ok = agreement(args.data, args.agreement_poses)
    m = load_map(sorted(args.data.glob(MAPS[0]))[0])
    r = Rasterizer(m, SPEC, mode="torch", device="cuda")
    small = torch.from_numpy(poses_on_lanes(m, 1024, seed=2)).cuda()
    report["waits"] = waits(r, small)
    report["kernels"] = top_kernels(r, torch.from_numpy(poses_on_lanes(m, 4096, seed=3)).cuda())
    report["speed"] = speed(r, m, args.batches)
    report["agreement_ok"] = ok
    report["seconds"] = time.perf_counter() - start
    print(f"agreement {'ok' if ok else 'FAILED'}; {report['seconds']:.0f} s", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
