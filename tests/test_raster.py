"""Rasterizer: the pixel formula, invariances, edge cases, and agreement with the vector map."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from mapenc.errors import ConfigError, PoseError
from mapenc.maps.types import Lane, Scenario, Track, VectorMap
from mapenc.raster import (
    RASTER_MODES,
    FastSettings,
    Rasterizer,
    RasterSpec,
    list_layers,
    points_to_pixels,
    to_rgb,
)
from mapenc.testing import (
    assert_raster_matches_map,
    crosswalk_square,
    l_junction,
    straight_road,
)

MAP_LAYERS = (
    "drivable_area",
    "crosswalks",
    "lane_boundaries",
    "lane_boundaries_solid",
    "lane_boundaries_dashed",
    "centerlines",
    "lane_heading_sin",
    "lane_heading_cos",
    "distance_to_centerline",
)
SMALL = RasterSpec(size_px=(48, 64), pixel_size_m=0.5, layers=MAP_LAYERS)
POSES = [[0.0, 0.0, 0.0], [3.0, 1.0, 0.7], [-5.0, 6.0, 2.5], [2.0, -3.0, -1.9]]
MAPS = {"straight": straight_road, "l_junction": l_junction, "crosswalk": crosswalk_square}


def transformed(m: VectorMap, angle: float, shift: tuple[float, float]) -> VectorMap:
    """The map rotated by ``angle`` about the origin, then shifted (city frame)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])

    def move(xy: np.ndarray) -> np.ndarray:
        return xy @ rot.T + np.asarray(shift)

    lanes = [
        Lane(
            lane.id,
            move(lane.centerline),
            move(lane.left_boundary),
            move(lane.right_boundary),
            lane.left_mark,
            lane.right_mark,
        )
        for lane in m.lanes
    ]
    crosswalks = [shapely.transform(p, move) for p in m.crosswalks]
    return VectorMap(lanes, crosswalks, shapely.transform(m.area, move))


def moved_pose(pose: list[float], angle: float, shift: tuple[float, float]) -> list[float]:
    c, s = np.cos(angle), np.sin(angle)
    x, y, h = pose
    return [c * x - s * y + shift[0], s * x + c * y + shift[1], h + angle]


def test_default_spec_matches_the_design() -> None:
    spec = RasterSpec()
    assert spec.size_px == (224, 224)
    assert spec.pixel_size_m == 0.5
    assert spec.agent_at == (0.25, 0.5)
    assert set(MAP_LAYERS) | {"agents", "ego", "history"} == set(list_layers())


def test_known_points_land_on_known_pixels() -> None:
    spec = RasterSpec(size_px=(100, 120), pixel_size_m=0.25, agent_at=(0.2, 0.6))
    pose = np.array([[1000.0, -500.0, 0.4]])
    m = spec.raster_from_city(pose)[0]
    c, s = np.cos(0.4), np.sin(0.4)
    # The centre of pixel (i, j) is at x = (j + .5) s - ax W s, y = ay H s - (i + .5) s.
    for i, j in [(0, 0), (59, 23), (99, 119), (10, 80)]:
        x = (j + 0.5) * 0.25 - 0.2 * 120 * 0.25
        y = 0.6 * 100 * 0.25 - (i + 0.5) * 0.25
        city = pose[0, :2] + np.array([c * x - s * y, s * x + c * y])
        u, v = points_to_pixels(m, city[None])[0]
        assert (u, v) == pytest.approx((j + 0.5, i + 0.5), abs=1e-9)
    centres = spec.pixel_centers_agent()
    assert centres[3, 7] == pytest.approx([(7 + 0.5) * 0.25 - 6.0, 15.0 - 3.5 * 0.25])


