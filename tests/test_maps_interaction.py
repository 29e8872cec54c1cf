"""The INTERACTION reader: a release folder written by the tests (tiny Lanelet2 map + track CSVs)
and, with MAPENC_REAL_DATA, the shipped recordings (map alignment, pedestrians, info, split)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import shapely
from rasterio.warp import transform

from mapenc.cli import main
from mapenc.data.recordings import file_digest
from mapenc.data.scenario_store import prepare_store
from mapenc.data.split import FIXED_SPLITS_DIR, is_own_recording, location_of, plan_split
from mapenc.data.traj_sources import load_scenarios, scene_names
from mapenc.errors import MapFormatError, ScenarioFormatError
from mapenc.maps import iter_scenarios, load_map, load_scenario
from mapenc.maps.interaction import heading_from_velocity
from mapenc.maps.lanelet2 import crosswalks_from_markings, utm_origin_projection
from mapenc.maps.types import Track

LOCATION = "DR_TEST_Straight"
LANE_Y_M = 1000.0
LANE_HALF_WIDTH_M = 1.75
VEHICLE_HEADER = "track_id,frame_id,timestamp_ms,agent_type,x,y,vx,vy,psi_rad,length,width"
PEDESTRIAN_HEADER = "track_id,frame_id,timestamp_ms,agent_type,x,y,vx,vy"


def lanelet_osm(xs_m: np.ndarray) -> str:
    """A Lanelet2 map of one straight lanelet along +x at y = LANE_Y_M, its nodes' lat/lon made by
    UTM zone 31 minus the UTM coordinates of (0, 0) (EPSG:32631, independent of the reader)."""
    (e0,), (n0,) = transform("EPSG:4326", "EPSG:32631", [0.0], [0.0])
    nodes, ways = [], []
    for way_id, offset in ((100, LANE_HALF_WIDTH_M), (101, -LANE_HALF_WIDTH_M)):
        lon, lat = transform(
            "EPSG:32631", "EPSG:4326", list(xs_m + e0), [LANE_Y_M + offset + n0] * len(xs_m)
        )
        refs = []
        for k, (lo, la) in enumerate(zip(lon, lat, strict=True)):
            node_id = 10 * way_id + k
            nodes.append(f'  <node id="{node_id}" lat="{la:.14f}" lon="{lo:.14f}" />')
            refs.append(f'    <nd ref="{node_id}" />')
        ways.append(
            f'  <way id="{way_id}">\n' + "\n".join(refs) + "\n"
            '    <tag k="type" v="line_thin" />\n    <tag k="subtype" v="solid" />\n  </way>'
        )
    relation = (
        '  <relation id="200">\n    <member type="way" role="left" ref="100" />\n'
        '    <member type="way" role="right" ref="101" />\n'
        '    <tag k="type" v="lanelet" />\n    <tag k="subtype" v="road" />\n  </relation>'
    )
    return (
        '<?xml version="1.0"?>\n<osm version="0.6" generator="lanelet2">\n'
        + "\n".join([*nodes, *ways, relation])
        + "\n</osm>\n"
    )


def vehicle_rows(track_id: str, first_frame: int, frames: int, speed: float) -> list[str]:
    """A car driving along the lane at ``speed`` m/s from x = 910 m."""
    rows = []
    for k in range(frames):
        frame = first_frame + k
        x = 910.0 + speed * 0.1 * k
        rows.append(
            f"{track_id},{frame},{frame * 100},car,{x:.3f},{LANE_Y_M:.3f},{speed},0.0,0.0,4.2,1.8"
        )
    return rows


def walker_rows(track_id: str, first_frame: int, velocity: list[tuple[float, float]]) -> list[str]:
    """An agent of the pedestrian file with the given per-frame velocities."""
    rows, xy = [], np.array([950.0, 1003.0])
    for k, (vx, vy) in enumerate(velocity):
        frame = first_frame + k
        rows.append(
            f"{track_id},{frame},{frame * 100},pedestrian/bicycle,{xy[0]:.3f},{xy[1]:.3f},{vx},{vy}"
        )
        xy = xy + 0.1 * np.array([vx, vy])
    return rows


def write_csv(path: Path, header: str, rows: list[str]) -> None:
    text = "\n".join([header, *rows]) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """An INTERACTION release folder: one location, recording 000 with a pedestrian file (frames
    from 5), recording 001 without one."""
    root = tmp_path / "INTERACTION"
    (root / "maps").mkdir(parents=True)
    (root / "maps" / f"{LOCATION}.osm").write_text(lanelet_osm(np.linspace(900.0, 1000.0, 6)))
    folder = root / "recorded_trackfiles" / LOCATION
    folder.mkdir(parents=True)
    write_csv(
        folder / "vehicle_tracks_000.csv",
        VEHICLE_HEADER,
        vehicle_rows("1", 7, 50, 8.0) + vehicle_rows("2", 10, 30, 5.0),
    )
    walking = [(0.0, 0.0)] * 3 + [(0.0, 1.4)] * 10 + [(0.05, 0.0)] * 3
    riding = [(5.0, 0.0)] * 12
    write_csv(
        folder / "pedestrian_tracks_000.csv",
        PEDESTRIAN_HEADER,
        walker_rows("P1", 5, walking) + walker_rows("P2", 20, riding),
    )
    write_csv(folder / "vehicle_tracks_001.csv.gz", VEHICLE_HEADER, vehicle_rows("1", 1, 50, 10.0))
    return root


def recording(release: Path, number: str = "000", suffix: str = ".csv") -> Path:
    return release / "recorded_trackfiles" / LOCATION / f"vehicle_tracks_{number}{suffix}"


def test_utm_origin_projection_is_utm_minus_the_origin() -> None:
    projection = utm_origin_projection((0.0, 0.0))
    lon = np.array([0.0, 0.0088, 0.0093, 1.5])
    lat = np.array([0.0, 0.0086, 0.0095, 2.0])
    (e0,), (n0,) = transform("EPSG:4326", "EPSG:32631", [0.0], [0.0])
    east, north = transform("EPSG:4326", "EPSG:32631", lon, lat)
    expected = np.stack([np.asarray(east) - e0, np.asarray(north) - n0], axis=1)
    np.testing.assert_allclose(projection.to_city(lon, lat), expected, atol=1e-6)
    np.testing.assert_allclose(projection.to_lonlat(expected), np.stack([lon, lat], 1), atol=1e-10)
    assert projection.origin_lonlat == (0.0, 0.0)


def test_recording_merges_pedestrians_on_the_map_in_the_tracks_frame(release: Path) -> None:
    scene = load_scenario(recording(release))
    assert scene.dt == pytest.approx(0.1)
    assert scene.first_step == 5  # the pedestrian file starts first
    assert scene.num_steps == 7 + 50 - 5
    assert {t.id: t.kind for t in scene.tracks} == {
        "1": "vehicle",
        "2": "vehicle",
        "P1": "pedestrian",
        "P2": "cyclist",
    }
    car = scene.track("1")
    # Step t of the arrays is frame first_step + t: car 1 is first seen at frame 7, x = 910 m.
    assert not car.valid[1] and car.valid[2]
    np.testing.assert_allclose(car.xy[2], [910.0, LANE_Y_M])
    np.testing.assert_allclose(car.xy[2 + 39], [910.0 + 8.0 * 3.9, LANE_Y_M], atol=1e-9)
    assert (car.length, car.width) == (4.2, 1.8)
    assert car.velocity is not None
    np.testing.assert_allclose(car.velocity[2], [8.0, 0.0])
    # The map lands in the tracks' frame: the lane is centred on y = 1000 m, 3.5 m wide.
    (lane,) = scene.map.lanes
    np.testing.assert_allclose(lane.centerline[:, 1], LANE_Y_M, atol=1e-6)
    np.testing.assert_allclose(lane.left_boundary[[0, -1], 0], [900.0, 1000.0], atol=1e-6)
    assert lane.polygon.contains(shapely.Point(car.xy[2]))
    walker = scene.track("P1")
    observed = walker.heading[walker.valid]
    # Standing first: the first walking heading (+y); then +y while walking, held when slow.
    np.testing.assert_allclose(observed, np.pi / 2)
    assert walker.length == pytest.approx(0.7)
    np.testing.assert_allclose(scene.track("P2").heading[scene.track("P2").valid], 0.0)


def test_gzipped_recording_without_pedestrians(release: Path) -> None:
    scene = load_scenario(recording(release, "001", ".csv.gz"))
    assert [t.id for t in scene.tracks] == ["1"]
    assert scene.first_step == 1 and scene.num_steps == 50
    assert scene.map is load_scenario(recording(release)).map  # parsed once per location


def test_heading_from_velocity_holds_the_last_motion() -> None:
    velocity = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.01, 0.0], [-1.0, 0.0], [0, 0]])
    np.testing.assert_allclose(heading_from_velocity(velocity), [np.pi / 4] * 4 + [np.pi, np.pi])
    np.testing.assert_allclose(heading_from_velocity(np.zeros((3, 2))), 0.0)


def test_crosswalks_from_pairs_of_markings_across_the_road() -> None:
    road = shapely.box(0.0, -5.0, 20.0, 5.0)

    def line(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        return np.linspace([x0, y0], [x1, y1], 4)

    markings = [
        line(5.0, -4.0, 5.0, 4.0),  # the two sides of a crossing, 3 m apart
        line(8.0, 4.0, 8.0, -4.0),  # (drawn the other way)
        line(30.0, -4.0, 30.0, 4.0),  # no partner
        line(0.0, 7.0, 20.0, 7.0),  # a sidewalk's lines: parallel, 2 m apart, off the road
        line(0.0, 9.0, 20.0, 9.0),
        line(12.0, -4.0, 12.0, 4.0),  # 0.3 m apart: one line drawn twice, not a crossing
        line(12.3, -4.0, 12.3, 4.0),
    ]
    (crosswalk,) = crosswalks_from_markings(markings, road)
    assert crosswalk.area == pytest.approx(3.0 * 8.0)
    assert crosswalk.bounds == pytest.approx((5.0, -4.0, 8.0, 4.0))


def test_folders_are_found_and_named_by_vehicle_track_file(release: Path) -> None:
    location = release / "recorded_trackfiles" / LOCATION
    for data, prefix in ((release, f"recorded_trackfiles/{LOCATION}/"), (location, "")):
        scenes = load_scenarios([str(data)])
        assert scene_names(scenes, [str(data)]) == [
            f"{prefix}vehicle_tracks_000.csv",
            f"{prefix}vehicle_tracks_001.csv.gz",
        ]
    assert len(list(iter_scenarios(release))) == 2
    assert len(list(iter_scenarios(release / "recorded_trackfiles"))) == 2
    assert load_map(location).lanes[0].id == "200"
    assert load_map(recording(release)).bounds == load_map(location).bounds
    with pytest.raises(MapFormatError, match="holds 2 INTERACTION recordings"):
        load_scenario(location)
    other = release / "recorded_trackfiles" / "DR_TEST_Other"
    shutil.copytree(location, other)
    with pytest.raises(MapFormatError, match="recordings of 2 locations"):
        load_map(release)


def test_info_on_a_location_folder_lists_its_recordings(
    release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = release / "recorded_trackfiles" / LOCATION
    assert main(["info", str(location)]) == 0
    summaries = json.loads(capsys.readouterr().out)["scenarios"]
    assert [s["scenario"]["source"] for s in summaries] == [
        str(recording(release)),
        str(recording(release, "001", ".csv.gz")),
    ]
    assert [s["scenario"]["first_step"] for s in summaries] == [5, 1]
    assert summaries[0]["scenario"]["kinds"] == {"vehicle": 2, "pedestrian": 1, "cyclist": 1}


def test_split_keeps_each_track_file_a_recording_and_drops_copies(release: Path) -> None:
    folder = release / "recorded_trackfiles" / LOCATION
    # Recording 002 repeats the car of 001 (content grouping would chain them): still its own.
    write_csv(folder / "vehicle_tracks_002.csv", VEHICLE_HEADER, vehicle_rows("9", 1, 60, 10.0))
    # A plain copy of the gzipped 001 is the same recording given twice: dropped.
    write_csv(folder / "vehicle_tracks_003.csv", VEHICLE_HEADER, vehicle_rows("1", 1, 50, 10.0))
    paths = [str(release)]
    scenes = load_scenarios(paths)
    names = scene_names(scenes, paths)
    plan = plan_split(scenes, names)
    prefix = f"recorded_trackfiles/{LOCATION}/"
    assert set(plan.dropped) == {prefix + "vehicle_tracks_003.csv"}
    assert "vehicle_tracks_001.csv.gz" in plan.dropped[prefix + "vehicle_tracks_003.csv"]
    kept = [n for n in names if n not in plan.dropped]
    assert len({plan.recording[n] for n in kept}) == 3
    assert {plan.location[n] for n in names} == {LOCATION}


def test_a_store_of_a_release_keeps_locations_and_track_files_as_recordings(
    release: Path, tmp_path: Path
) -> None:
    folder = release / "recorded_trackfiles" / LOCATION
    # Repeats the car of 001: content grouping would chain them, a track file stays its own.
    write_csv(folder / "vehicle_tracks_002.csv", VEHICLE_HEADER, vehicle_rows("9", 1, 60, 10.0))
    paths, store = [str(release)], tmp_path / "store"
    prepare_store(paths, store, progress=False)
    raw, back = load_scenarios(paths), load_scenarios([str(store)])
    names = scene_names(raw, paths)
    assert scene_names(back, [str(store)]) == names
    assert all(is_own_recording(scene) for scene in back)
    plan = plan_split(back, names)
    assert plan == plan_split(raw, names)
    assert len(set(plan.recording.values())) == 3 and set(plan.location.values()) == {LOCATION}


def test_location_of_a_release_folder_name() -> None:
    assert location_of(f"recorded_trackfiles/{LOCATION}/vehicle_tracks_000.csv") == LOCATION
    assert location_of(f"INTERACTION/recorded_trackfiles/{LOCATION}/x.csv") == LOCATION
    assert location_of("US101/a.xml.gz") == "US101"
    assert location_of("vehicle_tracks_000.csv") == ""


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


VEHICLES, PEDESTRIANS = "vehicle_tracks_000.csv", "pedestrian_tracks_000.csv"


@pytest.mark.parametrize(
    ("edited", "old", "new", "named", "message"),
    [
        (PEDESTRIANS, ",600,", ",650,", PEDESTRIANS, "line 3: timestamp_ms 650 disagrees"),
        (VEHICLES, ",psi_rad,", ",heading,", VEHICLES, "missing columns \\['psi_rad'\\]"),
        (VEHICLES, "\n2,", "\nP1,", PEDESTRIANS, "'P1'.* also vehicle ids"),
        (VEHICLES, "\n1,8,800,", "\n1,7,700,", VEHICLES, "duplicate row for track '1'"),
        (VEHICLES, ",910.000,", ",x,", VEHICLES, "column 'x' value 'x' is not a number"),
    ],
)
def test_bad_files_are_named(
    release: Path, edited: str, old: str, new: str, named: str, message: str
) -> None:
    _rewrite(release / "recorded_trackfiles" / LOCATION / edited, old, new)
    with pytest.raises(ScenarioFormatError, match=message) as caught:
        load_scenario(recording(release))
    assert caught.value.path.endswith(named)


def test_missing_map_is_named(release: Path) -> None:
    (release / "maps" / f"{LOCATION}.osm").unlink()
    with pytest.raises(MapFormatError, match=f"no map for location {LOCATION}") as caught:
        load_scenario(recording(release))
    assert "vehicle_tracks_000.csv" in str(caught.value)


# -- the shipped recordings -------------------------------------------------------------------


def raw_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a shipped track file, read with the csv module alone."""
    with gzip.open(path, "rt") as handle:
        return list(csv.DictReader(io.StringIO(handle.read())))


