"""Agent-centred rasters of vector maps: RasterSpec (pixel maths), Rasterizer, the layer registry."""

from mapenc.raster.fast import FastSettings
from mapenc.raster.layers import LAYERS, Layer, list_layers
from mapenc.raster.rasterizer import MODES, Rasterizer
from mapenc.raster.rgb import to_rgb
from mapenc.raster.spec import RasterSpec, points_to_pixels

__all__ = [
    "LAYERS",
    "MODES",
    "FastSettings",
    "Layer",
    "RasterSpec",
    "Rasterizer",
    "list_layers",
    "points_to_pixels",
    "to_rgb",
]
