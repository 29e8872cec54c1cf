"""The torch mode: tensors on the device, tiles, city-scale maps; and bounded memory in every mode."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import shapely
import torch
from test_raster import transformed

from mapenc.errors import ConfigError, MapFormatError, PoseError, RasterSizeError
from mapenc.maps.synthetic import TownConfig, make_town
from mapenc.maps.types import Lane, VectorMap
from mapenc.raster import (
    RASTER_MODES,
    Rasterizer,
    RasterSpec,
    TorchSettings,
    device_draw,
    rasterizer,
)
from mapenc.raster.mapgeom import TILE_SIZE_M, split_polygons
from mapenc.testing import crosswalk_square, l_junction, straight_road

LAYERS = (
    "drivable_area",
    "crosswalks",
    "lane_boundaries",
    "centerlines",
    "lane_heading_sin",
    "lane_heading_cos",
    "distance_to_centerline",
)
SPEC = RasterSpec(size_px=(40, 56), pixel_size_m=0.5, layers=LAYERS)
POSES = np.array([[3.0, 2.0, 0.4], [20.0, 0.0, 1.0], [-5.0, 6.0, 2.5], [2.0, -3.0, -1.9]])


def test_rasterize_tensor_gives_the_numpy_content_on_the_device() -> None:
    r = Rasterizer(l_junction(), SPEC, mode="torch", device="cpu")
    assert r.device == torch.device("cpu")
    tensor = r.rasterize_tensor(torch.from_numpy(POSES), dtype=torch.uint8)
    assert tensor.dtype == torch.uint8 and tensor.device == r.device
    assert tensor.shape == (4, len(LAYERS), 40, 56)
    np.testing.assert_array_equal(tensor.numpy(), r.rasterize(POSES, np.uint8))
    floats = r.rasterize_tensor(POSES, dtype=torch.float32)
    heading = LAYERS.index("lane_heading_cos")
    assert floats[:, heading].abs().max() <= 1.0 and floats[:, heading].min() < -0.9
    np.testing.assert_allclose(
        floats[:, heading].numpy(), (tensor[:, heading].double().numpy() - 128) / 127, atol=0.01
    )


def test_torch_mode_samples_what_fast_mode_samples_and_burns_lines_like_exact() -> None:
    """Sampled layers come from the same drawing as the fast mode's (tiles change nothing); fill
    and line layers are drawn from the vectors, pixel for pixel as in the exact mode."""
    m = l_junction()
    fast = Rasterizer(m, SPEC, mode="fast").rasterize(POSES, np.uint8)
    exact = Rasterizer(m, SPEC).rasterize(POSES, np.uint8)
    drawn = Rasterizer(m, SPEC, mode="torch", device="cpu").rasterize(POSES, np.uint8)
    sampled = Rasterizer(
        m, SPEC, mode="torch", device="cpu", torch_settings=TorchSettings(binary="sample")
    ).rasterize(POSES, np.uint8)
    assert (fast != sampled).mean() < 1e-3
    binary = [0, 1, 2, 3]  # drivable_area, crosswalks, lane_boundaries, centerlines
    np.testing.assert_array_equal(drawn[:, binary], exact[:, binary])
    np.testing.assert_array_equal(drawn[:, 4:], sampled[:, 4:])


def test_small_tiles_and_a_tiny_device_budget_give_the_same_rasters() -> None:
    """Tiles 40 cells apart, 2 on the device: agents spread over many tiles page them in and
    out, and every raster is the one a single big tile gives. (The map is turned so that no edge
    lies exactly on a cell boundary, where float rounding of the tiles' origins could decide.)"""
    m = transformed(crosswalk_square(), 0.3, (0.01, 0.02))
    rng = np.random.default_rng(3)
    poses = np.stack(
        [rng.uniform(-25, 25, 40), rng.uniform(-8, 8, 40), rng.uniform(-np.pi, np.pi, 40)], 1
    )
    whole = Rasterizer(m, SPEC, mode="torch", device="cpu").rasterize(poses, np.uint8)
    paged = Rasterizer(
        m,
        SPEC,
        mode="torch",
        device="cpu",
        torch_settings=TorchSettings(tile_cells=40, max_device_tiles=2),
    )
    np.testing.assert_array_equal(paged.rasterize(poses, np.uint8), whole)
    tiles = paged._tiles
    assert tiles is not None and tiles.resident_tiles <= 2


def test_city_scale_map_keeps_only_the_tiles_in_use() -> None:
    """Two 40 km roads crossing: the fast mode's global raster would hold ~6e10 cells; the torch
    mode draws the two tiles its agents visit."""
    x = np.linspace(0.0, 40_000.0, 200)
    east = np.stack([x, np.zeros_like(x)], 1)
    north = east[:, ::-1].copy()
    lanes = [
        Lane("east", east, east + np.array([0.0, 1.75]), east - np.array([0.0, 1.75])),
        Lane("north", north, north - np.array([1.75, 0.0]), north + np.array([1.75, 0.0])),
    ]
    m = VectorMap(lanes)
    spec = RasterSpec(size_px=(32, 32), layers=("drivable_area", "lane_heading_cos"))
    with pytest.raises(ConfigError, match="max_global_pixels"):
        Rasterizer(m, spec, mode="fast")
    r = Rasterizer(m, spec, mode="torch", torch_settings=TorchSettings(tile_cells=512))
    poses = np.array([[100.0, 0.0, 0.0], [39_000.0, 0.0, np.pi]])
    raster = r.rasterize(poses, np.uint8)
    exact = Rasterizer(m, spec).rasterize(poses, np.uint8)
    np.testing.assert_array_equal(raster[:, 0], exact[:, 0])  # drawn from the vectors
    assert (np.abs(raster[:, 1].astype(int) - exact[:, 1]) <= 2).mean() > 0.97  # sampled
    assert r._tiles is not None and r._tiles.resident_tiles == 2


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_a_pose_at_1e20_metres_gives_the_empty_raster(mode: str) -> None:
    r = Rasterizer(l_junction(), SPEC, mode=mode)
    raster = r.rasterize([[1e20, -1e20, 0.3], [3.0, 2.0, 0.4]], np.uint8)
    far, near = raster[0], raster[1]
    expected = np.zeros_like(far)
    expected[LAYERS.index("lane_heading_sin")] = 128  # heading 0 is stored as 128
    expected[LAYERS.index("lane_heading_cos")] = 128
    expected[LAYERS.index("distance_to_centerline")] = 255
    np.testing.assert_array_equal(far, expected)
    assert near[0].any()


def test_bad_device_and_tensor_poses_are_named_errors() -> None:
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            Rasterizer(l_junction(), SPEC, mode="torch", device="cuda")
    with pytest.raises(ConfigError, match="device"):
        Rasterizer(l_junction(), SPEC, mode="torch", device="nonsense")
    r = Rasterizer(l_junction(), SPEC, mode="torch")
    with pytest.raises(PoseError):
        r.rasterize_tensor(torch.tensor([[0.0, float("nan"), 0.0]]))
    with pytest.raises(PoseError):
        r.rasterize_tensor(torch.zeros(2, 2))
    with pytest.raises(ConfigError, match="dtype"):
        r.rasterize_tensor(torch.zeros(1, 3), dtype=torch.int32)
    with pytest.raises(ConfigError):
        TorchSettings(max_device_tiles=0)


def test_auto_device_is_cuda_when_present() -> None:
    r = Rasterizer(straight_road(), SPEC, mode="torch")
    assert r.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("mode", ["exact", "torch"])
def test_huge_polygons_and_lanes_are_drawn_in_bounded_memory(mode: str) -> None:
    """A 100 km drivable area and a 1e9 m lane: only what the raster window sees costs memory."""
    area = shapely.box(-50_000.0, -50_000.0, 50_000.0, 50_000.0)
    x = np.array([-5e8, 0.0, 5e8])
    centre = np.stack([x, np.zeros(3)], 1)
    lane = Lane("endless", centre, centre + np.array([0.0, 1.75]), centre - np.array([0.0, 1.75]))
    m = VectorMap([lane], drivable_area=area)
    spec = RasterSpec(size_px=(32, 32), layers=("drivable_area", "centerlines", "lane_heading_cos"))
    tracemalloc.start()
    try:
        raster = Rasterizer(m, spec, mode=mode).rasterize([[10.0, 0.0, 0.0]], np.uint8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raster[0, 0].all() and raster[0, 1].any()
    assert peak < 400 * 2**20


def test_polygons_are_split_by_their_vertices_not_their_area() -> None:
    angle = np.linspace(0, 2 * np.pi, 1_000_000, endpoint=False)
    radius = 1000.0 + 5.0 * (np.arange(len(angle)) % 2)
    jagged = shapely.Polygon(np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1))
    pieces = split_polygons([jagged])
    for piece in pieces:  # few vertices, or small
        xmin, ymin, xmax, ymax = piece.bounds
        assert (
            shapely.get_num_coordinates(piece) <= 200
            or max(xmax - xmin, ymax - ymin) <= TILE_SIZE_M
        )
    assert sum(p.area for p in pieces) == pytest.approx(jagged.area, rel=1e-9)
    square = split_polygons([shapely.box(0.0, 0.0, 1e5, 1e5)])
    assert len(square) == 1  # four corners: nothing to split, whatever the area


@pytest.mark.parametrize("mode", RASTER_MODES)
def test_many_poses_in_one_call_are_drawn_in_chunks(mode: str) -> None:
    spec = RasterSpec(size_px=(8, 8), layers=("drivable_area", "distance_to_centerline"))
    r = Rasterizer(straight_road(), spec, mode=mode)
    poses = np.zeros((100_000, 3))
    poses[:, 0] = np.linspace(-20, 20, len(poses))
    r.rasterize(poses[:1])  # set-up (the torch mode's first tile) is not per pose
    tracemalloc.start()
    try:
        raster = r.rasterize(poses, np.uint8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raster.shape == (100_000, 2, 8, 8)
    np.testing.assert_array_equal(raster[:3], r.rasterize(poses[:3], np.uint8))
    assert peak < raster.nbytes + 200 * 2**20


def test_rasters_beyond_memory_are_refused_before_allocating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    huge = RasterSpec(size_px=(200_000, 200_000), layers=("drivable_area",))
    for mode in RASTER_MODES:
        r = Rasterizer(straight_road(), huge, mode="exact" if mode == "fast" else mode)
        with pytest.raises(RasterSizeError, match="GiB"):
            r.rasterize([[0.0, 0.0, 0.0]])
    # Working memory counts too: a 20000^2 grid's output alone may fit, drawing it would not.
    with monkeypatch.context() as patch:
        patch.setattr(rasterizer, "max_raster_bytes", lambda: 10 * 2**30)
        big = Rasterizer(straight_road(), RasterSpec(size_px=(20_000, 20_000)))
        with pytest.raises(RasterSizeError, match=r"\(6\.0 GiB output\)"):
            big.rasterize([[0.0, 0.0, 0.0]])
    with pytest.raises(RasterSizeError, match="GiB"):
        Rasterizer(straight_road(), SPEC, mode="torch").rasterize_tensor(torch.zeros(10**8, 3))


def test_a_jagged_lane_of_a_million_points_is_refused() -> None:
    n = 1_000_000
    x = np.linspace(0.0, 1000.0, n)
    zigzag = 3.0 * (np.arange(n) % 2)
    left = np.stack([x, 1.75 + zigzag], 1)
    right = np.stack([x, -1.75 - zigzag], 1)
    lane = Lane("jagged", 0.5 * (left + right), left, right)
    # Refused before shapely looks at it (checking validity alone took 15 s, repairing minutes),
    # when the drivable area is first needed.
    with pytest.raises(MapFormatError, match="lane jagged: polygon with 2,000,001 vertices"):
        Rasterizer(VectorMap([lane]), SPEC).rasterize(POSES)


def test_bins_reach_the_far_corner_of_a_turned_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window turned 45 degrees, centred on its agent, whose diagonal is just under a whole
    number of bins: the bins under its widened bounding box reach one further than its radius
    alone says, and the torch mode still draws every pixel exact draws (it missed corner pixels
    when the bins per axis came from the radius)."""
    monkeypatch.setattr(device_draw, "BIN_M", 4.0)
    town = make_town(TownConfig(seed=3, curvature=0.05))
    m = VectorMap(lanes=town.lanes, crosswalks=town.crosswalks, road_edges=town.road_edges)
    size_px = 64
    spec = RasterSpec(
        size_px=(size_px, size_px),
        pixel_size_m=13.99 * device_draw.BIN_M / (np.sqrt(2) * size_px),
        agent_at=(0.5, 0.5),
        layers=("lane_boundaries", "centerlines"),
    )
    rng = np.random.default_rng(0)
    xmin, ymin, xmax, ymax = m.bounds
    n = 400
    headings = np.pi / 4 + rng.choice([0.0, np.pi / 2, np.pi, -np.pi / 2], n)
    poses = np.stack([rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n), headings], 1)
    exact = Rasterizer(m, spec).rasterize(poses, np.uint8)
    drawn = Rasterizer(m, spec, mode="torch", device="cpu").rasterize(poses, np.uint8)
    np.testing.assert_array_equal(drawn, exact)
    assert exact.any()
