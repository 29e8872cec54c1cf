"""The exact mode's numpy scan-line primitives against rasterio on random shapes, and the
shared segment arithmetic's CPU helpers against the torch operations they stand for."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import torch
from affine import Affine
from rasterio.features import rasterize

from mapenc.raster.exact import LayerPairs, Segments, burn_lines, fill_polygons, paint_polygons
from mapenc.raster.segments import clip_to_raster, columns_at

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
    pairs = LayerPairs(segments, np.zeros(len(geoms), dtype=np.intp), np.arange(len(geoms)))
    filled = fill_polygons([pairs], identity, SIZE)[0, 0]
    expected = reference(polys, all_touched=False) > 0
    assert expected.sum() > 50
    assert (filled != expected).mean() <= 2e-3
    painted = np.zeros((1, *SIZE), dtype=np.int32)
    paint_polygons(painted, np.arange(1, len(geoms) + 1, dtype=np.int32), pairs, identity)
    expected_values = reference(polys, all_touched=False, values=list(range(1, len(geoms) + 1)))
    assert (painted[0] != expected_values).mean() <= 2e-3


@pytest.mark.parametrize("seed", range(5))
def test_lines_match_rasterio_all_touched(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = [shapely.LineString(rng.uniform([-10, -10], [66, 50], (6, 2))) for _ in range(4)]
    out = np.zeros((1, 1, *SIZE), dtype=np.uint8)
    geoms = np.array(lines, dtype=object)
    pairs = LayerPairs(Segments.of(geoms), np.zeros(4, dtype=np.intp), np.arange(4))
    burn_lines(out, 1, np.eye(3)[None], [pairs], [0])
    expected = reference(lines, all_touched=True) > 0
    assert expected.sum() > 50
    assert (out[0, 0].astype(bool) != expected).mean() <= 2e-3


def _random_layer(rng: np.random.Generator, polygons: bool, agents: int) -> LayerPairs:
    """Random polygons or lines (pixel units) and random (agent, geometry) pairs of them."""
    if polygons:
        geoms = [star(rng, rng.uniform([0, 0], [56, 40])) for _ in range(3)]
    else:
        geoms = [shapely.LineString(rng.uniform([-10, -10], [66, 50], (6, 2))) for _ in range(4)]
    pairs = [(a, g) for a in range(agents) for g in range(len(geoms)) if rng.random() < 0.7]
    agent_idx, geom_idx = np.array(pairs, dtype=np.intp).T
    return LayerPairs(Segments.of(np.array(geoms, dtype=object)), agent_idx, geom_idx)


@pytest.mark.parametrize("seed", range(3))
def test_layers_drawn_in_one_pass_equal_layers_drawn_alone(seed: int) -> None:
    rng = np.random.default_rng(seed)
    agents = 3
    # Each agent's raster sees the shapes shifted and turned differently.
    turns = rng.uniform(-0.4, 0.4, agents)
    shifts = rng.uniform(-5, 5, (agents, 2))
    raster_from_city = np.stack(
        [
            [[np.cos(t), -np.sin(t), dx], [np.sin(t), np.cos(t), dy], [0.0, 0.0, 1.0]]
            for t, (dx, dy) in zip(turns, shifts, strict=True)
        ]
    )
    fills = [_random_layer(rng, True, agents) for _ in range(2)]
    together = fill_polygons(fills, raster_from_city, SIZE)
    assert together.shape == (2, agents, *SIZE)
    for layer, drawn in zip(fills, together, strict=True):
        alone = fill_polygons([layer], raster_from_city, SIZE)[0]
        assert alone.any(axis=(1, 2)).all()
        np.testing.assert_array_equal(drawn, alone)
    lines = [_random_layer(rng, False, agents) for _ in range(2)]
    out = np.zeros((agents, 4, *SIZE), dtype=np.uint8)
    burn_lines(out, 255, raster_from_city, lines, [3, 1])
    for layer, channel in zip(lines, [3, 1], strict=True):
        alone = np.zeros((agents, 1, *SIZE), dtype=np.uint8)
        burn_lines(alone, 255, raster_from_city, [layer], [0])
        assert alone.any(axis=(1, 2, 3)).all()
        np.testing.assert_array_equal(out[:, channel], alone[:, 0])
    assert not out[:, [0, 2]].any()


def test_columns_at_gathers_like_index_select() -> None:
    table = torch.arange(24.0, dtype=torch.float64).reshape(4, 6)
    index = torch.tensor([5, 0, 0, 3, 2])
    assert torch.equal(columns_at(table, index), table.index_select(1, index))
    assert columns_at(table, index[:0]).shape == (4, 0)


def liang_barsky(start: tuple[float, float], end: tuple[float, float], w: int, h: int):
    """Textbook Liang-Barsky for one segment against [0, w] x [0, h]: (t0, t1) or None."""
    du, dv = end[0] - start[0], end[1] - start[1]
    t0, t1 = 0.0, 1.0
    for p, q in ((-du, start[0]), (du, w - start[0]), (-dv, start[1]), (dv, h - start[1])):
        if p == 0:
            if q < 0:
                return None
        elif p < 0:
            t0 = max(t0, q / p)
        else:
            t1 = min(t1, q / p)
    return (t0, t1) if t0 <= t1 else None


def test_clip_to_raster_matches_textbook_liang_barsky() -> None:
    rng = np.random.default_rng(7)
    w, h = SIZE[1], SIZE[0]
    random = rng.uniform(-20, 80, (400, 2, 2))
    # Axis-parallel segments inside, outside and lying on the box's edges, and ends on them.
    edges = np.array(
        [
            [[0, 5], [0, 30]],
            [[w, -3], [w, 50]],
            [[-1, 5], [-1, 30]],
            [[w + 1, 5], [w + 1, 30]],
            [[3, 0], [50, 0]],
            [[3, h], [-9, h]],
            [[3, h + 2], [9, h + 2]],
            [[10, 10], [10, 10]],
            [[0, 0], [w, h]],
            [[-5, 7], [0, 7]],
            [[w / 2, -8], [w / 2, h + 8]],
        ],
        dtype=np.float64,
    )
    segments = np.concatenate([random, np.round(random[:100]), edges])  # (S, end, axis)
    points = torch.from_numpy(segments.transpose(2, 1, 0).copy())  # (2, 2, S) [axis][end][s]
    clipped, keep = clip_to_raster(points, w, h)
    for s, (start, end) in enumerate(segments):
        expected = liang_barsky(tuple(start), tuple(end), w, h)
        assert bool(keep[s]) == (expected is not None), (s, start, end)
        if expected is not None:
            d = end - start
            for k, t in enumerate(expected):
                np.testing.assert_array_equal(clipped[:, k, s].numpy(), start + t * d)
    assert 0 < int(keep.sum()) < len(segments)
