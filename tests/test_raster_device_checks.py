"""What the torch mode would cost on a GPU, checked without one: waits for the device and kernel
launches counted per call (``mapenc.raster.opcount``), a run on the meta device (no data, so no
hidden read), the float32 coordinates GPUs use, several maps in one pass; and the auto mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_raster import transformed

from mapenc.data.device_rasters import SceneRasterizers
from mapenc.maps.types import Scenario
from mapenc.raster import Rasterizer, RasterSpec, TorchSettings, rasterizer
from mapenc.raster.agreement import off_edge_differences
from mapenc.raster.device_draw import HOST_READS_PER_CHUNK, MapTable, VectorDrawer
from mapenc.raster.mapgeom import MapGeometry
from mapenc.raster.opcount import OpCount
from mapenc.testing import crosswalk_square, l_junction, straight_road

BINARY = ("drivable_area", "lane_boundaries", "centerlines", "crosswalks")
SPEC = RasterSpec(size_px=(64, 80), pixel_size_m=0.5, layers=BINARY)
# Kernel launches of one chunk with the four binary layers on a GPU (measured on the meta device:
# 195, at any raster size; fixed, whatever the poses, layers' content or segments; target 200).
LAUNCH_BUDGET = 200


def poses_near(n: int, seed: int = 0, spread_m: float = 30.0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-spread_m, spread_m, (n, 2))
    return torch.from_numpy(np.concatenate([xy, rng.uniform(-np.pi, np.pi, (n, 1))], 1))


def count_call(r: Rasterizer, poses: torch.Tensor) -> OpCount:
    with OpCount() as count:
        r.rasterize_tensor(poses, torch.uint8)
    return count


@pytest.mark.parametrize(
    ("vector_map", "layers", "n"),
    [
        (l_junction(), BINARY, 3),
        (l_junction(), BINARY, 40),
        (l_junction(arm_m=400.0), BINARY, 40),
        (crosswalk_square(), BINARY, 17),
        (straight_road(), ("lane_boundaries",), 9),
        (straight_road(), ("drivable_area", "crosswalks"), 9),
    ],
)
def test_one_call_waits_for_the_device_a_fixed_number_of_times(
    vector_map: object, layers: tuple[str, ...], n: int
) -> None:
    """Three reads of stage totals per chunk, the finiteness check folded into the first:
    no unique, nonzero, boolean mask, unsized repeat_interleave or tensor from host values."""
    spec = RasterSpec(size_px=(64, 80), pixel_size_m=0.5, layers=layers)
    r = Rasterizer(vector_map, spec, mode="torch", device="cpu")  # type: ignore[arg-type]
    count = count_call(r, poses_near(n))
    assert count.waits == HOST_READS_PER_CHUNK == 3
    assert dict(count.wait_ops) == {"_to_copy": 3}


def test_kernel_launches_per_chunk_do_not_grow_with_poses_or_segments() -> None:
    """Counted on the meta device, which takes the GPU's path (the CPU sums fills row by row)."""
    small = Rasterizer(l_junction(), SPEC, mode="torch", device="meta")
    large = Rasterizer(l_junction(arm_m=400.0), SPEC, mode="torch", device="meta")
    few = count_call(small, poses_near(2).to("meta"))
    many = count_call(large, poses_near(50, seed=1, spread_m=200.0).to("meta"))
    assert few.kernels == many.kernels <= LAUNCH_BUDGET


def test_the_counter_sees_the_waits_of_the_usual_culprits() -> None:
    x = torch.arange(10)
    with OpCount() as count:
        torch.unique(x)
        torch.nonzero(x)
        x[x > 3]
        torch.repeat_interleave(x)
        torch.repeat_interleave(x, output_size=45)  # sized: no wait
        int(x.sum())
        torch.tensor([1, 2])
        x.to("cpu", copy=True)
    assert count.waits == 7
    assert count.wait_ops["repeat_interleave"] == 1


