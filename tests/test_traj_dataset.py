"""The trajectory Dataset: rasters cached once in a memmap, reused by later epochs and runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from traj_scenes import moving_track, scenario_of

from mapenc.data.traj_dataset import TrajectoryDataset
from mapenc.data.trajectory import NGSIM_TASK, samples_from_scenarios
from mapenc.maps.polylines import POLYLINE_TYPES, PolylineSpec, map_polylines, polylines_around
from mapenc.maps.types import Scenario
from mapenc.raster import Rasterizer, RasterSpec

SPEC = RasterSpec(
    size_px=(16, 24),
    pixel_size_m=2.0,
    layers=("drivable_area", "lane_heading_cos", "centerlines"),
)


def count_rasterize_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch Rasterizer.rasterize to count its calls; returns the one-element counter."""
    calls = [0]
    original = Rasterizer.rasterize

    def counting(self: Rasterizer, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Rasterizer, "rasterize", counting)
    return calls


def cached_scenes() -> list[Scenario]:
    return [
        scenario_of(
            moving_track("a", (-40.0, 0.5), 0.0, 8.0, 61),
            moving_track("b", (30.0, -0.5), np.pi, 8.0, 41),
        ),
        scenario_of(moving_track("c", (-20.0, 0.0), 0.1, 5.0, 51)),
    ]


def _dataset(tmp_path: Path) -> TrajectoryDataset:
    scenes = cached_scenes()
    samples = samples_from_scenarios(scenes, NGSIM_TASK)
    return TrajectoryDataset(
        samples, scenes, SPEC, NGSIM_TASK, tmp_path, mode="exact", progress=False
    )


def test_rasters_are_drawn_once_and_reused_by_epochs_and_new_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_rasterize_calls(monkeypatch)
    ds = _dataset(tmp_path)
    assert calls[0] == 2  # one call per scenario (no scene layers)
    assert len(list(tmp_path.glob("rasters-*.u8"))) == 1
    for _epoch in range(2):
        batches = list(DataLoader(ds, batch_size=2, shuffle=True))
        assert sum(len(b["index"]) for b in batches) == len(ds)
    again = _dataset(tmp_path)
    assert calls[0] == 2
    assert torch.equal(again[0]["raster"], ds[0]["raster"])


def test_items_hold_decoded_rasters_and_agent_frame_arrays(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    item = ds[1]
    assert item["past"].shape == (11, 2) and item["future"].shape == (30, 2)
    assert item["raster"].shape == (3, 16, 24) and item["raster"].dtype == torch.float32
    sample = ds.samples.subset([1])
    exact = Rasterizer(scenario_of(moving_track("x", (0, 0), 0, 1, 2)).map, SPEC).rasterize(
        sample.pose
    )
    raster = item["raster"].numpy()
    # uint8 round trip: binary layers exact, heading layers within one quantisation step.
    np.testing.assert_allclose(raster[0], exact[0, 0], atol=1e-6)
    np.testing.assert_allclose(raster[1], exact[0, 1], atol=1.0 / 127)
    # The agent drives along the lane: the cos(lane - agent heading) layer is ~+1 on the lane.
    assert raster[1][raster[2] > 0.5].mean() > 0.9


def test_workers_read_the_memmap_themselves(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    _ = ds.rasters  # opened in this process; must not be pickled into workers
    loader = DataLoader(ds, batch_size=4, num_workers=1)
    total = sum(len(batch["index"]) for batch in loader)
    assert total == len(ds)


def test_scene_layers_are_drawn_per_time_step_with_the_agent_as_ego(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = RasterSpec(size_px=(20, 20), pixel_size_m=1.0, layers=("ego", "agents"))
    scene = scenario_of(
        moving_track("a", (-40.0, 0.0), 0.0, 8.0, 61), moving_track("b", (-35.0, 0.0), 0.0, 8.0, 61)
    )
    samples = samples_from_scenarios([scene], NGSIM_TASK)  # a and b at t = 10, 20, 30
    calls = count_rasterize_calls(monkeypatch)
    ds = TrajectoryDataset(samples, [scene], spec, NGSIM_TASK, tmp_path, progress=False)
    assert len(ds) == 6 and calls[0] == 3  # one call per time step
    raster = ds[0]["raster"].numpy()
    row, col = 10, 5  # the agent sits at agent_at = (0.25, 0.5) of a 20 x 20 raster
    assert raster[0, row, col] == 1.0 and raster[1, row, col] == 0.0
    # Sample 0 is car a; car b, 5 m ahead (pixel centre x = 5.5 m), is in ``agents`` only.
    assert samples.track_ids[0] == "a"
    assert raster[1, row, col + 5] == 1.0 and raster[0, row, col + 5] == 0.0


def test_torch_mode_items_carry_poses_and_the_model_draws_the_same_rasters(
    tmp_path: Path,
) -> None:
    """No cache in the torch mode: the rasters drawn in the map branch, on the model's device,
    are the exact cache's (binary layers pixel for pixel, heading within its sampling)."""
    cached = _dataset(tmp_path)
    drawn = TrajectoryDataset(
        cached.samples, cached_scenes(), SPEC, NGSIM_TASK, tmp_path / "none", mode="torch"
    )
    assert not (tmp_path / "none").exists() and drawn.device_rasters is not None
    item = drawn[0]
    assert "raster" not in item and item["pose"].dtype == torch.float64
    batch = next(iter(DataLoader(drawn, batch_size=len(drawn))))
    rasters = drawn.device_rasters(batch["pose"], batch["scenario"])
    expected = torch.stack([cached[i]["raster"] for i in range(len(cached))])
    binary = [SPEC.layers.index("drivable_area"), SPEC.layers.index("centerlines")]
    assert torch.equal(rasters[:, binary], expected[:, binary])
    heading = SPEC.layers.index("lane_heading_cos")
    assert (rasters[:, heading] - expected[:, heading]).abs().le(0.05).float().mean() > 0.97


def test_items_hold_the_map_polylines_of_their_agent(tmp_path: Path) -> None:
    scenes = [scenario_of(moving_track("a", (-40.0, 0.5), 0.0, 8.0, 61))]
    samples = samples_from_scenarios(scenes, NGSIM_TASK)
    spec = PolylineSpec(extent_m=SPEC.extent_m, max_polylines=30)
    ds = TrajectoryDataset(
        samples, scenes, SPEC, NGSIM_TASK, tmp_path, progress=False, polylines=spec
    )
    last = len(ds) - 1
    item = ds[last]
    expected = polylines_around(map_polylines(scenes[0].map, spec), samples.pose[last:], spec)
    assert item["polyline_points"].shape == (30, spec.points, 2)
    np.testing.assert_array_equal(item["polyline_points"].numpy(), expected.points[0])
    np.testing.assert_array_equal(item["polyline_mask"].numpy(), expected.mask[0])
    np.testing.assert_array_equal(item["polyline_types"].numpy(), expected.types[0])
    # The agent drives along the lane's centerline (y = 0 in the city, 0.5 m to its right).
    centre = item["polyline_types"] == POLYLINE_TYPES.index("centerline")
    ys = item["polyline_points"][centre][item["polyline_mask"][centre]][:, 1]
    assert ys.numel() > 0 and torch.allclose(ys, torch.full_like(ys, -0.5), atol=1e-4)
    assert "polyline_points" not in _dataset(tmp_path / "plain")[0]
