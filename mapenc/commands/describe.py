"""`mapenc describe NAME [--input-shape C H W] [--latent-dim D] [--pixel-size S] [--json]`.

Builds the encoder ``NAME`` and prints its per-layer table (output shape, elements, parameters,
MACs, receptive field) with the bottleneck and the compression ratio, or the same as JSON.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import torch

from mapenc.commands.flags import ConfigFlags, Flag
from mapenc.encoders import (
    VectorMapEncoder,
    build_encoder,
    describe,
    encoder_input_kind,
    list_encoders,
)
from mapenc.encoders.registry import encoder_settings
from mapenc.errors import ConfigError

HELP = "per-layer shape trace of an encoder: elements, params, MACs, receptive field, compression"


@dataclass(frozen=True)
class DescribeConfig:
    """Settings of `mapenc describe`.

    Attributes:
        encoder: a registered encoder name.
        input_shape: ``(C, H, W)``, for encoders that take any input; None keeps the default
            (for vector encoders: polylines, points per polyline, history points).
        latent_dim: output length, or None for the encoder's default.
        pixel_size_m: metres per pixel, to give receptive fields in metres.
        as_json: print JSON instead of the table.
    """

    encoder: str
    input_shape: tuple[int, int, int] | None = None
    latent_dim: int | None = None
    pixel_size_m: float | None = None
    as_json: bool = False


FLAGS = ConfigFlags(
    DescribeConfig,
    overrides=(
        Flag("encoder", positional=True, help=f"one of: {', '.join(list_encoders())}"),
        Flag("input_shape", metavar=("C", "H", "W")),
        Flag("pixel_size_m", ("--pixel-size",)),
        Flag("as_json", ("--json",)),
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per DescribeConfig field."""
    FLAGS.add_to(parser)


def encoder_overrides(config: DescribeConfig) -> dict[str, Any]:
    """Keyword settings for ``build_encoder``; ConfigError if the encoder's input is fixed."""
    overrides: dict[str, Any] = {}
    if config.latent_dim is not None:
        overrides["latent_dim"] = config.latent_dim
    if config.input_shape is not None:
        settings = encoder_settings(config.encoder)
        if "in_channels" not in settings or "input_size" not in settings:
            raise ConfigError(
                f"encoder {config.encoder!r} has a fixed input shape; drop --input-shape"
            )
        channels, height, width = config.input_shape
        overrides.update(in_channels=channels, input_size=(height, width))
    return overrides


def run(args: argparse.Namespace) -> int:
    """Print the description of the encoder. Returns 0."""
    config = FLAGS.build(args)
    if encoder_input_kind(config.encoder) == "vector":
        print(describe_vector(config))
        return 0
    # Built on the meta device: the trace needs shapes only, so no weight or activation is
    # allocated, whatever the input size (a 200000 x 200000 input would ask for 160 GB).
    with torch.device("meta"):
        encoder = build_encoder(config.encoder, **encoder_overrides(config))
    description = describe(encoder, encoder.input_shape, pixel_size_m=config.pixel_size_m)
    print(description.to_json() if config.as_json else description)
    return 0


def describe_vector(config: DescribeConfig) -> str:
    """The description of a vector encoder for ``input_shape`` read as (polylines, points,
    history points), by default the trajectory study's (``PolylineSpec()`` and NGSIM's past)."""
    from mapenc.data.trajectory import NGSIM_TASK
    from mapenc.maps.polylines import PolylineSpec

    overrides = {} if config.latent_dim is None else {"latent_dim": config.latent_dim}
    encoder = build_encoder(config.encoder, **overrides)
    assert isinstance(encoder, VectorMapEncoder)
    spec = PolylineSpec()
    polylines, points, history = config.input_shape or (
        spec.max_polylines,
        spec.points,
        NGSIM_TASK.history_steps + 1,
    )
    description = encoder.describe(polylines, points, history)
    return description.to_json() if config.as_json else str(description)
