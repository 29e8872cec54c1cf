"""The scenario store: scenarios written by ``mapenc prepare`` read back unchanged (map content,
tracks, metadata and rasters), on synthetic scenes and on the real Waymo, AV2 and INTERACTION
files; reuse of converted sources, corrupt, foreign and old-version files; a store splits as the
sources it was prepared from (names, locations, fixed split files)."""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import shapely

from mapenc.cli import main
from mapenc.data import split
from mapenc.data.raster_cache import content_digest
from mapenc.data.scenario_store import prepare_store, source_digest, source_files
from mapenc.data.split import SplitPlan, fixed_plan, plan_split, write_fixed_split
from mapenc.data.traj_sources import load_scenarios, plan_for, scene_names
from mapenc.errors import MapFormatError
from mapenc.maps import Scenario, iter_scenarios, load_scenario
from mapenc.maps.geojson import write_generic_scene
from mapenc.maps.store import STORE_VERSION, StoreShard, write_store_shard
from mapenc.maps.synthetic import make_scenarios
from mapenc.raster import Rasterizer, RasterSpec

SPEC = RasterSpec(
    size_px=(96, 96),
    pixel_size_m=0.5,
    layers=("drivable_area", "lane_boundaries", "centerlines", "crosswalks", "lane_heading_sin"),
)


def _same_geometries(a: list[shapely.Geometry], b: list[shapely.Geometry]) -> None:
    assert len(a) == len(b)
    for g, h in zip(a, b, strict=True):
        assert shapely.equals_exact(g, h, tolerance=0.0)


