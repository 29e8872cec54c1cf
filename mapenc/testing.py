"""Helpers for users' own rasterization tests: tiny maps with known answers, and checks of a
raster against the vector map at pixel centres (usable from pytest: they raise AssertionError).

Example::

    from mapenc.raster import RasterSpec, Rasterizer
    from mapenc.testing import assert_raster_matches_map, straight_road

    road = straight_road()
    spec = RasterSpec(size_px=(64, 64), pixel_size_m=0.5)
    pose = [10.0, 0.0, 0.3]
    raster = Rasterizer(road, spec).rasterize([pose])[0]
    for layer in spec.layers:
        assert_raster_matches_map(raster, road, pose, spec, layer=layer)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import Polygon

from mapenc.errors import ConfigError
from mapenc.geometry import check_poses, transform_points
from mapenc.maps.types import Lane, MarkType, VectorMap
from mapenc.raster.layers import LAYERS, HeadingLayer, map_geometry
from mapenc.raster.spec import RasterSpec


def _lane(lane_id: str, centerline: NDArray[np.float64], width_m: float, **kwargs: Any) -> Lane:
    """A lane of constant width around a polyline centerline (city frame, metres)."""
    tangent = np.gradient(centerline, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    left_normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    half = 0.5 * width_m
    return Lane(
        lane_id,
        centerline,
        centerline + half * left_normal,
        centerline - half * left_normal,
        **kwargs,
    )


def straight_road(
    length_m: float = 200.0, lane_width_m: float = 3.5, offset_m: float = 0.0
) -> VectorMap:
    """Two lanes along +x from x=-length/2 to +length/2: lane "east" (y in [-w, 0], driving +x,
    dashed left mark) and lane "west" (y in [0, w], driving -x); ``offset_m`` shifts both in x."""
    x = np.linspace(-0.5 * length_m, 0.5 * length_m, 21) + offset_m
    east = np.stack([x, np.full_like(x, -0.5 * lane_width_m)], axis=1)
    west = np.stack([x[::-1], np.full_like(x, 0.5 * lane_width_m)], axis=1)
    return VectorMap(
        [
            _lane("east", east, lane_width_m, left_mark=MarkType.DASHED, right_mark=MarkType.SOLID),
            _lane("west", west, lane_width_m, left_mark=MarkType.DASHED, right_mark=MarkType.SOLID),
        ],
        source="mapenc.testing.straight_road",
    )


def l_junction(arm_m: float = 60.0, lane_width_m: float = 3.5, radius_m: float = 10.0) -> VectorMap:
    """One lane from (-arm, 0) east to a quarter-circle turn of ``radius_m`` and north to
    (radius, radius + arm): an L-shaped road in three lanes ("in", "turn", "out")."""
    approach = np.stack([np.linspace(-arm_m, 0.0, 13), np.zeros(13)], axis=1)
    angle = np.linspace(-0.5 * np.pi, 0.0, 17)
    turn = np.stack([radius_m * np.cos(angle), radius_m + radius_m * np.sin(angle)], axis=1)
    exit_y = np.linspace(radius_m, radius_m + arm_m, 13)
    leave = np.stack([np.full(13, radius_m), exit_y], axis=1)
    return VectorMap(
        [
            _lane("in", approach, lane_width_m, successors=("turn",)),
            _lane("turn", turn, lane_width_m, predecessors=("in",), successors=("out",)),
            _lane("out", leave, lane_width_m, predecessors=("turn",)),
        ],
        source="mapenc.testing.l_junction",
    )


def crosswalk_square(size_m: float = 8.0, lane_width_m: float = 3.5) -> VectorMap:
    """A straight road (``straight_road``) with one square crosswalk of side ``size_m`` centred
    on the origin."""
    road = straight_road(lane_width_m=lane_width_m)
    half = 0.5 * size_m
    road.crosswalks.append(Polygon([(-half, -half), (half, -half), (half, half), (-half, half)]))
    road.source = "mapenc.testing.crosswalk_square"
    return road


def pixel_centers_city(spec: RasterSpec, pose: ArrayLike) -> NDArray[np.float64]:
    """(H, W, 2) city-frame coordinates of every pixel centre of the raster around ``pose``."""
    return transform_points(check_poses(pose)[:1], spec.pixel_centers_agent()[None])[0]


def expected_layer(
    vector_map: VectorMap, pose: ArrayLike, spec: RasterSpec, layer: str
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The value a layer should hold at each pixel centre, and where it is certain.

    Returns (values (H, W) float in the layer's float scale, certain (H, W) bool). Pixels whose
    centre lies within a pixel's half-diagonal of a polygon edge or of a line's "touch" band, and
    heading pixels near a lane edge or where lanes overlap, are uncertain.
    """
    kind = LAYERS[layer].kind
    centres = pixel_centers_city(spec, pose)
    xs, ys = centres[..., 0], centres[..., 1]
    s = spec.pixel_size_m
    half_diag = s * np.sqrt(0.5) * (1 + 1e-6)  # a touch at a pixel corner is uncertain
    if kind == "fill":
        geoms = map_geometry(vector_map, layer)
        area = shapely.union_all(geoms) if geoms else Polygon()
        inside = (
            shapely.contains_xy(area, xs, ys) if not area.is_empty else np.zeros(xs.shape, bool)
        )
        edge_dist = _distance(area.boundary, xs, ys)
        return inside.astype(np.float64), edge_dist > half_diag
    if kind == "line":
        geoms = map_geometry(vector_map, layer)
        dist = _distance(shapely.union_all(geoms) if geoms else Polygon(), xs, ys)
        # A line closer than half a pixel to the centre must cross the pixel; one farther than
        # the half-diagonal cannot touch it.
        return (dist <= 0.5 * s).astype(np.float64), (dist <= 0.5 * s - 1e-9) | (dist > half_diag)
    if kind == "distance":
        centerlines = shapely.union_all(map_geometry(vector_map, "centerlines"))
        dist = np.minimum(_distance(centerlines, xs, ys), spec.distance_clip_m)
        return dist / spec.distance_clip_m, np.ones(xs.shape, dtype=bool)
    if kind == "heading":
        return _expected_heading(vector_map, pose, spec, layer, xs, ys)
    raise ConfigError(f"layer {layer} is drawn from a scenario; expected_layer covers map layers")