def first_recordings(root: Path) -> Iterator[Path]:
    """The first vehicle track file of every location present."""
    for folder in sorted((root / "recorded_trackfiles").iterdir()):
        files = sorted(folder.glob("vehicle_tracks_*.csv*"))
        if files:
            yield files[0]


@pytest.fixture(scope="module")
def interaction(real_data: Path) -> Path:
    root = real_data / "interaction"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return root


@pytest.mark.real_data
def test_shipped_maps_hold_the_vehicles(interaction: Path) -> None:
    for vehicle_csv in first_recordings(interaction):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lanelet polygons repaired
            scene = load_scenario(vehicle_csv)
        lanes = shapely.union_all([lane.polygon for lane in scene.map.lanes])
        rows = raw_rows(vehicle_csv)
        xy = np.array([[float(r["x"]), float(r["y"])] for r in rows])
        inside = shapely.contains_xy(lanes, xy[:, 0], xy[:, 1]).mean()
        assert inside >= 0.9, f"{vehicle_csv}: {inside:.1%} of vehicle positions in lanelets"
        for crosswalk in scene.map.crosswalks:  # drawn as marking pairs, across the lanes
            assert 10.0 < crosswalk.area < 100.0
            assert crosswalk.intersection(lanes).area >= 0.25 * crosswalk.area


