"""Pictures of rasters: each layer gets a colour, layers are painted in spec order."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mapenc.errors import ConfigError
from mapenc.raster.layers import LAYERS
from mapenc.raster.spec import DEFAULT_LAYERS

# RGB colour (0..1) of each layer; heading layers are shown by their magnitude.
LAYER_COLOURS: dict[str, tuple[float, float, float]] = {
    "drivable_area": (0.35, 0.35, 0.35),
    "crosswalks": (0.95, 0.85, 0.2),
    "lane_boundaries": (0.95, 0.95, 0.95),
    "lane_boundaries_solid": (1.0, 1.0, 1.0),
    "lane_boundaries_dashed": (0.7, 0.7, 0.95),
    "centerlines": (0.3, 0.6, 1.0),
    "lane_heading_sin": (0.6, 0.2, 0.6),
    "lane_heading_cos": (0.2, 0.6, 0.3),
    "distance_to_centerline": (0.15, 0.3, 0.45),
    "history": (0.9, 0.5, 0.3),
    "agents": (0.2, 0.85, 0.3),
    "ego": (1.0, 0.25, 0.2),
}


# Layers that cover large areas are blended in faintly so the composite stays readable.
FAINT_LAYERS: dict[str, float] = {
    "lane_heading_sin": 0.25,
    "lane_heading_cos": 0.25,
    "distance_to_centerline": 0.3,
}


def layer_intensity(raster: NDArray[Any], name: str) -> NDArray[np.float64]:
    """(..., H, W) intensity in [0, 1] of one decoded channel (uint8 or float)."""
    kind = LAYERS[name].kind
    x = raster.astype(np.float64)
    if raster.dtype == np.uint8:
        x = (x - 128.0) / 127.0 if kind == "heading" else x / 255.0
    if kind == "heading":
        return np.abs(x) * (x != 0)
    if kind == "distance":
        return 1.0 - x
    return np.clip(x, 0.0, 1.0)


def to_rgb(
    raster: NDArray[Any], layers: tuple[str, ...] | list[str] = DEFAULT_LAYERS
) -> NDArray[np.uint8]:
    """(C, H, W) or (N, C, H, W) raster -> (H, W, 3) or (N, H, W, 3) uint8 picture.

    ``layers`` names the channels (default: the default RasterSpec's layers; see also
    ``Rasterizer.to_rgb``). Layers are painted over a black background in the given order, each
    blended in with its colour in proportion to its intensity.
    """
    if raster.ndim not in (3, 4) or raster.shape[-3] != len(layers):
        raise ConfigError(
            f"to_rgb needs (C, H, W) or (N, C, H, W) with C={len(layers)}, got {raster.shape}"
        )
    rgb = np.zeros((*raster.shape[:-3], *raster.shape[-2:], 3))
    for c, name in enumerate(layers):
        weight = FAINT_LAYERS.get(name, 1.0)
        alpha = weight * layer_intensity(raster[..., c, :, :], name)[..., None]
        rgb = (1.0 - alpha) * rgb + alpha * np.asarray(LAYER_COLOURS[name])
    return np.rint(rgb * 255.0).astype(np.uint8)