def test_agent_faces_right_and_its_left_is_up() -> None:
    spec = RasterSpec(size_px=(40, 40), pixel_size_m=1.0, agent_at=(0.5, 0.5))
    pose = np.array([[10.0, 20.0, np.pi / 2]])  # heading north
    ahead, left = np.array([[10.0, 25.0]]), np.array([[5.0, 20.0]])
    u_ahead, v_ahead = points_to_pixels(spec.raster_from_city(pose), ahead[None])[0, 0]
    u_left, v_left = points_to_pixels(spec.raster_from_city(pose), left[None])[0, 0]
    assert u_ahead == pytest.approx(25.0) and v_ahead == pytest.approx(20.0)
    assert u_left == pytest.approx(20.0) and v_left == pytest.approx(15.0)


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_lane_along_heading_gives_cos_one(mode: str) -> None:
    road = straight_road()
    spec = RasterSpec(
        size_px=(32, 32), pixel_size_m=0.5, layers=("lane_heading_sin", "lane_heading_cos")
    )
    raster = Rasterizer(road, spec, mode=mode).rasterize([[0.0, -1.75, 0.0]])[0]
    i, j = 16, 8  # the pixel under the agent, in the middle of lane "east"
    assert raster[1, i, j] == pytest.approx(1.0, abs=1e-3)
    assert raster[0, i, j] == pytest.approx(0.0, abs=0.03)
    # The opposite lane (above, to the agent's left) drives the other way.
    assert raster[1, i - 6, j] == pytest.approx(-1.0, abs=1e-3)


@pytest.mark.parametrize("name", sorted(MAPS))
@pytest.mark.parametrize("pose", POSES)
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_exact_matches_map_at_pixel_centres(name: str, pose: list[float], dtype: type) -> None:
    m = MAPS[name]()
    raster = Rasterizer(m, SMALL).rasterize([pose], dtype)[0]
    for layer in MAP_LAYERS:
        assert_raster_matches_map(raster, m, pose, SMALL, layer=layer, value_tol=0.1)


@pytest.mark.parametrize("mode", ["fast", "torch"])
@pytest.mark.parametrize("name", sorted(MAPS))
@pytest.mark.parametrize("pose", POSES)
def test_sampled_modes_match_map_within_tolerance(name: str, pose: list[float], mode: str) -> None:
    m = MAPS[name]()
    raster = Rasterizer(m, SMALL, mode=mode).rasterize([pose])[0]
    for layer in MAP_LAYERS:
        lines = layer.startswith(("lane_boundaries", "centerlines"))
        assert_raster_matches_map(
            raster,
            m,
            pose,
            SMALL,
            layer=layer,
            value_tol=0.1,
            max_bad_fraction=0.03 if lines else 0.002,
        )


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_rotating_and_translating_map_and_pose_together_changes_nothing(mode: str) -> None:
    m = l_junction()
    poses = [[2.0, 1.0, 0.3], [9.0, 15.0, 1.4]]
    reference = Rasterizer(m, SMALL, mode=mode).rasterize(poses, np.uint8)
    for angle, shift in [(0.0, (1e6, -1e6)), (1.1, (0.0, 0.0)), (-2.3, (4.1e5, 3.3e6))]:
        moved = transformed(m, angle, shift)
        again = Rasterizer(moved, SMALL, mode=mode).rasterize(
            [moved_pose(p, angle, shift) for p in poses], np.uint8
        )
        # Exact: only pixel centres exactly on an edge may flip under float rounding. Fast: the
        # global raster's grid turns with the map, so boundary pixels may move by one.
        changed = np.abs(again.astype(int) - reference.astype(int)) > 2
        assert changed.mean() < (2e-3 if mode == "exact" else 0.06), (angle, shift, changed.mean())
        area = SMALL.layers.index("drivable_area")
        a, b = reference[:, area] > 0, again[:, area] > 0
        # Fast: two rasters, each within its own sampling error of the exact one, on lanes
        # only 7 pixels wide.
        assert (a & b).sum() / (a | b).sum() >= (0.999 if mode == "exact" else 0.9)


def test_far_from_origin_keeps_pixel_precision() -> None:
    """1e6 m from the origin the exact raster is the same as at the origin (float64 until the
    agent frame)."""
    m = crosswalk_square()
    pose = [0.3, 0.2, 0.5]
    near = Rasterizer(m, SMALL).rasterize([pose])
    far = Rasterizer(transformed(m, 0.0, (1e6, 1e6)), SMALL).rasterize(
        [moved_pose(pose, 0.0, (1e6, 1e6))]
    )
    assert np.abs(near - far).max() < 1e-4


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_agent_outside_map_gets_empty_map_layers(mode: str) -> None:
    raster = Rasterizer(straight_road(), SMALL, mode=mode).rasterize(
        [[0.0, 500.0, 0.2], [5e4, 0.0, 0.0]]
    )
    dist = SMALL.layers.index("distance_to_centerline")
    others = [c for c in range(len(SMALL.layers)) if c != dist]
    assert not raster[:, others].any()
    assert (raster[:, dist] == 1.0).all()


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_empty_map_gives_empty_rasters(mode: str) -> None:
    raster = Rasterizer(VectorMap([]), SMALL, mode=mode).rasterize([[0.0, 0.0, 0.0]])
    assert raster.shape == (1, len(MAP_LAYERS), 48, 64)
    assert not raster[:, :-1].any()


