"""`mapenc render MAP_OR_SCENARIO (--pose X Y H | --track ID --t T) -o out.png`: a picture of
every layer of one agent-centred raster, plus an RGB composite with the agent's box, its history
(blue) and its future (red); see ``mapenc.experiments.render``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mapenc.experiments.render import RenderConfig, render
from mapenc.raster import list_layers

HELP = "draw each layer of one agent-centred raster and an RGB composite into a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mapenc render`, one per RenderConfig field."""
    parser.add_argument("path", type=Path, help="map or scenario file, or a scene folder")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--pose",
        type=float,
        nargs=3,
        metavar=("X", "Y", "HEADING"),
        help="city frame, metres and rad",
    )
    where.add_argument("--track", help="track id to centre on (scenario only)")
    parser.add_argument(
        "--t",
        type=int,
        help="time step for --track (default: the current step of a Waymo scenario, 49 for AV2)",
    )
    parser.add_argument(
        "--layers", nargs="+", choices=list_layers(), help="layers (default: all that apply)"
    )
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--pixel-size", type=float, default=0.5, help="metres per pixel")
    parser.add_argument(
        "--agent-at", type=float, nargs=2, default=(0.25, 0.5), metavar=("AX", "AY")
    )
    parser.add_argument("--mode", choices=("exact", "fast"), default="exact")
    parser.add_argument("--tracks", type=Path, help="tracks CSV for a GeoJSON map file")
    parser.add_argument("--dt", type=float, help="seconds per step (generic format)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")


def run(args: argparse.Namespace) -> int:
    """Render the PNG; returns 0."""
    config = RenderConfig(
        path=args.path,
        out=args.out,
        pose=tuple(args.pose) if args.pose else None,
        track=args.track,
        t=args.t,
        layers=tuple(args.layers) if args.layers else None,
        size_px=tuple(args.size),
        pixel_size_m=args.pixel_size,
        agent_at=tuple(args.agent_at),
        mode=args.mode,
        tracks=args.tracks,
        dt=args.dt,
    )
    render(config)
    print(f"wrote {config.out}")
    return 0