def test_a_chunk_runs_on_the_meta_device() -> None:
    """Shapes and dtypes only: every tensor the drawing makes stays on the rasterizer's device
    and nothing reads data back (a ``.tolist()`` or ``.numpy()`` would fail here)."""
    r = Rasterizer(l_junction(), SPEC, mode="torch", device="meta")
    out = r.rasterize_tensor(torch.zeros(6, 3, device="meta"), torch.uint8)
    assert out.device.type == "meta" and out.shape == (6, 4, 64, 80) and out.dtype == torch.uint8


def test_float32_coordinates_agree_with_exact_on_edges() -> None:
    """The coordinates GPUs use, on the CPU: rasters differ from exact's only on edges."""
    m = transformed(l_junction(), 0.3, (0.01, 0.02))
    poses = poses_near(24, seed=5)
    exact = Rasterizer(m, SPEC).rasterize(poses.numpy(), np.uint8)
    single = Rasterizer(
        m, SPEC, mode="torch", device="cpu", torch_settings=TorchSettings(coordinates="float32")
    ).rasterize(poses.numpy(), np.uint8)
    assert off_edge_differences(single, exact) == 0
    assert (single != exact).mean() < 1e-3


def test_off_edge_differences_counts_pixels_away_from_edges() -> None:
    reference = np.zeros((8, 8), dtype=np.uint8)
    reference[2:6, 2:6] = 255
    edge_flip, inner_flip = reference.copy(), reference.copy()
    edge_flip[2, 3] = 0
    inner_flip[0, 7] = 255
    assert off_edge_differences(edge_flip, reference) == 0
    assert off_edge_differences(inner_flip, reference) == 1


def test_several_maps_are_drawn_in_one_pass() -> None:
    maps = [l_junction(), transformed(crosswalk_square(), 0.4, (500.0, -200.0))]
    drawer = VectorDrawer(SPEC, BINARY, torch.device("cpu"), torch.float64)
    table = MapTable.concat([drawer.table(MapGeometry(m)) for m in maps])
    poses = torch.cat([poses_near(5, seed=2), poses_near(4, seed=3) + torch.tensor([500, -200, 0])])
    map_index = torch.tensor([0] * 5 + [1] * 4)
    out = torch.empty((9, 4, *SPEC.size_px), dtype=torch.uint8)
    assert drawer.draw(table, poses, out, map_index)
    for k, m in enumerate(maps):
        own = Rasterizer(m, SPEC).rasterize(poses[map_index == k].numpy(), np.uint8)
        np.testing.assert_array_equal(out[map_index == k].numpy(), own)


def test_a_drawer_clears_its_channels_unless_told_they_come_zeroed() -> None:
    """Rasters drawn into a buffer holding old values equal rasters drawn into zeros: the line
    channels are cleared unless ``zeroed`` says there is nothing to clear."""
    m = l_junction()
    drawer = VectorDrawer(SPEC, BINARY, torch.device("cpu"), torch.float64)
    table = drawer.table(MapGeometry(m))
    poses = poses_near(6, seed=4)
    used = torch.full((6, 4, *SPEC.size_px), 7, dtype=torch.uint8)
    assert drawer.draw(table, poses, used)
    fresh = torch.zeros((6, 4, *SPEC.size_px), dtype=torch.uint8)
    assert drawer.draw(table, poses, fresh, zeroed=True)
    assert fresh.any() and torch.equal(used, fresh)
    np.testing.assert_array_equal(
        fresh.numpy(), Rasterizer(m, SPEC).rasterize(poses.numpy(), np.uint8)
    )


def test_a_pose_that_is_not_finite_is_found_in_the_first_read() -> None:
    r = Rasterizer(l_junction(), SPEC, mode="torch", device="cpu")
    poses = poses_near(4)
    poses[2, 0] = float("nan")
    with OpCount() as count, pytest.raises(Exception, match="NaN or inf"):
        r.rasterize_tensor(poses)
    assert count.waits == 1


