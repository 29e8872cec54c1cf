"""`mapenc render MAP_OR_SCENARIO (--pose X Y H | --track ID --t T) -o out.png`: a picture of
every layer of one agent-centred raster, plus an RGB composite with the agent's box, its history
(blue) and its future (red); see ``mapenc.experiments.render``.
"""

from __future__ import annotations

import argparse

from mapenc.commands.flags import ConfigFlags, Flag
from mapenc.errors import printable
from mapenc.experiments.render import RenderConfig, render
from mapenc.maps.geojson import HEADING_UNITS
from mapenc.raster import RASTER_MODES, list_layers
from mapenc.safeio import figure_path

HELP = "draw each layer of one agent-centred raster and an RGB composite into a PNG"


FLAGS = ConfigFlags(
    RenderConfig,
    overrides=(
        Flag("path", positional=True),
        Flag("out", ("-o", "--out")),
        Flag("pose", metavar=("X", "Y", "HEADING"), help="city frame, metres and rad"),
        Flag("track", help="track id to centre on (scenario only)"),
        Flag("layers", choices=list_layers(), metavar="LAYER"),
        Flag("size_px", ("--size",), metavar=("H", "W")),
        Flag("pixel_size_m", ("--pixel-size",)),
        Flag("agent_at", metavar=("AX", "AY")),
        Flag("mode", choices=RASTER_MODES),
        Flag("heading_units", choices=HEADING_UNITS),
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per RenderConfig field (``--pose`` or ``--track``, one of them)."""
    FLAGS.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Render the PNG; returns 0."""
    config = FLAGS.build(args)
    render(config)
    print(f"wrote {printable(str(figure_path(config.out)))}")
    return 0
