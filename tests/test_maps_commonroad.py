"""CommonRoad 2020a reader: the tiny fixture, bad input, and the real NGSIM / OSM-SUMO /
INTERACTION / inD files (through MAPENC_REAL_DATA)."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import shapely
from defusedxml.ElementTree import parse as defused_parse

from mapenc.errors import MapFormatError, ScenarioFormatError
from mapenc.maps import LaneType, MarkType, load_map, load_scenario
from mapenc.maps.commonroad import read_commonroad_map, read_commonroad_scenario

TINY = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "commonroad_tiny.xml"
TINY_TEXT = TINY.read_text()

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE commonRoad [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<commonRoad timeStepSize="0.1">&lol4;</commonRoad>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE commonRoad [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<commonRoad timeStepSize="0.1">&secret;</commonRoad>
"""


def write(tmp_path: Path, text: str, name: str = "scenario.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def mutated(pattern: str, replacement: str) -> str:
    """The fixture text with the first match of the regex ``pattern`` replaced."""
    text, count = re.subn(pattern, replacement, TINY_TEXT, count=1)
    assert count == 1, pattern
    return text


def first_point_of_lanelet_1(x: str) -> str:
    """The fixture with lanelet 1's first left-bound x replaced by ``x``."""
    return mutated(r"<x>0\.0</x>", f"<x>{x}</x>")


def test_tiny_map_lanes_marks_and_links() -> None:
    m = read_commonroad_map(TINY)
    assert [lane.id for lane in m.lanes] == ["1", "2", "3"]
    lane1, lane2, lane3 = m.lanes
    assert (lane1.left_mark, lane1.right_mark) == (MarkType.DASHED, MarkType.SOLID)
    assert lane2.left_mark is MarkType.SOLID  # broad_solid
    assert lane2.lane_type is LaneType.BUS
    assert lane1.successors == ("3",) and lane3.predecessors == ("1",)
    assert (lane1.left_neighbor, lane2.right_neighbor) == ("2", "1")
    np.testing.assert_allclose(lane1.left_boundary, [[0, 3.5], [10, 3.5], [20, 3.5]])
    np.testing.assert_allclose(lane1.centerline[:, 1], 1.75)
    np.testing.assert_allclose(lane1.centerline[[0, -1], 0], [0.0, 20.0])


def test_crosswalk_lanelet_is_a_crosswalk_not_a_lane() -> None:
    m = read_commonroad_map(TINY)
    assert "4" not in {lane.id for lane in m.lanes}
    assert len(m.crosswalks) == 1
    assert m.crosswalks[0].equals(shapely.box(28, 0, 32, 3.5))


def test_drivable_area_is_the_union_of_lanelets() -> None:
    m = read_commonroad_map(TINY)
    assert m.area.area == pytest.approx(3 * 20 * 3.5)
    assert m.area.contains(shapely.Point(30, 1))
    assert not m.area.contains(shapely.Point(30, 5))  # beside lanelet 3, where lanelet 2 ended
    assert m.bounds == (0.0, 0.0, 40.0, 7.0)


def test_tiny_scenario_tracks_on_common_steps() -> None:
    sc = read_commonroad_scenario(TINY)
    assert sc.dt == pytest.approx(0.1)
    assert sc.num_steps == 8
    car, bike = sc.track("100"), sc.track("101")
    assert (car.kind, bike.kind) == ("vehicle", "cyclist")
    assert car.valid.tolist() == [True] * 6 + [False] * 2
    assert bike.valid.tolist() == [False] * 3 + [True] * 5
    assert np.isnan(bike.xy[:3]).all() and np.isnan(bike.heading[:3]).all()
    np.testing.assert_allclose(bike.xy[3:, 0], 1.0 + 0.3 * np.arange(5))
    np.testing.assert_allclose(bike.xy[3:, 1], 5.25)
    assert bike.velocity is not None
    np.testing.assert_allclose(bike.velocity[3:], [[3.0, 0.0]] * 5)
    assert (car.length, car.width) == (4.5, 1.8)
    ids, poses = sc.poses_at(4)
    assert ids == ["100", "101"] and poses.shape == (2, 3)


def test_velocity_follows_the_orientation(tmp_path: Path) -> None:
    turned = mutated(r"<orientation>\s*<exact>0\.0</exact>", "<orientation><exact>1.5</exact>")
    car = read_commonroad_scenario(write(tmp_path, turned)).track("100")
    assert car.velocity is not None
    np.testing.assert_allclose(car.velocity[0], 5.0 * np.array([np.cos(1.5), np.sin(1.5)]))


def test_gzip_and_dispatch_agree(tmp_path: Path) -> None:
    gz = tmp_path / "tiny.xml.gz"
    gz.write_bytes(gzip.compress(TINY.read_bytes()))
    plain, zipped = load_scenario(TINY), load_scenario(gz)
    assert [t.id for t in plain.tracks] == [t.id for t in zipped.tracks]
    np.testing.assert_array_equal(plain.track("101").xy, zipped.track("101").xy)
    assert load_map(gz).area.equals(plain.map.area)


BAD_MAPS: dict[str, tuple[Callable[[], str], str]] = {
    "truncated": (lambda: TINY_TEXT[: len(TINY_TEXT) // 2], "malformed or truncated"),
    "no lanelets": (lambda: '<commonRoad timeStepSize="0.1"></commonRoad>', "no <lanelet>"),
    "nan": (lambda: first_point_of_lanelet_1("nan"), "NaN or inf"),
    "inf": (lambda: first_point_of_lanelet_1("-inf"), "NaN or inf"),
    "not a number": (lambda: first_point_of_lanelet_1("zero"), "not a number"),
    "missing y": (
        lambda: mutated(r"<y>3\.5</y>", ""),
        "one x and one y",
    ),
    "one-point bound": (
        lambda: mutated(r"<point>\s*<x>20\.0</x>\s*<y>7\.0</y>\s*</point>", ""),
        "at least 2 points",
    ),
    "dangling successor": (
        lambda: mutated('<successor ref="3"', '<successor ref="99"'),
        "missing lanelet",
    ),
    "billion laughs": (lambda: BILLION_LAUGHS, "unsafe XML"),
    "external entity": (lambda: EXTERNAL_ENTITY, "unsafe XML"),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", sorted(BAD_MAPS))
def test_bad_map_raises_naming_the_file(tmp_path: Path, case: str) -> None:
    make_text, problem = BAD_MAPS[case]
    text = make_text()
    path = write(tmp_path, text, "bad.xml")
    with pytest.raises(MapFormatError, match=problem) as info:
        read_commonroad_map(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "empty file"), (TINY.read_bytes(), "not gzip-compressed")],
)
def test_empty_and_fake_gzip_files(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.xml.gz"
    path.write_bytes(content)
    with pytest.raises(MapFormatError, match=problem):
        read_commonroad_map(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (mutated('timeStepSize="0.1"', ""), "timeStepSize"),
        (mutated('timeStepSize="0.1"', 'timeStepSize="-1"'), "timeStepSize"),
        (mutated(r"<time>\s*<exact>0</exact>\s*</time>", ""), "time missing"),
        (TINY_TEXT[: TINY_TEXT.index("<dynamicObstacle")] + "</commonRoad>", "map-only"),
    ],
)
def test_bad_scenario_raises(tmp_path: Path, text: str, problem: str) -> None:
    assert text != TINY_TEXT
    path = write(tmp_path, text)
    with pytest.raises(ScenarioFormatError, match=problem):
        read_commonroad_scenario(path)


def test_self_intersecting_lanelet_is_repaired_with_a_warning(tmp_path: Path) -> None:
    # Swap lanelet 3's right-bound end to the left side: its polygon becomes a bow tie.
    bow_tie = mutated(r"<x>40\.0</x>\s*<y>0\.0</y>", "<x>40.0</x><y>9.0</y>")
    with pytest.warns(
        UserWarning, match=r"1 invalid polygon\(s\) repaired with make_valid: lanelet 3$"
    ):
        m = read_commonroad_map(write(tmp_path, bow_tie))
    assert m.area.is_valid and m.area.area > 2 * 20 * 3.5


# ---- real data -------------------------------------------------------------------------------


def manifest(real_data: Path) -> list[dict[str, str]]:
    with open(real_data / "commonroad_ngsim" / "MANIFEST.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.filterwarnings("ignore:.*invalid polygon")
def test_every_ngsim_scenario_matches_its_manifest(real_data: Path) -> None:
    rows = manifest(real_data)
    assert len(rows) == 122
    for row in rows:
        sc = read_commonroad_scenario(real_data / "commonroad_ngsim" / row["file"])
        assert len(sc.map.lanes) + len(sc.map.crosswalks) == int(row["n_lanelets"]), row["file"]
        assert len(sc.tracks) == int(row["n_obstacles"]), row["file"]
        assert sc.dt == pytest.approx(0.1)
        assert sc.num_steps == int(row["last_time_step"]) + 1, row["file"]
        assert max(int(t.valid.sum()) for t in sc.tracks) == int(row["traj_len_max"]), row["file"]
        assert {t.kind for t in sc.tracks} == {"vehicle"}


@pytest.mark.real_data
def test_ngsim_positions_equal_the_raw_xml(real_data: Path) -> None:
    path = real_data / "commonroad_ngsim" / manifest(real_data)[0]["file"]
    sc = read_commonroad_scenario(path)
    with gzip.open(path) as f:
        root = defused_parse(f).getroot()
    checked = 0
    for obstacle in root.iterfind("dynamicObstacle"):
        states = [obstacle.find("initialState"), *obstacle.iterfind("trajectory/state")]
        track = sc.track(obstacle.get("id", ""))
        for state in states:
            assert state is not None
            step = int(state.findtext("time/exact", ""))
            x = float(state.findtext("position/point/x", ""))
            y = float(state.findtext("position/point/y", ""))
            assert track.valid[step]
            assert track.xy[step].tolist() == [x, y]
            checked += 1
    assert checked == sum(int(t.valid.sum()) for t in sc.tracks) > 0


@pytest.mark.real_data
@pytest.mark.filterwarnings("ignore:.*invalid polygon")
def test_interaction_and_ind_maps_load(real_data: Path) -> None:
    paths = sorted((real_data / "maps_only").glob("*_commonroad/*.xml"))
    assert len(paths) == 16
    for path in paths:
        m = load_map(path)
        assert len(m.lanes) >= 10, path
        assert m.area.is_valid and m.area.area > 100.0, path
        with pytest.raises(ScenarioFormatError, match="map-only"):
            load_scenario(path)


@pytest.mark.real_data
@pytest.mark.filterwarnings("ignore:.*invalid polygon")
def test_a_sample_of_osm_sumo_scenarios_loads(real_data: Path) -> None:
    paths = sorted((real_data / "commonroad_osm_sumo").glob("*.xml.gz"))
    assert len(paths) == 1134
    for path in paths[::60]:
        sc = load_scenario(path)
        assert len(sc.map.lanes) >= 4, path
        assert sc.map.area.is_valid and not sc.map.area.is_empty, path
        assert sc.tracks and sc.dt == pytest.approx(0.1), path
        for track in sc.tracks:
            assert np.isfinite(track.xy[track.valid]).all(), path


def test_committed_fixtures_match_their_generator(tmp_path: Path) -> None:
    script = TINY.parent / "make_commonroad_lanelet2.py"
    spec = importlib.util.spec_from_file_location("make_commonroad_lanelet2", script)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    for build, name in (
        (generator.commonroad_tiny, TINY.name),
        (generator.lanelet2_tiny, "lanelet2_tiny.osm"),
    ):
        generator.write(build(), tmp_path / name)
        assert (tmp_path / name).read_bytes() == (TINY.parent / name).read_bytes(), name
