"""Raster requests that once ended in a traceback or were silently bent: named errors now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mapenc.errors import ConfigError, MapencError, PoseError
from mapenc.maps import load_scenario
from mapenc.raster import Rasterizer, RasterSpec

GENERIC = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "generic_tiny"
LAYERS = ("drivable_area", "centerlines")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"size_px": ("a", 3)}, "size_px must be two whole numbers"),
        ({"size_px": (64,)}, "size_px must be two whole numbers"),
        ({"size_px": (2.7, 3.9)}, "size_px must be two whole numbers"),
        ({"distance_clip_m": float("nan")}, "distance_clip_m=nan"),
        ({"agent_at": (1e6, 1e6)}, "agent_at must be two fractions"),
        ({"pixel_size_m": float("inf")}, "pixel_size_m=inf"),
    ],
)
def test_bad_spec_values_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RasterSpec(layers=LAYERS, **settings)


def test_whole_float_sizes_are_kept() -> None:
    assert RasterSpec(size_px=(64.0, 32), layers=LAYERS).size_px == (64, 32)


@pytest.mark.parametrize("poses", [["1", "2", "3"], "0 0 0", [[0, 0, 0], [1, 2]]])
def test_poses_that_are_not_numbers_are_a_pose_error(poses: Any) -> None:
    scenario = load_scenario(GENERIC)
    rasterizer = Rasterizer(scenario.map, RasterSpec(size_px=(16, 16), layers=LAYERS))
    with pytest.raises(PoseError, match="array of numbers"):
        rasterizer.rasterize(poses)


@pytest.mark.parametrize("t", [999, -1, 1.5])
def test_rasterize_tracks_outside_the_scenario_is_named(t: Any) -> None:
    scenario = load_scenario(GENERIC)
    spec = RasterSpec(size_px=(16, 16), layers=LAYERS)
    rasterizer = Rasterizer(scenario.map, spec, scenario=scenario)
    with pytest.raises(MapencError, match=f"t={t!r} is not a step of the scenario"):
        rasterizer.rasterize_tracks([scenario.tracks[0].id], t)
    poses, rasters = rasterizer.rasterize_tracks([scenario.tracks[0].id], 0)
    assert rasters.shape == (1, 2, 16, 16) and np.isfinite(poses).all()
