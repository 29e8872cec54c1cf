"""Agent-centred rasters of vector maps: RasterSpec (pixel maths), Rasterizer, the layer registry."""

from mapenc.raster.fast import FastSettings
from mapenc.raster.layers import LAYERS, Layer, list_layers
from mapenc.raster.rasterizer import MODES, RASTER_MODES, Rasterizer
from mapenc.raster.rgb import to_rgb
from mapenc.raster.spec import RasterSpec, points_to_pixels
from mapenc.raster.tiles import TorchSettings

__all__ = [
    "LAYERS",
    "MODES",
    "RASTER_MODES",
    "FastSettings",
    "Layer",
    "RasterSpec",
    "Rasterizer",
    "TorchSettings",
    "list_layers",
    "points_to_pixels",
    "to_rgb",
]
