"""North-up fine grids: the global rasters and tiles the fast and torch modes pre-draw the map into.

A ``NorthUpGrid`` is a city-aligned pixel grid: cell ``(r, c)`` covers city
``x in [x0 + c * cell_m, x0 + (c + 1) * cell_m)``, ``y in (y1 - (r + 1) * cell_m, y1 - r * cell_m]``
(row 0 at the top, north up). It is drawn with the same machinery as agent rasters, through its
``raster_from_city`` matrix (the agent grid's counterpart is ``RasterSpec.raster_from_city``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class NorthUpGrid:
    """A north-up grid of square cells in the city frame.

    Attributes:
        x0, y1: city-frame x of its left edge and y of its top edge (metres).
        cell_m: cell edge (metres).
        shape: (rows, cols).
    """

    x0: float
    y1: float
    cell_m: float
    shape: tuple[int, int]

    @property
    def num_cells(self) -> int:
        return self.shape[0] * self.shape[1]

    def raster_from_city(self) -> NDArray[np.float64]:
        """(1, 3, 3) city metres -> grid pixel coordinates (u: columns, v: rows)."""
        c = self.cell_m
        return np.array([[[1 / c, 0.0, -self.x0 / c], [0.0, -1 / c, self.y1 / c], [0, 0, 1.0]]])

    def box_city(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) covered, city frame (metres)."""
        rows, cols = self.shape
        return (self.x0, self.y1 - rows * self.cell_m, self.x0 + cols * self.cell_m, self.y1)

    def padded(self, cells: int) -> NorthUpGrid:
        """The same grid grown by ``cells`` on every side."""
        pad = cells * self.cell_m
        rows, cols = self.shape
        return NorthUpGrid(
            self.x0 - pad, self.y1 + pad, self.cell_m, (rows + 2 * cells, cols + 2 * cells)
        )

    def sub(self, row: int, col: int, shape: tuple[int, int]) -> NorthUpGrid:
        """The part of this grid starting at cell ``(row, col)`` with ``shape`` (may overhang)."""
        c = self.cell_m
        return NorthUpGrid(self.x0 + col * c, self.y1 - row * c, c, shape)
