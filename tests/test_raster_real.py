"""Rasterizer on real maps: exact agrees with shapely at pixel centres, fast agrees with exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mapenc.maps import VectorMap, load_map, load_scenario
from mapenc.raster import Rasterizer, RasterSpec
from mapenc.testing import assert_raster_matches_map, mode_agreement

pytestmark = pytest.mark.real_data

REAL_MAPS = {
    "av2": "av2/forecasting/*/log_map_archive_*.json",
    "av2_sensor": "av2/sensor_logs/3bffdcff-*/map/log_map_archive_*.json",
    "ngsim_peachtree": "commonroad_ngsim/Peachtree/*.xml.gz",
    "osm_sumo": "commonroad_osm_sumo/DEU_*.xml.gz",
    "karlsruhe": "maps_only/lanelet2_karlsruhe/mapping_example.osm",
    "interaction_roundabout": "maps_only/interaction_locations_commonroad/DEU_Roundabout_OF_repaired.xml",
    "ind_bendplatz": "maps_only/ind_locations_commonroad/Bendplatz.xml",
}
FILLED = ("drivable_area", "crosswalks")
SPEC = RasterSpec(
    size_px=(96, 96),
    pixel_size_m=0.5,
    layers=(*FILLED, "lane_boundaries", "centerlines", "lane_heading_cos"),
)


def first_match(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    if not found:
        pytest.skip(f"no {pattern} under {root}")
    return found[0]


def poses_on_lanes(m: VectorMap, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) poses on random lane centerline points, random headings (city frame)."""
    rng = np.random.default_rng(seed)
    lanes = [m.lanes[k] for k in rng.integers(0, len(m.lanes), count)]
    xy = np.stack([lane.centerline[rng.integers(0, len(lane.centerline))] for lane in lanes])
    return np.concatenate([xy, rng.uniform(-np.pi, np.pi, (count, 1))], axis=1)


@pytest.fixture(scope="module", params=sorted(REAL_MAPS))
def real_map(request: pytest.FixtureRequest, real_data: Path) -> VectorMap:
    return load_map(first_match(real_data, REAL_MAPS[request.param]))


def test_exact_matches_shapely_at_pixel_centres(real_map: VectorMap) -> None:
    poses = poses_on_lanes(real_map, 4)
    rasters = Rasterizer(real_map, SPEC).rasterize(poses, np.uint8)
    for pose, raster in zip(poses, rasters, strict=True):
        for layer in (*FILLED, "lane_boundaries", "centerlines"):
            assert_raster_matches_map(raster, real_map, pose, SPEC, layer=layer)


def test_fast_agrees_with_exact_on_filled_layers(real_map: VectorMap) -> None:
    poses = poses_on_lanes(real_map, 24, seed=1)
    exact = Rasterizer(real_map, SPEC).rasterize(poses, np.uint8) > 0
    fast = Rasterizer(real_map, SPEC, mode="fast").rasterize(poses, np.uint8) > 0
    for c, layer in enumerate(FILLED):
        union = (exact[:, c] | fast[:, c]).sum()
        if union == 0:
            continue  # e.g. no crosswalks on this map
        iou = (exact[:, c] & fast[:, c]).sum() / union
        assert iou >= 0.95, f"{real_map.source} {layer}: IoU {iou:.3f}"


def test_scene_layers_on_the_av2_scenario(real_data: Path) -> None:
    folder = first_match(real_data, "av2/forecasting/*/")
    scenario = load_scenario(folder)
    spec = RasterSpec(size_px=(64, 64), layers=("drivable_area", "agents", "ego", "history"))
    r = Rasterizer(spec=spec, scenario=scenario)
    focal = scenario.focal_track_id
    assert focal is not None
    _, raster = r.rasterize_tracks([focal], t=49, dtype=np.uint8)
    ego = raster[0, 2]
    assert ego[32, 16] == 255  # the agent's own box covers the agent's pixel
    assert raster[0, 3].max() == 255 and raster[0, 3].min() == 0


AGREEMENT_MAPS = (
    "av2/forecasting/*/log_map_archive_*.json",
    "commonroad_ngsim/Lankershim/*.xml.gz",
    "commonroad_ngsim/Peachtree/*.xml.gz",
    "commonroad_ngsim/US101/*.xml.gz",
)
AGREEMENT_LAYERS = (
    "drivable_area",
    "lane_boundaries",
    "centerlines",
    "crosswalks",
    "lane_heading_sin",
    "lane_heading_cos",
)


@pytest.mark.parametrize("pattern", AGREEMENT_MAPS)
def test_torch_mode_agrees_with_exact(real_data: Path, pattern: str) -> None:
    """Issue 15's bar: IoU >= 0.95 on each binary layer for every agent with over 200 lit
    pixels, lane heading within 0.3 on 90 % of centerline pixels (224 x 224 at 0.5 m/px)."""
    m = load_map(first_match(real_data, pattern))
    spec = RasterSpec(layers=AGREEMENT_LAYERS)
    poses = poses_on_lanes(m, 48, seed=2)
    exact = Rasterizer(m, spec).rasterize(poses, np.uint8)
    on_device = Rasterizer(m, spec, mode="torch", device="cpu").rasterize_tensor(
        poses, dtype=torch.uint8
    )
    agreement = mode_agreement(exact, on_device.numpy(), spec.layers)
    for name in ("drivable_area", "lane_boundaries", "centerlines", "crosswalks"):
        assert agreement[f"iou_{name}"] >= 0.95, (m.source, agreement)
    assert agreement["heading_within_0.3"] >= 0.9, (m.source, agreement)


def test_fast_mode_draws_a_map_whose_polygon_pieces_geos_cannot_clip(real_data: Path) -> None:
    # A repaired lanelet of this scene leaves a ring that shapely.clip_by_rect rejects when the
    # drivable area is cut into pieces; the piece is kept whole instead of failing the scene.
    m = load_map(real_data / "commonroad_ngsim/Lankershim/USA_Lanker-2_24_T-1.xml.gz")
    spec = RasterSpec(size_px=(64, 64), pixel_size_m=1.0, layers=("drivable_area",))
    x0, y0, x1, y1 = m.bounds
    pose = np.array([[0.5 * (x0 + x1), 0.5 * (y0 + y1), 0.0]])
    fast = Rasterizer(m, spec, mode="fast").rasterize(pose)
    exact = Rasterizer(m, spec).rasterize(pose)
    assert fast.shape == (1, 1, 64, 64)
    assert np.mean(fast == exact) > 0.95