def test_zero_poses_give_an_empty_batch() -> None:
    assert Rasterizer(straight_road(), SMALL).rasterize(np.zeros((0, 3))).shape == (0, 9, 48, 64)


@pytest.mark.parametrize(
    "bad", [[[0.0, np.nan, 0.0]], [[np.inf, 0.0, 0.0]], [[1.0, 2.0]], [[[1.0, 2.0, 3.0]]]]
)
def test_bad_poses_raise(bad: list) -> None:
    with pytest.raises(PoseError):
        Rasterizer(straight_road(), SMALL).rasterize(bad)


def test_bad_settings_raise() -> None:
    with pytest.raises(ConfigError, match="unknown raster layers"):
        RasterSpec(layers=("roads",))
    with pytest.raises(ConfigError):
        RasterSpec(pixel_size_m=0.0)
    with pytest.raises(ConfigError, match="mode"):
        Rasterizer(straight_road(), SMALL, mode="quick")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dtype"):
        Rasterizer(straight_road(), SMALL).rasterize([[0, 0, 0]], dtype=np.int32)
    with pytest.raises(ConfigError, match="scenario"):
        Rasterizer(straight_road(), RasterSpec(layers=("agents",)))


def test_uint8_holds_the_float_content() -> None:
    r = Rasterizer(l_junction(), SMALL)
    pose = [[3.0, 2.0, 0.4]]
    f, u = r.rasterize(pose), r.rasterize(pose, np.uint8)
    for c, layer in enumerate(SMALL.layers):
        expected = 128 + 127 * f[:, c] if layer.startswith("lane_heading") else 255 * f[:, c]
        assert np.abs(u[:, c] - expected).max() <= 0.5 + 1e-3, layer


def test_later_lane_wins_where_lanes_overlap() -> None:
    """Two lanes on the same strip, driving in opposite directions: the one listed last is drawn."""
    road = straight_road()
    east = road.lane("east")
    twin = Lane(
        "twin",
        east.centerline[::-1].copy(),
        east.right_boundary[::-1].copy(),
        east.left_boundary[::-1].copy(),
    )
    spec = RasterSpec(size_px=(16, 16), layers=("lane_heading_cos",))
    for mode in RASTER_MODES:
        first = Rasterizer(VectorMap([east, twin]), spec, mode=mode).rasterize([[0.0, -1.75, 0.0]])
        second = Rasterizer(VectorMap([twin, east]), spec, mode=mode).rasterize([[0.0, -1.75, 0.0]])
        assert first[0, 0, 8, 4] == pytest.approx(-1.0, abs=1e-3)
        assert second[0, 0, 8, 4] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("mode", ["fast", "torch"])
def test_sampled_modes_agree_with_exact_on_filled_layers(mode: str) -> None:
    m = crosswalk_square()
    spec = RasterSpec(size_px=(96, 96), pixel_size_m=0.25, layers=("drivable_area", "crosswalks"))
    rng = np.random.default_rng(0)
    poses = np.stack(
        [rng.uniform(-20, 20, 30), rng.uniform(-6, 6, 30), rng.uniform(-np.pi, np.pi, 30)], 1
    )
    exact = Rasterizer(m, spec).rasterize(poses) > 0
    fast = Rasterizer(m, spec, mode=mode).rasterize(poses) > 0
    for c in range(2):
        iou = (exact[:, c] & fast[:, c]).sum() / (exact[:, c] | fast[:, c]).sum()
        assert iou >= 0.95


def test_raster_from_city_draws_a_trajectory_into_the_raster() -> None:
    road = straight_road()
    spec = RasterSpec(size_px=(40, 80), pixel_size_m=0.5, layers=("centerlines",))
    pose = np.array([[-10.0, -1.75, 0.0]])
    path = np.stack([np.linspace(-10, 20, 31), np.full(31, -1.75)], axis=1)
    uv = points_to_pixels(Rasterizer(road, spec).raster_from_city(pose), path[None])[0]
    raster = Rasterizer(road, spec).rasterize(pose)[0, 0]
    rows, cols = np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)
    keep = (cols >= 0) & (cols < 80)
    assert raster[rows[keep], cols[keep]].all()  # the path runs along the centerline pixels