@pytest.mark.real_data
def test_shipped_recording_merges_its_pedestrian_file(interaction: Path) -> None:
    folder = interaction / "recorded_trackfiles" / "DR_USA_Roundabout_FT"
    vehicles = raw_rows(folder / "vehicle_tracks_000.csv.gz")
    others = raw_rows(folder / "pedestrian_tracks_000.csv.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scene = load_scenario(folder / "vehicle_tracks_000.csv.gz")
    frames = [int(r["frame_id"]) for r in vehicles + others]
    assert scene.first_step == min(frames)
    assert scene.num_steps == max(frames) - min(frames) + 1
    assert scene.dt == pytest.approx(0.1)
    ids = {t.id: t.kind for t in scene.tracks}
    assert len(ids) == len(scene.tracks)
    assert {i for i, k in ids.items() if k == "vehicle"} == {r["track_id"] for r in vehicles}
    assert {i for i, k in ids.items() if k != "vehicle"} == {r["track_id"] for r in others}
    assert {k for k in ids.values() if k != "vehicle"} == {"pedestrian", "cyclist"}
    row = others[len(others) // 2]
    track = scene.track(row["track_id"])
    t = int(row["frame_id"]) - scene.first_step
    np.testing.assert_allclose(track.xy[t], [float(row["x"]), float(row["y"])])
    assert sum(int(t.valid.sum()) for t in scene.tracks) == len(vehicles) + len(others)


@pytest.mark.real_data
def test_info_on_a_shipped_recording(interaction: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = (
        interaction
        / "recorded_trackfiles"
        / "DR_USA_Intersection_EP0"
        / "vehicle_tracks_000.csv.gz"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["info", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["map"]["source"].endswith("maps/DR_USA_Intersection_EP0.osm")
    assert summary["scenario"]["dt_s"] == pytest.approx(0.1)
    assert summary["scenario"]["first_step"] == 1
    assert set(summary["scenario"]["kinds"]) <= {"vehicle", "pedestrian", "cyclist"}


@pytest.mark.real_data
@pytest.mark.slow
def test_split_of_the_release_folder(
    interaction: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two locations, to keep the test short; the release layout as shipped.
    release = tmp_path / "release"
    for location in ("DR_CHN_Roundabout_LN", "DR_USA_Intersection_EP1"):
        shutil.copytree(
            interaction / "recorded_trackfiles" / location,
            release / "recorded_trackfiles" / location,
        )
        (release / "maps").mkdir(exist_ok=True)
        shutil.copy(interaction / "maps" / f"{location}.osm", release / "maps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["split", "--data", str(release), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    files = sorted(
        p.relative_to(release).as_posix()
        for p in (release / "recorded_trackfiles").glob("*/vehicle_tracks_*")
    )
    parts = [listing[part] for part in ("train", "val", "test")]
    assert sorted(name for part in parts for name in part) == files and not listing["dropped"]
    for part in parts:
        assert {name.split("/")[1] for name in part} == {
            "DR_CHN_Roundabout_LN",
            "DR_USA_Intersection_EP1",
        }
    # No test or val agent drove through train: no track shares 10 moving positions (1 s) at 1 cm
    # with a train track (two tracks of one vehicle share every one; chance gives a few at most).
    scenes = load_scenarios([str(release)])
    names = scene_names(scenes, [str(release)])
    train_track_at: dict[tuple[int, int], tuple[str, str]] = {}
    for name, scene in zip(names, scenes, strict=True):
        if name in listing["train"]:
            for track in scene.tracks:
                train_track_at |= dict.fromkeys(moving_points_cm(track), (name, track.id))
    for name, scene in zip(names, scenes, strict=True):
        if name not in listing["train"]:
            for track in scene.tracks:
                hits = Counter(train_track_at.get(p) for p in moving_points_cm(track))
                hits.pop(None, None)
                assert max(hits.values(), default=0) < 10, (name, track.id, hits.most_common(1))


def moving_points_cm(track: Track) -> set[tuple[int, int]]:
    """Positions (rounded to 1 cm) where ``track`` moved more than 5 cm since its previous step."""
    xy = track.xy[track.valid]
    moving = np.r_[False, np.linalg.norm(np.diff(xy, axis=0), axis=1) > 0.05]
    return set(map(tuple, np.round(xy[moving] * 100).astype(np.int64).tolist()))


@pytest.mark.real_data
def test_fixed_split_lists_every_shipped_recording_whole(interaction: Path) -> None:
    document = json.loads((FIXED_SPLITS_DIR / "interaction.json").read_text())
    entries = {entry["sha256"]: entry for entry in document["files"]}
    shipped = sorted((interaction / "recorded_trackfiles").glob("*/vehicle_tracks_*.csv*"))
    assert len(entries) == len(shipped)
    parts: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for path in shipped:
        entry = entries[file_digest(str(path))]
        assert entry["name"] == path.relative_to(interaction).as_posix()
        assert entry["location"] == path.parent.name
        parts[entry["split"]].add(entry["location"])
    assert len({entry["recording"] for entry in entries.values()}) == len(shipped)
    locations = {path.parent.name for path in shipped}
    assert parts == {"train": locations, "val": locations, "test": locations}
