"""The exact mode's numpy scan-line primitives against rasterio on random shapes, and the
shared segment arithmetic's CPU helpers against the torch operations they stand for."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import torch
from affine import Affine
from rasterio.features import rasterize

from mapenc.raster.exact import Segments, burn_lines, fill_polygons, paint_polygons
from mapenc.raster.segments import columns_at

SIZE = (40, 56)


def star(rng: np.random.Generator, centre: np.ndarray, points: int = 9) -> shapely.Polygon:
    """A non-convex star-shaped polygon with a square hole, pixel units."""
    angle = np.sort(rng.uniform(0, 2 * np.pi, points))
    radius = rng.uniform(4, 18, points)
    ring = centre + np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    hole = shapely.box(*(centre - 1.5), *(centre + 1.5))
    return shapely.Polygon(ring).difference(hole)


def reference(geoms: list, all_touched: bool, values: list | None = None) -> np.ndarray:
    shapes = geoms if values is None else list(zip(geoms, values, strict=True))
    return rasterize(
        shapes, out_shape=SIZE, transform=Affine.identity(), all_touched=all_touched, dtype="int32"
    )


@pytest.mark.parametrize("seed", range(5))
def test_fill_and_paint_match_rasterio(seed: int) -> None:
    rng = np.random.default_rng(seed)
    polys = [shapely.make_valid(star(rng, rng.uniform([0, 0], [56, 40]))) for _ in range(3)]
    polys = [p for g in polys for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
    geoms = np.array(polys, dtype=object)
    segments = Segments.of(geoms)
    identity = np.eye(3)[None]
    pairs = np.zeros(len(geoms), dtype=np.intp), np.arange(len(geoms))
    filled = fill_polygons(segments, *pairs, identity, SIZE)[0]
    expected = reference(polys, all_touched=False) > 0
    assert expected.sum() > 50
    assert (filled != expected).mean() <= 2e-3
    painted = np.zeros((1, *SIZE), dtype=np.int32)
    paint_polygons(
        painted, np.arange(1, len(geoms) + 1, dtype=np.int32), segments, *pairs, identity
    )
    expected_values = reference(polys, all_touched=False, values=list(range(1, len(geoms) + 1)))
    assert (painted[0] != expected_values).mean() <= 2e-3


@pytest.mark.parametrize("seed", range(5))
def test_lines_match_rasterio_all_touched(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = [shapely.LineString(rng.uniform([-10, -10], [66, 50], (6, 2))) for _ in range(4)]
    out = np.zeros((1, 1, *SIZE), dtype=np.uint8)
    geoms = np.array(lines, dtype=object)
    burn_lines(
        out, 0, 1, Segments.of(geoms), np.zeros(4, dtype=np.intp), np.arange(4), np.eye(3)[None]
    )
    expected = reference(lines, all_touched=True) > 0
    assert expected.sum() > 50
    assert (out[0, 0].astype(bool) != expected).mean() <= 2e-3


def test_columns_at_gathers_like_index_select() -> None:
    table = torch.arange(24.0, dtype=torch.float64).reshape(4, 6)
    index = torch.tensor([5, 0, 0, 3, 2])
    assert torch.equal(columns_at(table, index), table.index_select(1, index))
    assert columns_at(table, index[:0]).shape == (4, 0)
