"""Agreement of binary rasters up to edge pixels: the tolerance for rasters drawn on a GPU.

On the CPU the torch mode's fill and line layers equal the exact mode's bit for bit. On a GPU
pixel coordinates are float32 (and ``sin``, ``cos`` and fused multiply-adds round differently),
so a pixel whose centre lies within rounding of a polygon edge, or a line that grazes a pixel
corner, may fall the other way. The tolerance: every pixel that differs lies on an edge of the
reference mask, i.e. within one pixel (8-neighbourhood) of a pixel where the reference has the
other value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def _grow(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``mask`` (..., H, W) grown by one pixel in all 8 directions."""
    grown = mask.copy()
    for axis in (-2, -1):
        shifted = grown.copy()
        head = [slice(None)] * mask.ndim
        tail = [slice(None)] * mask.ndim
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        shifted[tuple(head)] |= grown[tuple(tail)]
        shifted[tuple(tail)] |= grown[tuple(head)]
        grown = shifted
    return grown


def off_edge_differences(drawn: NDArray[Any], reference: NDArray[Any]) -> int:
    """Number of pixels where binary rasters (..., H, W) ``drawn`` and ``reference`` differ
    away from the reference's edges (0: they agree within a pixel on edges)."""
    on = np.asarray(reference) > 0
    differs = (np.asarray(drawn) > 0) != on
    edge = _grow(on) & _grow(~on)  # pixels with both values within one pixel
    return int((differs & ~edge).sum())
