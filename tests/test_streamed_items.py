"""Streamed items are the in-memory ones: for every sample of the shards, ``StreamingSamples``
(one worker, no shuffling) gives the ``ContextDataset`` item of that sample in the whole data set
held in memory (rasters, anchors, neighbours, kind and polylines), under ``scenario_key`` instead
of ``index`` (and the worker that made it)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from mapenc.data.context import ContextSettings
from mapenc.data.streaming import StreamingSamples
from mapenc.data.trajectory import TrajTask, samples_from_scenarios
from mapenc.maps import Scenario, iter_scenarios
from mapenc.maps.polylines import PolylineSpec
from mapenc.maps.store import write_store_shard
from mapenc.maps.synthetic import make_scenarios
from mapenc.raster import RasterSpec

TASK = TrajTask(stride_steps=20)
SPEC = RasterSpec(
    size_px=(32, 32),
    pixel_size_m=1.0,
    layers=("drivable_area", "lane_boundaries", "centerlines", "lane_heading_sin"),
)
SETTINGS = ContextSettings(
    spec=SPEC,
    task=TASK,
    mode="auto",
    modes=6,
    anchors="lane",
    max_neighbours=4,
    standing=True,
    polylines=PolylineSpec(extent_m=SPEC.extent_m),
)


def assert_streamed_items_equal_in_memory(
    shards: list[Path], scenarios: list[Scenario], cache: Path
) -> None:
    """The stream of ``shards`` (holding ``scenarios`` in this order) item by item against the
    in-memory ContextDataset of all of them."""
    samples = samples_from_scenarios(scenarios, TASK)
    in_memory = SETTINGS.dataset(samples, scenarios, cache)
    stream = StreamingSamples(
        shards,
        TASK,
        SPEC,
        batch_size=1,
        shuffle_buffer=1,
        dataset_of=functools.partial(SETTINGS.dataset, cache_dir=None),
    )
    streamed = list(DataLoader(stream, batch_size=None, num_workers=0))
    assert len(streamed) == len(in_memory)
    for index, batch in enumerate(streamed):
        want = in_memory[index]
        del want["index"]
        assert set(batch) == {*want, "scenario_key", "stream_worker", "stream_workers"}
        for key, value in want.items():
            assert batch[key].dtype == value.dtype, key
            assert torch.equal(batch[key][0], value), (index, key)


def test_streamed_items_equal_the_in_memory_ones_on_synthetic_scenes(tmp_path: Path) -> None:
    scenarios = list(make_scenarios(3, seed=2))
    shards = [tmp_path / "a.scenarios", tmp_path / "b.scenarios"]
    write_store_shard(scenarios[:2], shards[0], "a")
    write_store_shard(scenarios[2:], shards[1], "b")
    # One reader takes the shards in the epoch's shard order.
    order = StreamingSamples(shards, TASK, SPEC).shards_of(0, 1)
    in_order = [sc for shard in order for sc in iter_scenarios(shard)]
    assert_streamed_items_equal_in_memory(shards, in_order, tmp_path / "cache")


@pytest.mark.real_data
def test_streamed_items_equal_the_in_memory_ones_on_waymo_scenarios(
    real_data: Path, tmp_path: Path
) -> None:
    shard = real_data / "waymo" / "womd_scenario_input.tfrecord"
    scenarios = list(iter_scenarios(shard))
    assert_streamed_items_equal_in_memory([shard], scenarios, tmp_path / "cache")