def test_auto_mode_follows_the_pose_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rasterizer, "AUTO_FAST_POSES", 6)
    m = l_junction()
    auto = Rasterizer(m, SPEC, mode="auto")
    few, many = poses_near(5).numpy(), poses_near(6, seed=1).numpy()
    np.testing.assert_array_equal(auto.rasterize(few), Rasterizer(m, SPEC).rasterize(few))
    assert auto._fast is None  # a few poses: exact, and the fast drawing is never built
    fast = Rasterizer(m, SPEC, mode="fast").rasterize(many)
    np.testing.assert_array_equal(auto.rasterize(many), fast)
    assert auto._fast is not None
    # Back to a few poses: exact again, the choice follows each call's count.
    np.testing.assert_array_equal(auto.rasterize(few), Rasterizer(m, SPEC).rasterize(few))


def test_a_batch_on_many_maps_is_drawn_in_one_pass_with_few_maps_kept() -> None:
    maps = [l_junction(), transformed(crosswalk_square(), 0.4, (500.0, -200.0)), straight_road()]
    scenarios = [Scenario(m, 0.1, []) for m in [*maps, maps[0]]]  # the last repeats map 0
    rasters = SceneRasterizers(scenarios, SPEC, max_device_maps=3)
    scenario = torch.tensor([0, 1, 2, 3, 1, 0, 2])
    shift = torch.tensor([[0.0, 0.0, 0.0], [500.0, -200.0, 0.0], [0.0, 0.0, 0.0]])
    pose = poses_near(7, seed=4) + shift[torch.tensor([0, 1, 2, 0, 1, 0, 2])]
    rasters(pose, scenario)  # the maps' tables go to the device on first use
    with OpCount() as count:
        drawn = rasters(pose, scenario)
    assert count.waits == HOST_READS_PER_CHUNK + 1, count.wait_ops  # and the batch's map ids
    assert len(rasters._tables) == 3  # maps 0 and 3 have the same content: one table
    for k, m in enumerate([*maps, maps[0]]):
        rows = scenario == k
        own = Rasterizer(m, SPEC).rasterize(pose[rows].numpy())
        np.testing.assert_array_equal(drawn[rows].numpy(), own)
    rasters.max_device_maps = 1  # the least recently used maps leave the device
    rasters(pose[:1], scenario[:1])
    assert list(rasters._tables) == [(0, "cpu")]


def test_both_layouts_of_the_fills_running_sums_give_the_same_rasters() -> None:
    """Rows outermost (the CPU) and columns outermost (GPUs, one scan kernel)."""
    m = transformed(l_junction(), 0.3, (0.01, 0.02))
    drawer = VectorDrawer(SPEC, BINARY, torch.device("cpu"), torch.float64)
    table = drawer.table(MapGeometry(m))
    poses = poses_near(12, seed=6)
    drawn = []
    for row_sums in (True, False):
        drawer.row_sums = row_sums
        out = torch.empty((12, 4, *SPEC.size_px), dtype=torch.uint8)
        assert drawer.draw(table, poses, out)
        drawn.append(out)
    assert drawn[0][:, [0, 3]].any()
    assert torch.equal(drawn[0], drawn[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_rasters_agree_with_exact_on_edges() -> None:
    """On CUDA (float32 coordinates, CUDA's sin/cos/FMA) rasters may differ from exact's on
    edge pixels only; on the CPU they are equal."""
    m = transformed(l_junction(), 0.3, (0.01, 0.02))
    poses = poses_near(24, seed=5).numpy()
    exact = Rasterizer(m, SPEC).rasterize(poses, np.uint8)
    cuda = Rasterizer(m, SPEC, mode="torch", device="cuda").rasterize(poses, np.uint8)
    assert off_edge_differences(cuda, exact) == 0
    assert (cuda != exact).mean() < 1e-3
