"""The raster cache: keyed by content, verified on reuse, safe in a shared folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from traj_scenes import moving_track, scenario_of

from mapenc.data.raster_cache import raster_cache_key
from mapenc.data.traj_dataset import TrajectoryDataset
from mapenc.data.trajectory import NGSIM_TASK, TrajSamples, samples_from_scenarios
from mapenc.errors import DataError
from mapenc.maps import load_scenario
from mapenc.maps.geojson import write_generic_scene
from mapenc.maps.types import Scenario
from mapenc.raster import RasterSpec

SPEC = RasterSpec(size_px=(16, 24), pixel_size_m=2.0, layers=("drivable_area", "centerlines"))


def scene() -> Scenario:
    return scenario_of(moving_track("a", (-40.0, 0.5), 0.0, 8.0, 61))


def dataset(cache: Path, scenes: list[Scenario]) -> TrajectoryDataset:
    samples = samples_from_scenarios(scenes, NGSIM_TASK)
    return TrajectoryDataset(samples, scenes, SPEC, NGSIM_TASK, cache, mode="fast", progress=False)


def test_editing_the_map_file_keeping_size_and_mtime_gives_new_rasters(tmp_path: Path) -> None:
    folder = write_generic_scene(scene(), tmp_path / "scene")
    map_file = folder / "map.geojson"
    before = dataset(tmp_path / "cache", [load_scenario(folder)])
    rasters_before = np.array(before.rasters)
    # Move the lane's left boundary from y = 2 m to y = 9 m: same byte count, same mtime.
    stat = map_file.stat()
    text = map_file.read_text()
    edited = text.replace(", 2.0]", ", 9.0]")
    assert len(edited) == len(text) and edited != text
    map_file.write_text(edited)
    os.utime(map_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = dataset(tmp_path / "cache", [load_scenario(folder)])
    assert after.cache_path != before.cache_path
    assert not np.array_equal(np.array(after.rasters), rasters_before)


def test_key_covers_track_ids_and_time_steps() -> None:
    scenes = [scene()]
    samples = samples_from_scenarios(scenes, NGSIM_TASK)
    key = raster_cache_key(samples, scenes, SPEC, NGSIM_TASK)
    renamed = TrajSamples(**{**samples.__dict__, "track_ids": ("b",) * len(samples)})
    shifted = TrajSamples(**{**samples.__dict__, "time_step": samples.time_step + 1})
    assert raster_cache_key(renamed, scenes, SPEC, NGSIM_TASK) != key
    assert raster_cache_key(shifted, scenes, SPEC, NGSIM_TASK) != key
    other_scene = [scenario_of(moving_track("a", (-40.0, 1.5), 0.0, 8.0, 61))]
    assert raster_cache_key(samples, other_scene, SPEC, NGSIM_TASK) != key


def test_same_size_corrupted_cache_is_rebuilt(tmp_path: Path) -> None:
    first = dataset(tmp_path, [scene()])
    good = np.array(first.rasters)
    raw = bytearray(first.cache_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    first.cache_path.write_bytes(bytes(raw))
    # A new process would check it; forget this one's record of the verified file.
    from mapenc.data import raster_cache

    raster_cache._VERIFIED.clear()
    with pytest.warns(UserWarning, match="does not match its stored digest"):
        second = dataset(tmp_path, [scene()])
    assert np.array_equal(np.array(second.rasters), good)


def test_planted_link_at_the_metadata_name_is_not_written_through(tmp_path: Path) -> None:
    scenes = [scene()]
    samples = samples_from_scenarios(scenes, NGSIM_TASK)
    key = raster_cache_key(samples, scenes, SPEC, NGSIM_TASK, "fast")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"rasters-{key}.json").symlink_to(victim)
    with pytest.warns(UserWarning, match="a link"):
        ds = dataset(cache, scenes)
    assert victim.read_text() == "precious"
    meta = ds.cache_path.with_suffix(".json")
    assert not meta.is_symlink() and json.loads(meta.read_text())["shape"] == list(ds.shape)


def test_orphaned_temporary_files_are_removed_at_the_next_start(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    orphan = tmp_path / f".rasters-0.u8.{dead_pid}.abc123.tmp"
    orphan.write_bytes(b"half a cache")
    live = tmp_path / f".rasters-1.u8.{os.getpid()}.def456.tmp"
    live.write_bytes(b"being written")
    dataset(tmp_path, [scene()])
    assert not orphan.exists()
    assert live.exists()


def test_cache_folder_naming_a_file_is_a_data_error(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="is a file; the raster cache folder must be a folder"):
        dataset(blocker, [scene()])