def test_to_rgb_shapes_and_colours() -> None:
    spec = RasterSpec(size_px=(20, 30), layers=("drivable_area", "centerlines"))
    raster = Rasterizer(straight_road(), spec).rasterize([[0, 0, 0], [1, 0, 0]])
    assert to_rgb(raster, spec.layers).shape == (2, 20, 30, 3)
    rgb = Rasterizer(straight_road(), spec).to_rgb(raster[0])
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 30, 3)
    drivable = rgb[raster[0, 0] > 0]
    assert (drivable > 0).all() and (rgb[raster[0, 0] == 0] == 0).all()
    with pytest.raises(ConfigError):
        to_rgb(raster, ("drivable_area",))


def make_scenario() -> Scenario:
    """Two cars driving east on the straight road, 1 m per step, 5 steps."""
    t = np.arange(5, dtype=np.float64)
    tracks = [
        Track(
            "a",
            "vehicle",
            np.stack([t, np.full(5, -1.75)], 1),
            np.zeros(5),
            np.ones(5, bool),
            4.0,
            2.0,
        ),
        Track(
            "b",
            "vehicle",
            np.stack([t + 10, np.full(5, -1.75)], 1),
            np.zeros(5),
            np.ones(5, bool),
            4.0,
            2.0,
        ),
    ]
    return Scenario(straight_road(), 0.1, tracks)


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_scene_layers_draw_boxes(mode: str) -> None:
    spec = RasterSpec(
        size_px=(32, 64),
        pixel_size_m=0.5,
        agent_at=(0.25, 0.5),
        layers=("ego", "agents", "history"),
        history_steps=3,
    )
    r = Rasterizer(spec=spec, mode=mode, scenario=make_scenario())
    poses, raster = r.rasterize_tracks(["a"], t=4)
    assert poses[0].tolist() == [4.0, -1.75, 0.0]
    ego, agents, history = raster[0]
    # Ego box 4 m x 2 m = 8 x 4 pixels around the agent (column 16, row 16).
    assert ego.sum() == 32 and ego[14:18, 12:20].all()
    # The other car is 10 m (20 px) ahead, the ego is not in "agents".
    assert agents.sum() == 32 and agents[14:18, 32:40].all() and not agents[:, :20].any()
    # History fades: the newest frame is 1, the oldest 1/3.
    assert history.max() == pytest.approx(1.0)
    assert history[16, 8] == pytest.approx(1 / 3)  # only the oldest box reaches 3.75 m behind
    with pytest.raises(ConfigError, match="time step"):
        r.rasterize(poses, track_ids=["a"])
    with pytest.raises(ConfigError, match="track_ids"):
        r.rasterize(poses, t=4)


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_out_buffer_is_cleared_and_reused(mode: str) -> None:
    r = Rasterizer(l_junction(), SMALL, mode=mode)
    poses = [[3.0, 2.0, 0.4], [20.0, 0.0, 1.0]]
    buffer = np.full((2, len(MAP_LAYERS), 48, 64), 7, dtype=np.uint8)
    result = r.rasterize(poses, np.uint8, out=buffer)
    assert result is buffer
    np.testing.assert_array_equal(buffer, r.rasterize(poses, np.uint8))
    with pytest.raises(ConfigError, match="out must be"):
        r.rasterize(poses, np.float32, out=buffer)


def test_fast_mode_lowers_oversample_to_fit_memory_and_refuses_when_nothing_fits() -> None:
    road = straight_road()
    spec = RasterSpec(size_px=(16, 16), layers=("drivable_area",))
    full = Rasterizer(road, spec, mode="fast")._fast
    assert full is not None and full.oversample == FastSettings().oversample
    budget = full.shape[0] * full.shape[1] // 2
    with pytest.warns(UserWarning, match="oversample lowered"):
        lowered = Rasterizer(
            road, spec, mode="fast", fast_settings=FastSettings(max_global_pixels=budget)
        )
    assert lowered._fast is not None and lowered._fast.oversample < full.oversample
    with pytest.raises(ConfigError, match="max_global_pixels"):
        Rasterizer(road, spec, mode="fast", fast_settings=FastSettings(max_global_pixels=10))
