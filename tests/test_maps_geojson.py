"""Generic GeoJSON + CSV format: the tiny fixture, offsets, round trips through the writer, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from map_files import refusal, write_changed_json

from mapenc.errors import MapFormatError, ScenarioFormatError
from mapenc.maps import LaneType, MarkType, load_map, load_scenario
from mapenc.maps.geojson import (
    offset_polyline,
    read_generic_scenario,
    read_geojson_map,
    write_generic_scene,
)

DATA = Path(__file__).resolve().parents[1] / "data"
TINY = DATA / "fixtures" / "generic_tiny"
SAMPLE = DATA / "av2_sample"


def test_tiny_map() -> None:
    m = load_map(TINY)
    a, b, c = (m.lane(i) for i in "abc")
    assert (a.left_mark, a.right_mark, a.successors) == (MarkType.DASHED, MarkType.SOLID, ("c",))
    assert c.predecessors == ("a",)
    assert b.lane_type is LaneType.BIKE
    # Lane b: width 3.0 around y = 5.25, no boundaries given.
    np.testing.assert_allclose(b.left_boundary, [[0.0, 6.75], [40.0, 6.75]])
    np.testing.assert_allclose(b.right_boundary, [[0.0, 3.75], [40.0, 3.75]])
    # Lane c: default width 3.5; each boundary segment runs 1.75 m beside the bent centerline
    # (mitred at the bend), so its midpoint is 1.75 m from it.
    centre = shapely.LineString(c.centerline)
    for side in (c.left_boundary, c.right_boundary):
        midpoints = 0.5 * (side[1:] + side[:-1])
        assert [centre.distance(shapely.Point(p)) for p in midpoints] == pytest.approx([1.75] * 2)
    assert len(m.crosswalks) == 1 and m.crosswalks[0].area == pytest.approx(36.0)
    assert len(m.road_edges) == 1
    # No drivable_area feature: the union of the lane polygons.
    assert m.area.equals(shapely.union_all([lane.polygon for lane in m.lanes]))


def test_tiny_scenario_dt_from_properties_and_argument() -> None:
    sc = load_scenario(TINY)
    assert sc.dt == pytest.approx(0.1) and sc.num_steps == 8
    bike = sc.track("bike")
    np.testing.assert_array_equal(np.flatnonzero(bike.valid), [0, 1, 5])
    assert (bike.kind, bike.length, bike.width) == ("cyclist", 2.0, 0.7)
    assert bike.velocity is not None and bike.velocity[5] == pytest.approx([5.0, 0.0])
    faster = read_generic_scenario(TINY / "map.geojson", TINY / "tracks.csv", dt=0.5)
    assert faster.dt == 0.5


@pytest.mark.parametrize("distance", [1.0, -2.5])
def test_offset_polyline_keeps_distance_and_side(distance: float) -> None:
    angles = np.linspace(0.0, np.pi / 2, 20)
    arc = np.stack([10 * np.cos(angles), 10 * np.sin(angles)], axis=1)  # counter-clockwise
    moved = offset_polyline(arc, distance)
    # Left of a counter-clockwise arc is towards its centre.
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 10 - distance, rtol=2e-3)


def test_round_trip_av2_sample(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    original = load_scenario(SAMPLE)
    folder = write_generic_scene(original, tmp_path / "scene")
    again = load_scenario(folder)
    assert (again.dt, again.focal_track_id) == (original.dt, original.focal_track_id)
    assert [t.id for t in again.tracks] == [t.id for t in original.tracks]
    for before, after in zip(original.tracks, again.tracks, strict=True):
        np.testing.assert_array_equal(after.valid, before.valid)
        np.testing.assert_array_equal(after.xy, before.xy)
        np.testing.assert_array_equal(after.heading, before.heading)
        np.testing.assert_array_equal(after.velocity, before.velocity)
        assert (after.kind, after.length, after.width, after.category) == (
            before.kind,
            before.length,
            before.width,
            before.category,
        )
    for before_lane, after_lane in zip(original.map.lanes, again.map.lanes, strict=True):
        np.testing.assert_array_equal(after_lane.centerline, before_lane.centerline)
        np.testing.assert_array_equal(after_lane.right_boundary, before_lane.right_boundary)
        assert after_lane.left_mark is before_lane.left_mark
        assert after_lane.successors == before_lane.successors
        assert after_lane.left_neighbor == before_lane.left_neighbor
    assert again.map.area.equals(original.map.area)
    assert all(
        a.equals(b) for a, b in zip(again.map.crosswalks, original.map.crosswalks, strict=True)
    )


def test_round_trip_map_only(tmp_path: Path) -> None:
    m = load_map(TINY)
    folder = write_generic_scene(m, tmp_path / "map_only")
    assert not (folder / "tracks.csv").exists()
    again = load_map(folder)
    assert [lane.id for lane in again.lanes] == ["a", "b", "c"]
    np.testing.assert_array_equal(again.lane("c").left_boundary, m.lane("c").left_boundary)
    np.testing.assert_array_equal(again.road_edges[0], m.road_edges[0])


# ---- bad input ---------------------------------------------------------------------------------


def write_map(tmp_path: Path, change: Any) -> Path:
    return write_changed_json(TINY / "map.geojson", change, tmp_path / "map.geojson")


def lane_a(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["features"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(type="Feature"), "not a GeoJSON FeatureCollection"),
        (lambda d: d.pop("features"), "without a 'features' list"),
        (lambda d: lane_a(d)["properties"].update(type="river"), "unknown properties.type 'river'"),
        (lambda d: lane_a(d).pop("geometry"), r"feature 0 \(lane\): missing key 'geometry'"),
        (lambda d: lane_a(d)["geometry"].update(type="Point"), "geometry type 'Point'"),
        (lambda d: lane_a(d)["geometry"].update(coordinates=[[1.0, 2.0]]), "at least 2 points"),
        (lambda d: lane_a(d)["geometry"].update(coordinates=[[1, "a"], [2, 3]]), "numbers"),
        (lambda d: lane_a(d)["properties"].pop("right_boundary"), "both left_boundary"),
        (lambda d: lane_a(d)["properties"].update(left_mark="wavy"), "'wavy' is not a MarkType"),
        (lambda d: d["features"][1]["properties"].update(width=-1), "width must be a positive"),
        (
            lambda d: d["features"][3]["geometry"].update(coordinates=[[[0, 0], [1, 1], [0, 0]]]),
            "3 distinct points",
        ),
    ],
)
def test_wrong_schema_names_file_and_problem(tmp_path: Path, change: Any, message: str) -> None:
    path = write_map(tmp_path, change)
    assert refusal(read_geojson_map, path, message).path == str(path)


def test_nan_coordinates_refused(tmp_path: Path) -> None:
    path = tmp_path / "map.geojson"
    text = (TINY / "map.geojson").read_text().replace("40.0", "NaN", 1)
    path.write_text(text)
    with pytest.raises(MapFormatError, match="NaN"):
        load_map(path)


@pytest.mark.parametrize("content", [b"", b'{"type": "FeatureCollection", "feat'])
def test_empty_or_truncated(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "map.geojson"
    path.write_bytes(content)
    refusal(read_geojson_map, path, r"empty|truncated")


def test_not_gzip_with_gz_suffix(tmp_path: Path) -> None:
    path = tmp_path / "map.geojson.gz"
    shutil.copy(TINY / "map.geojson", path)
    with pytest.raises(MapFormatError, match="not gzip"):
        read_geojson_map(path)


def test_unclosed_and_self_intersecting_rings_repaired_with_warning(tmp_path: Path) -> None:
    bow_tie = [[20.0, -1.0], [24.0, 8.0], [24.0, -1.0], [20.0, 8.0]]  # unclosed, crossing itself
    path = write_map(tmp_path, lambda d: d["features"][3]["geometry"].update(coordinates=[bow_tie]))
    with pytest.warns(UserWarning) as caught:
        m = read_geojson_map(path)
    messages = " ".join(str(w.message) for w in caught)
    assert "not closed" in messages and "make_valid" in messages
    assert m.crosswalks[0].is_valid and m.crosswalks[0].area == pytest.approx(18.0)


def write_scene(tmp_path: Path, csv_text: str, dt: float | None = 0.1) -> Path:
    folder = tmp_path / "scene"
    folder.mkdir()
    doc = json.loads((TINY / "map.geojson").read_text())
    doc["properties"] = {} if dt is None else {"dt": dt}
    (folder / "map.geojson").write_text(json.dumps(doc))
    (folder / "tracks.csv").write_text(csv_text)
    return folder


HEADER = "track_id,timestep,x,y,heading,kind\n"


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("track_id,timestep,x,y,kind\na,0,1,2,car\n", r"missing columns \['heading'\]"),
        (HEADER + "a,0,1,two,0,car\n", "line 2: column 'y' value 'two' is not a number"),
        (
            HEADER + "a,1,1,2,0,car\nb,1,1,2,0,car\na,0,1,2,0,car\na,1,3,4,0,car\n",
            "lines 2 and 5: two rows for track 'a' at time step 1",
        ),
        (HEADER + "a,0.5,1,2,0,car\n", "line 2: column 'timestep' value '0.5' is not an integer"),
        (HEADER + "a,0,1,inf,0,car\n", "NaN or inf position"),
        (HEADER + "a,0,1,2,0\n", "line 2: 5 fields"),
        (HEADER, "no track rows"),
        ("", "empty file"),
        (HEADER.strip() + ",vx\na,0,1,2,0,car,1\n", r"both columns \['vx', 'vy'\]"),
    ],
)
def test_bad_tracks_csv(tmp_path: Path, csv_text: str, message: str) -> None:
    folder = write_scene(tmp_path, csv_text)
    with pytest.raises(ScenarioFormatError, match=message) as err:
        load_scenario(folder)
    assert err.value.path == str(folder / "tracks.csv")


def test_missing_dt_is_an_error(tmp_path: Path) -> None:
    folder = write_scene(tmp_path, HEADER + "a,0,1,2,0,car\n", dt=None)
    with pytest.raises(ScenarioFormatError, match="no time step"):
        load_scenario(folder)
    assert load_scenario(folder, dt=0.2).dt == 0.2


# ---- what real converters write -----------------------------------------------------------------


def test_null_and_missing_lane_ids_are_no_id(tmp_path: Path) -> None:
    def strip_ids(doc: dict[str, Any]) -> None:
        a, b, c = doc["features"][:3]
        a["properties"]["id"] = None  # lane index 0 -> "0"
        b["properties"]["id"] = None  # lane index 1 -> "1_", as lane c is given the id "1"
        c["properties"]["id"] = "1"
        a["properties"]["successors"] = [None, "1"]
        c["properties"]["predecessors"] = [None]

    m = load_map(write_map(tmp_path, strip_ids))
    assert [lane.id for lane in m.lanes] == ["0", "1_", "1"]
    assert m.lane("0").successors == ("1",) and m.lane("1").predecessors == ()


def test_heading_in_degrees_is_refused_unless_declared(tmp_path: Path) -> None:
    csv_text = HEADER + "a,0,1,2,0,car\na,1,2,2,90,car\n"
    folder = write_scene(tmp_path, csv_text)
    with pytest.raises(
        ScenarioFormatError, match=r"line 3: column 'heading' value 90 is beyond"
    ) as err:
        load_scenario(folder)
    assert err.value.path == str(folder / "tracks.csv") and "--heading-units deg" in str(err.value)
    track = load_scenario(folder, heading_units="deg").track("a")
    np.testing.assert_allclose(track.heading, [0.0, np.pi / 2])
    doc = json.loads((folder / "map.geojson").read_text())
    doc["properties"]["heading_units"] = "deg"
    (folder / "map.geojson").write_text(json.dumps(doc))
    np.testing.assert_allclose(load_scenario(folder).track("a").heading, [0.0, np.pi / 2])
    (folder / "tracks.csv").write_text(HEADER + "a,0,1,2,400,car\n")
    with pytest.raises(ScenarioFormatError, match="value 400 is beyond ±360 degrees"):
        load_scenario(folder)


def test_rows_out_of_time_order_are_sorted(tmp_path: Path) -> None:
    # Track a's rows come latest step first, and its earliest row names its kind.
    csv_text = HEADER + "a,2,3,0,0,unknown\nb,0,9,9,0,pedestrian\na,0,1,0,0,car\na,1,2,0,0,car\n"
    sc = load_scenario(write_scene(tmp_path, csv_text))
    assert [t.id for t in sc.tracks] == ["a", "b"]
    a = sc.track("a")
    assert a.kind == "car"
    np.testing.assert_allclose(a.xy[:, 0], [1.0, 2.0, 3.0])


def test_info_heading_units_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mapenc.cli import main

    folder = write_scene(tmp_path, HEADER + "a,0,1,2,180,car\n")
    assert main(["info", str(folder)]) == 2
    assert "column 'heading'" in capsys.readouterr().err
    assert main(["info", str(folder), "--heading-units", "deg"]) == 0
    assert json.loads(capsys.readouterr().out)["scenario"]["tracks"] == 1
