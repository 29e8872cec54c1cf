"""Pictures of rasters: each layer is painted in its own colour (``Layer.colour``), in spec order."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mapenc.errors import ConfigError
from mapenc.raster.layers import LAYERS
from mapenc.raster.spec import DEFAULT_LAYERS


def layer_intensity(raster: NDArray[Any], name: str) -> NDArray[np.float64]:
    """(..., H, W) intensity in [0, 1] of one channel (uint8 or float)."""
    layer = LAYERS[name]
    return layer.intensity(layer.codec.decode(raster))


def to_rgb(
    raster: NDArray[Any], layers: tuple[str, ...] | list[str] = DEFAULT_LAYERS
) -> NDArray[np.uint8]:
    """(C, H, W) or (N, C, H, W) raster -> (H, W, 3) or (N, H, W, 3) uint8 picture.

    ``layers`` names the channels (default: the default RasterSpec's layers; see also
    ``Rasterizer.to_rgb``). Layers are painted over a black background in the given order, each
    blended in with its colour in proportion to its intensity (times its ``faint`` opacity).
    """
    if raster.ndim not in (3, 4) or raster.shape[-3] != len(layers):
        raise ConfigError(
            f"to_rgb needs (C, H, W) or (N, C, H, W) with C={len(layers)}, got {raster.shape}"
        )
    rgb = np.zeros((*raster.shape[:-3], *raster.shape[-2:], 3))
    for c, name in enumerate(layers):
        alpha = LAYERS[name].faint * layer_intensity(raster[..., c, :, :], name)[..., None]
        rgb = (1.0 - alpha) * rgb + alpha * np.asarray(LAYERS[name].colour)
    return np.rint(rgb * 255.0).astype(np.uint8)