def assert_same_scenario(read: Scenario, original: Scenario) -> None:
    """Every field of the scenario, its tracks and its map is equal, and so are its rasters."""
    for name in ("dt", "focal_track_id", "scenario_id", "current_step", "first_step"):
        assert getattr(read, name) == getattr(original, name), name
    assert read.ego_track_id == original.ego_track_id
    assert read.tracks_to_predict == original.tracks_to_predict
    assert len(read.tracks) == len(original.tracks)
    for t, u in zip(read.tracks, original.tracks, strict=True):
        assert (t.id, t.kind, t.length, t.width, t.category) == (
            u.id,
            u.kind,
            u.length,
            u.width,
            u.category,
        )
        np.testing.assert_array_equal(t.xy, u.xy)
        np.testing.assert_array_equal(t.heading, u.heading)
        np.testing.assert_array_equal(t.valid, u.valid)
        assert (t.velocity is None) == (u.velocity is None)
        if t.velocity is not None:
            np.testing.assert_array_equal(t.velocity, u.velocity)
    m, n = read.map, original.map
    assert len(m.lanes) == len(n.lanes)
    for a, b in zip(m.lanes, n.lanes, strict=True):
        for name in ("centerline", "left_boundary", "right_boundary"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        for name in (
            "id",
            "left_mark",
            "right_mark",
            "lane_type",
            "predecessors",
            "successors",
            "left_neighbor",
            "right_neighbor",
            "is_intersection",
        ):
            assert getattr(a, name) == getattr(b, name), name
    assert [(r.id, r.mark) for r in m.road_lines] == [(r.id, r.mark) for r in n.road_lines]
    for r, s in zip(m.road_lines, n.road_lines, strict=True):
        np.testing.assert_array_equal(r.points, s.points)
    assert len(m.road_edges) == len(n.road_edges)
    for e, f in zip(m.road_edges, n.road_edges, strict=True):
        np.testing.assert_array_equal(e, f)
    assert [(s.id, s.lanes) for s in m.stop_signs] == [(s.id, s.lanes) for s in n.stop_signs]
    _same_geometries(m.crosswalks, n.crosswalks)
    _same_geometries(m.driveways, n.driveways)
    _same_geometries(m.speed_bumps, n.speed_bumps)
    assert m.drivable_area.equals(n.drivable_area)
    assert m.bounds == n.bounds and m.projection == n.projection and m.source == n.source
    poses = _poses(original)
    for mode in ("exact", "fast"):
        np.testing.assert_array_equal(
            Rasterizer(m, SPEC, mode=mode).rasterize(poses, dtype=np.uint8),
            Rasterizer(n, SPEC, mode=mode).rasterize(poses, dtype=np.uint8),
        )


def _poses(scenario: Scenario) -> np.ndarray:
    """(N, 3) poses of up to 4 agents valid at the middle step."""
    t = scenario.num_steps // 2
    rows = [[*tr.xy[t], tr.heading[t]] for tr in scenario.tracks if tr.valid[t]][:4]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def _round_trip(scenarios: list[Scenario], tmp_path: Path) -> list[Scenario]:
    shard = tmp_path / "test.scenarios"
    assert write_store_shard(scenarios, shard, "test") == len(scenarios)
    return list(iter_scenarios(shard))


def test_synthetic_scenes_come_back_unchanged(tmp_path: Path) -> None:
    scenarios = list(make_scenarios(3, seed=1))
    read = _round_trip(scenarios, tmp_path)
    assert len(read) == 3
    for back, original in zip(read, scenarios, strict=True):
        assert_same_scenario(back, original)


def test_shard_scenarios_are_addressable_and_named_by_the_shard(tmp_path: Path) -> None:
    scenarios = list(make_scenarios(3, seed=2))
    write_store_shard(scenarios, tmp_path / "x.scenarios", "x")
    shard = StoreShard(tmp_path / "x.scenarios")
    assert len(shard) == 3 and shard.source == "x"
    assert_same_scenario(shard.scenario(2), scenarios[2])
    assert shard.scenario(2).source == f"{tmp_path / 'x.scenarios'}#2"
    assert shard.metadata[2]["source"] == scenarios[2].source


def test_corrupt_truncated_and_foreign_files_name_the_file(tmp_path: Path) -> None:
    shard = tmp_path / "c.scenarios"
    write_store_shard(list(make_scenarios(1, seed=3)), shard, "c")
    raw = bytearray(shard.read_bytes())
    raw[-100] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(MapFormatError, match=r"c\.scenarios.*corrupt"):
        StoreShard(shard)
    shard.write_bytes(bytes(raw[:-5000]))
    with pytest.raises(MapFormatError, match=r"c\.scenarios.*truncated"):
        StoreShard(shard)
    foreign = tmp_path / "f.scenarios"
    foreign.write_bytes(b"PK\x03\x04 not a store")
    with pytest.raises(MapFormatError, match=r"f\.scenarios.*not a scenario-store shard"):
        list(iter_scenarios(foreign))


def test_arrays_read_back_are_writable_and_writes_stay_in_the_process(tmp_path: Path) -> None:
    """The shard is mapped copy-on-write: a caller may change a track in place, and neither the
    file nor a later read of it sees the change."""
    shard = tmp_path / "w.scenarios"
    write_store_shard(list(make_scenarios(1, seed=5)), shard, "w")
    on_disk = shard.read_bytes()
    (first,) = list(iter_scenarios(shard))
    track = first.tracks[0]
    original = track.xy.copy()
    track.xy[:] += 1000.0
    assert shard.read_bytes() == on_disk
    (again,) = list(iter_scenarios(shard))
    np.testing.assert_array_equal(again.tracks[0].xy, original)


def test_prepare_converts_once_and_reuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = tmp_path / "scenes"
    for i, scenario in enumerate(make_scenarios(2, seed=4)):
        write_generic_scene(scenario, sources / f"scene{i}")
    out = tmp_path / "store"
    assert main(["prepare", "--data", str(sources), "--out", str(out)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["sources"] == 2 and first["written"] == 2 and first["scenarios"] == 2
    assert main(["prepare", "--data", str(sources), "--out", str(out), "--workers", "2"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["written"] == 0 and second["reused"] == 2
    shards = sorted(out.glob("*.scenarios"))
    assert len(shards) == 2
    for shard, folder in zip(shards, sorted(sources.iterdir()), strict=True):
        (back,) = list(iter_scenarios(shard))
        assert_same_scenario(back, load_scenario(folder))


def _quiet(scenarios: object) -> list[Scenario]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(scenarios)  # type: ignore[call-overload]


@pytest.mark.real_data
def test_real_waymo_av2_and_interaction_come_back_unchanged(
    real_data: Path, tmp_path: Path
) -> None:
    shard = sorted((real_data / "waymo" / "womd_210").glob("*.gz"))[0]
    waymo = _quiet(islice(iter_scenarios(shard), 3))
    av2 = [
        load_scenario(folder)
        for folder in sorted((real_data / "av2" / "forecasting").iterdir())
        if folder.is_dir()
    ][:1]
    sensor = sorted(p for p in (real_data / "av2" / "sensor_logs").iterdir() if p.is_dir())[:1]
    interaction = sorted(
        (real_data / "interaction" / "recorded_trackfiles" / "DR_USA_Roundabout_FT").glob(
            "vehicle_tracks_*"
        )
    )[:1]
    originals = waymo + av2 + _quiet(load_scenario(p) for p in sensor + interaction)
    for back, original in zip(_round_trip(originals, tmp_path), originals, strict=True):
        assert_same_scenario(back, original)


@pytest.mark.real_data
def test_real_prepare_of_a_waymo_shard_in_two_processes(real_data: Path, tmp_path: Path) -> None:
    sources = sorted((real_data / "waymo").glob("*.tfrecord"))
    prepared = prepare_store(sources, tmp_path / "store", workers=2, progress=False)
    assert [p.scenarios for p in prepared] == [1, 1]
    for p in prepared:
        (back,) = list(iter_scenarios(p.shard))
        assert_same_scenario(back, _quiet(iter_scenarios(p.source))[0])


def test_stored_drivable_area_is_decoded_when_read_and_survives_pickling(tmp_path: Path) -> None:
    (original,) = list(make_scenarios(1, seed=6))
    (read,) = _round_trip([original], tmp_path)
    copy = pickle.loads(pickle.dumps(read))  # DataLoader workers receive maps this way
    assert copy.map.drivable_area.equals(original.map.drivable_area)
    assert shapely.union_all(read.map.drivable_parts).equals(original.map.drivable_area)


def test_source_digest_follows_every_file_the_source_is_read_from(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    (folder / "map").mkdir(parents=True)
    (folder / "tracks.parquet").write_bytes(b"tracks")
    (folder / "map" / "log_map_archive_1.json").write_bytes(b"{}")
    before = source_digest(folder)
    (folder / "map" / "log_map_archive_1.json").write_bytes(b"{ }")
    assert source_digest(folder) != before


@pytest.mark.real_data
def test_interaction_digest_covers_pedestrians_and_map(real_data: Path) -> None:
    (track_file,) = sorted(
        (real_data / "interaction" / "recorded_trackfiles" / "DR_USA_Intersection_EP0").glob(
            "vehicle_tracks_000*"
        )
    )
    files = {p.name for p in source_files(track_file)}
    assert files >= {track_file.name, "DR_USA_Intersection_EP0.osm"}
    assert any(name.startswith("pedestrian_tracks_000") for name in files)


def test_store_scenarios_share_raster_cache_keys_with_their_source(tmp_path: Path) -> None:
    originals = list(make_scenarios(2, seed=7))
    for back, original in zip(_round_trip(originals, tmp_path), originals, strict=True):
        assert content_digest(back) == content_digest(original)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_prepare_names_an_unreadable_source_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    pytest.importorskip("google_crc32c", reason="the waymo extra is not installed")
    sources = tmp_path / "sources"
    write_generic_scene(next(iter(make_scenarios(1, seed=8))), sources / "scene")
    (sources / "broken.tfrecord").write_bytes(b"\x05" * 40)
    out = tmp_path / "store"
    args = ["prepare", "--data", str(sources), "--out", str(out), "--workers", workers]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("mapenc prepare: error: ") and "broken.tfrecord" in line


def test_a_shard_of_another_version_asks_for_a_new_store(tmp_path: Path) -> None:
    shard = tmp_path / "old.scenarios"
    write_store_shard(list(make_scenarios(1, seed=9)), shard, "old")
    raw = shard.read_bytes()
    current = f'"version": {STORE_VERSION},'.encode()
    assert raw.count(current) == 1
    shard.write_bytes(raw.replace(current, f'"version": {STORE_VERSION - 1},'.encode()))
    with pytest.raises(MapFormatError, match=r"old\.scenarios.*prepare the store again"):
        StoreShard(shard)


def _loaded(path: Path) -> tuple[list[Scenario], list[str]]:
    """The scenes under one data path and their names (map repairs not reported)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scenes = load_scenarios([str(path)])
    return scenes, scene_names(scenes, [str(path)])


def _store_of(data: Path, out: Path) -> tuple[list[Scenario], list[str]]:
    """Prepare ``data`` into a store at ``out``; its scenes and their names, loaded back."""
    prepare_store([data], out, progress=False)
    return _loaded(out)


def test_a_store_keeps_its_sources_names_order_and_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scene folders in two location folders: the store's shards sit flat, in another order.
    data = tmp_path / "data"
    for i, scenario in enumerate(make_scenarios(6, seed=10)):
        write_generic_scene(scenario, data / ("north" if i % 2 else "south") / f"scene{i}")
    raw, names = _loaded(data)
    back, store_names = _store_of(data, tmp_path / "store")
    assert store_names == names  # same names, in the same order
    assert [content_digest(sc) for sc in back] == [content_digest(sc) for sc in raw]
    planned = plan_split(raw, names)
    assert plan_split(back, store_names) == planned
    assert set(planned.location.values()) == {"north", "south"}
    # A fixed split file written from the sources lists the store's scenes too, and back.
    monkeypatch.setattr(split, "FIXED_SPLITS_DIR", tmp_path / "splits")
    write_fixed_split(planned, raw, tmp_path / "splits" / "scenes.json")
    from_raw, from_store = fixed_plan(raw, names), fixed_plan(back, store_names)
    assert from_raw is not None and from_raw.source == "fixed:scenes.json"
    assert from_store == from_raw
    write_fixed_split(planned, back, tmp_path / "splits" / "scenes.json")
    assert fixed_plan(raw, names) == from_raw


def test_a_store_of_a_file_of_many_scenarios_names_each_record(tmp_path: Path) -> None:
    pytest.importorskip("google_crc32c", reason="the waymo extra is not installed")
    from mapenc.maps.waymo_write import write_waymo_shard

    data = tmp_path / "data"
    data.mkdir()
    write_waymo_shard(data / "town.tfrecord", make_scenarios(3, seed=11))
    raw, names = _loaded(data)
    back, store_names = _store_of(data, tmp_path / "store")
    assert store_names == names == [f"town.tfrecord#{i}" for i in range(3)]
    # A fixed split file lists whole files: none applies to records of a file of many.
    assert all(sc.provenance is not None and sc.provenance.sha256 is None for sc in back)
    assert fixed_plan(back, store_names) is None and fixed_plan(raw, names) is None


# Small real files listed in the fixed split files, from several locations (one NGSIM file an
# exact duplicate of another, one without a sample, so both ways of being dropped are covered).
REAL_SUBSETS = {
    "interaction": (
        "recorded_trackfiles/DR_DEU_Merging_MT/vehicle_tracks_005.csv.gz",
        "recorded_trackfiles/DR_USA_Intersection_GL/vehicle_tracks_002.csv.gz",
        "recorded_trackfiles/DR_USA_Intersection_EP0/vehicle_tracks_000.csv.gz",
    ),
    "commonroad_ngsim": (
        "US101/USA_US101-1_1_T-1.xml.gz",
        "Peachtree/USA_Peach-3_1_T-1.xml.gz",
        "Peachtree/USA_Peach-3_4_T-1.xml.gz",
        "Peachtree/USA_Peach-1_1_T-1.xml.gz",
        "Lankershim/USA_Lanker-1_15_T-1.xml.gz",
    ),
}


@pytest.mark.real_data
@pytest.mark.parametrize("data_set", sorted(REAL_SUBSETS))
def test_real_store_splits_as_its_sources(
    real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_set: str
) -> None:
    # A copy of a few files laid out as the data set ships them (maps and pedestrians included):
    # links would be named by where they point.
    data = tmp_path / data_set
    for name in REAL_SUBSETS[data_set]:
        for path in source_files(real_data / data_set / name):
            copy = data / path.relative_to(real_data / data_set)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    raw, names = _loaded(data)
    back, store_names = _store_of(data, tmp_path / "store")
    assert store_names == names
    fixed = plan_for(raw, [str(data)])
    assert fixed.source == f"fixed:{data_set}.json"
    assert plan_for(back, [str(tmp_path / "store")]) == fixed
    locations = {Path(name).parent.name for name in REAL_SUBSETS[data_set]}
    assert set(fixed.location.values()) == locations
    # Planned instead (no fixed split file): the same plan too.
    monkeypatch.setattr(split, "FIXED_SPLITS_DIR", tmp_path / "no_splits")
    planned: SplitPlan = plan_split(raw, names)
    assert plan_split(back, store_names) == planned
    assert planned.source == "computed" and set(planned.location.values()) == locations