def _distance(geom: Any, xs: NDArray[np.float64], ys: NDArray[np.float64]) -> NDArray[np.float64]:
    if geom.is_empty:
        return np.full(xs.shape, np.inf)
    return np.asarray(shapely.distance(geom, shapely.points(xs, ys)))


def _expected_heading(
    vector_map: VectorMap,
    pose: ArrayLike,
    spec: RasterSpec,
    layer: str,
    xs: NDArray[np.float64],
    ys: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Direction of the lane under each pixel centre (its centerline's tangent at the nearest
    point), relative to the agent; certain only inside exactly one lane, away from its edges."""
    heading = check_poses(pose)[0, 2]
    values = np.zeros(xs.shape)
    covering = np.zeros(xs.shape, dtype=np.int64)
    near_edge = np.zeros(xs.shape, dtype=bool)
    points = shapely.points(xs, ys)
    heading_layer = LAYERS[layer]
    assert isinstance(heading_layer, HeadingLayer)
    for lane in vector_map.lanes:
        inside = shapely.contains_xy(lane.polygon, xs, ys)
        near_edge |= (
            np.asarray(shapely.distance(lane.polygon.boundary, points)) <= spec.pixel_size_m
        )
        covering += inside
        line = shapely.LineString(lane.centerline)
        along = np.asarray(shapely.line_locate_point(line, points[inside]))
        ahead = shapely.get_coordinates(shapely.line_interpolate_point(line, along + 0.05))
        behind = shapely.get_coordinates(shapely.line_interpolate_point(line, along - 0.05))
        direction = np.arctan2(ahead[:, 1] - behind[:, 1], ahead[:, 0] - behind[:, 0])
        values[inside] = heading_layer.fn(direction - heading)
    return values, (covering <= 1) & ~near_edge


def assert_raster_matches_map(
    raster: NDArray[Any],
    vector_map: VectorMap,
    pose: ArrayLike,
    spec: RasterSpec,
    *,
    layer: str,
    value_tol: float = 0.05,
    max_bad_fraction: float = 0.0,
) -> None:
    """Check one layer of a raster against the vector map at its pixel centres.

    Args:
        raster: (C, H, W) raster (float or uint8) of ``pose`` drawn with ``spec``.
        vector_map, pose, spec: what it was drawn from ((3,) city pose).
        layer: the layer to check (fill, line, distance or heading kinds).
        value_tol: allowed |difference| for distance (plus one pixel) and heading values.
        max_bad_fraction: fraction of certain pixels allowed to disagree (0: none).
    Raises AssertionError naming the layer, how many pixels disagree and the first few.
    """
    if layer not in spec.layers:
        raise ConfigError(f"layer {layer} is not in the spec's layers {spec.layers}")
    kind = LAYERS[layer].kind
    got = LAYERS[layer].codec.decode(raster[spec.layers.index(layer)])
    want, certain = expected_layer(vector_map, pose, spec, layer)
    tol = value_tol
    if kind == "distance":
        tol += spec.pixel_size_m / spec.distance_clip_m
    bad = certain & (np.abs(got - want) > tol)
    allowed = max_bad_fraction * max(int(certain.sum()), 1)
    if bad.sum() > allowed:
        rows, cols = np.nonzero(bad)
        sample = [
            (int(i), int(j), float(got[i, j]), float(want[i, j]))
            for i, j in zip(rows[:5], cols[:5], strict=True)
        ]
        raise AssertionError(
            f"layer {layer}: {int(bad.sum())} of {int(certain.sum())} certain pixels disagree with "
            f"the map (allowed {allowed:.0f}); first (row, col, raster, map): {sample}"
        )


def mode_agreement(
    reference: NDArray[Any],
    other: NDArray[Any],
    layers: tuple[str, ...],
    min_lit: int = 200,
) -> dict[str, float]:
    """How closely rasters of another mode agree with reference (exact) rasters of the same poses.

    Args:
        reference, other: (N, C, H, W) rasters (float or uint8) with channels ``layers``.
        min_lit: binary layers are compared on agents whose reference layer has more lit pixels.
    Returns: for each binary layer, ``iou_<layer>``: the smallest per-agent IoU (1.0 when no
    agent qualifies), and with both heading layers, ``heading_within_0.3``: the fraction of
    reference centerline pixels (or lane pixels, without a centerline layer) where the
    (sin, cos) vectors of the two lie within 0.3 of each other.
    """
    result: dict[str, float] = {}
    for c, name in enumerate(layers):
        if not LAYERS[name].binary:
            continue
        a, b = reference[:, c] > 0, other[:, c] > 0
        lit = a.sum(axis=(1, 2))
        ious = (a & b).sum(axis=(1, 2)) / np.maximum((a | b).sum(axis=(1, 2)), 1)
        result[f"iou_{name}"] = float(ious[lit > min_lit].min()) if (lit > min_lit).any() else 1.0
    if {"lane_heading_sin", "lane_heading_cos"} <= set(layers):
        sin_c, cos_c = layers.index("lane_heading_sin"), layers.index("lane_heading_cos")

        def unit(r: NDArray[Any]) -> NDArray[np.float64]:
            return np.stack(
                [LAYERS[layers[c]].codec.decode(r[:, c]) for c in (sin_c, cos_c)], axis=-1
            )

        ref, oth = unit(reference), unit(other)
        on = (
            reference[:, layers.index("centerlines")] > 0
            if "centerlines" in layers
            else np.linalg.norm(ref, axis=-1) > 0.5
        )
        close = np.linalg.norm(ref - oth, axis=-1) <= 0.3
        result["heading_within_0.3"] = float(close[on].mean()) if on.any() else 1.0
    return result
