"""Argoverse 2 readers: tiny fixtures, the committed sample, the real sensor-log maps, bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from map_files import refusal, write_changed_json
from shapely.geometry import Point, Polygon

from mapenc.errors import MapencError, MapFormatError, ScenarioFormatError
from mapenc.maps import LaneType, MarkType, load_map, load_scenario
from mapenc.maps.av2 import av2_mark_type, read_av2_map, read_av2_scenario

DATA = Path(__file__).resolve().parents[1] / "data"
TINY = DATA / "fixtures" / "av2_tiny"
TINY_MAP = TINY / "log_map_archive_tiny.json"
SAMPLE = DATA / "av2_sample"
SAMPLE_ID = "0a1e6f0a-1817-4a98-b02e-db8c9327d151"

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def xy_of(points: list[dict[str, float]]) -> np.ndarray:
    return np.array([[p["x"], p["y"]] for p in points])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SOLID_WHITE", MarkType.SOLID),
        ("DASHED_YELLOW", MarkType.DASHED),
        ("DOUBLE_SOLID_YELLOW", MarkType.DOUBLE_SOLID),
        ("DOUBLE_DASH_WHITE", MarkType.DOUBLE_DASHED),
        ("SOLID_DASH_YELLOW", MarkType.SOLID_DASHED),
        ("DASH_SOLID_WHITE", MarkType.DASHED_SOLID),
        ("SOLID_BLUE", MarkType.SOLID),
        ("NONE", MarkType.NONE),
        ("UNKNOWN", MarkType.UNKNOWN),
    ],
)
def test_mark_types_drop_colour(raw: str, expected: MarkType) -> None:
    assert av2_mark_type(raw) is expected


def test_unknown_mark_type_is_an_error() -> None:
    with pytest.raises(MapencError, match="PURPLE_ZIGZAG"):
        av2_mark_type("PURPLE_ZIGZAG")


def test_tiny_map_matches_its_json() -> None:
    raw = json.loads(TINY_MAP.read_text())
    m = read_av2_map(TINY_MAP)
    assert [lane.id for lane in m.lanes] == ["1", "2", "3"]
    lane1 = m.lane("1")
    np.testing.assert_array_equal(
        lane1.right_boundary, xy_of(raw["lane_segments"]["1"]["right_lane_boundary"])
    )
    assert (lane1.left_mark, lane1.right_mark) == (MarkType.DASHED, MarkType.SOLID)
    assert lane1.successors == ("3",)
    assert (lane1.left_neighbor, lane1.right_neighbor) == ("2", None)
    assert m.lane("2").lane_type is LaneType.BIKE
    lane3 = m.lane("3")
    assert lane3.lane_type is LaneType.BUS and lane3.is_intersection
    assert lane3.predecessors == ("1",)
    # Lane 3 has no centerline key: derived midway between boundaries at y = 0 and y = 3.5.
    np.testing.assert_allclose(lane3.centerline[:, 1], 1.75)
    assert lane3.centerline[0, 0] == pytest.approx(40.0)
    assert lane3.centerline[-1, 0] == pytest.approx(60.0)
    # Crossing: edge1 (x=20) + reversed edge2 (x=24) is the 4 m x 9 m rectangle.
    assert m.crosswalks[0].area == pytest.approx(4.0 * 9.0)
    assert m.area.area == pytest.approx(60.0 * 7.0)


def test_tiny_scenario_tracks() -> None:
    sc = load_scenario(TINY)
    assert sc.dt == pytest.approx(0.1)
    assert sc.num_steps == 8
    assert sc.focal_track_id == "car"
    car, ped, bike = (sc.track(i) for i in ("car", "ped", "bike"))
    assert (car.kind, car.category, car.length, car.width) == ("vehicle", 3, 4.5, 2.0)
    assert (ped.length, ped.width) == (0.7, 0.7)
    np.testing.assert_array_equal(np.flatnonzero(bike.valid), [0, 1, 5])
    assert np.isnan(bike.xy[2]).all() and np.isnan(bike.heading[2])
    assert bike.xy[5] == pytest.approx([7.5, 5.25])
    assert car.velocity is not None and car.velocity[3] == pytest.approx([10.0, 0.0])
    assert ped.valid[:2].sum() == 0 and ped.xy[7] == pytest.approx([22.0, -0.5 + 1.05])


def test_committed_sample_counts() -> None:
    m = load_map(SAMPLE)
    assert (len(m.lanes), len(m.crosswalks)) == (71, 6)
    sc = load_scenario(SAMPLE / f"scenario_{SAMPLE_ID}.parquet")
    assert (len(sc.tracks), sc.num_steps) == (58, 110)
    focal = sc.track(str(sc.focal_track_id))
    assert focal.category == 3 and focal.valid.all()


def test_sample_geometry_equals_raw_json() -> None:
    raw = json.loads((SAMPLE / f"log_map_archive_{SAMPLE_ID}.json").read_text())
    m = load_map(SAMPLE)
    for key, seg in raw["lane_segments"].items():
        lane = m.lane(key)
        np.testing.assert_array_equal(lane.left_boundary, xy_of(seg["left_lane_boundary"]))
        np.testing.assert_array_equal(lane.centerline, xy_of(seg["centerline"]))
    areas = [Polygon(xy_of(a["area_boundary"])) for a in raw["drivable_areas"].values()]
    assert len(areas) == 2
    # The raster fills the areas as read; their union is built only when the area is read.
    assert [p.equals(a) for p, a in zip(m.drivable_parts, areas, strict=True)] == [True, True]
    assert m._drivable_area is None
    assert m.area.symmetric_difference(shapely.union_all(areas)).area < 1e-6


def test_sample_tracks_equal_raw_rows() -> None:
    table = pq.read_table(SAMPLE / f"scenario_{SAMPLE_ID}.parquet").to_pydict()
    sc = load_scenario(SAMPLE)
    for i in range(0, len(table["track_id"]), 97):
        track = sc.track(table["track_id"][i])
        t = table["timestep"][i]
        assert track.valid[t]
        assert track.xy[t].tolist() == [table["position_x"][i], table["position_y"][i]]
        assert track.heading[t] == table["heading"][i]
        assert track.kind == table["object_type"][i]
    assert sum(int(t.valid.sum()) for t in sc.tracks) == len(table["track_id"])


def test_real_forecasting_scenario(real_data: Path) -> None:
    folder = real_data / "av2" / "forecasting" / SAMPLE_ID
    m = load_map(folder)
    assert (len(m.lanes), len(m.crosswalks)) == (71, 6)
    sc = load_scenario(folder)
    assert (len(sc.tracks), sc.num_steps, sc.focal_track_id) == (58, 110, "138951")


def sensor_logs(root: Path) -> list[Path]:
    logs = sorted((root / "av2" / "sensor_logs").iterdir())
    assert len(logs) == 4
    return logs


def test_real_sensor_log_maps_get_centerlines_between_boundaries(real_data: Path) -> None:
    for log in sensor_logs(real_data):
        map_path = next((log / "map").glob("log_map_archive_*.json"))
        raw = json.loads(map_path.read_text())
        assert all("centerline" not in seg for seg in raw["lane_segments"].values())
        m = load_map(map_path)
        assert len(m.lanes) == len(raw["lane_segments"]) > 100
        for lane in m.lanes:
            # Every derived centerline point lies inside the lane polygon (small tolerance for
            # its discretisation); its ends are the midpoints of the boundaries' ends.
            poly = lane.polygon.buffer(0.05)
            assert all(poly.contains(Point(p)) for p in lane.centerline), (map_path, lane.id)
            for end in (0, -1):
                midpoint = 0.5 * (lane.left_boundary[end] + lane.right_boundary[end])
                np.testing.assert_allclose(lane.centerline[end], midpoint, atol=1e-9)


def test_real_sensor_log_tracks(real_data: Path) -> None:
    log = sensor_logs(real_data)[0]
    table = pq.read_table(log / "DERIVED_tracks_city_frame.parquet").to_pydict()
    sc = read_av2_scenario(log)
    assert len(sc.tracks) == len(set(table["track_uuid"]))
    assert sc.dt == pytest.approx(0.1, abs=0.002)
    assert sum(int(t.valid.sum()) for t in sc.tracks) == len(table["track_uuid"])
    track = sc.track(table["track_uuid"][0])
    assert track.length == pytest.approx(
        float(
            np.median(
                [
                    v
                    for u, v in zip(table["track_uuid"], table["length_m"], strict=True)
                    if u == track.id
                ]
            )
        )
    )


# ---- bad input ---------------------------------------------------------------------------------


def write_map(tmp_path: Path, change: Any) -> Path:
    """The tiny map with ``change(doc)`` applied, written to tmp_path."""
    return write_changed_json(TINY_MAP, change, tmp_path / "log_map_archive_bad.json")


def seg(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["lane_segments"]["1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("lane_segments"), "missing key 'lane_segments'"),
        (lambda d: seg(d).pop("right_lane_boundary"), "lane segment 1: missing key"),
        (lambda d: seg(d).update(lane_type="HOVERCRAFT"), "HOVERCRAFT"),
        (lambda d: seg(d).update(left_lane_mark_type="GLITTER"), "GLITTER"),
        (lambda d: seg(d).update(left_lane_boundary=[{"x": 0.0, "y": 1.0}]), "at least 2 points"),
        (lambda d: seg(d).update(left_lane_boundary=[{"x": 0.0}, {"y": 1.0}]), "x, y, z"),
        (lambda d: seg(d).update(left_lane_boundary="nope"), "must be a list"),
        (lambda d: d.update(lane_segments=[1, 2]), "must be an object"),
        (
            lambda d: d["drivable_areas"]["20"].update(
                area_boundary=[{"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 1.0}, {"x": 0.0, "y": 0.0}]
            ),
            "3 distinct points",
        ),
    ],
)
def test_wrong_schema_names_file_and_problem(tmp_path: Path, change: Any, message: str) -> None:
    path = write_map(tmp_path, change)
    assert refusal(read_av2_map, path, message).path == str(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_coordinates_are_refused(tmp_path: Path, bad: float) -> None:
    path = write_map(tmp_path, lambda d: seg(d)["centerline"][1].update(x=bad))
    with pytest.raises(MapFormatError, match=r"NaN|inf"):
        load_map(path)


@pytest.mark.parametrize("content", [b"", b'{"lane_segments": {"1": {"id": 1, "left'])
def test_empty_or_truncated_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "log_map_archive_x.json"
    path.write_bytes(content)
    refusal(read_av2_map, path, r"empty|truncated")


def test_self_intersecting_crossing_is_repaired_with_warning(tmp_path: Path) -> None:
    # edge2 given against edge1's direction: edge1 + reversed edge2 is a bow tie.
    path = write_map(
        tmp_path,
        lambda d: d["pedestrian_crossings"]["10"].update(
            edge2=[{"x": 24.0, "y": 8.0}, {"x": 24.0, "y": -1.0}]
        ),
    )
    with pytest.warns(UserWarning, match="make_valid"):
        m = read_av2_map(path)
    assert m.crosswalks[0].is_valid and m.crosswalks[0].area > 0


def copy_scenario(tmp_path: Path, change: Any) -> Path:
    """The tiny scenario folder with ``change(table) -> table`` applied to its parquet."""
    folder = tmp_path / "scene"
    shutil.copytree(TINY, folder)
    parquet = folder / "scenario_tiny.parquet"
    parquet.chmod(0o644)
    pq.write_table(change(pq.read_table(parquet)), parquet)
    return folder


def replace(table: Any, name: str, value: Any, dtype: Any = None) -> Any:
    """``table`` with every value of column ``name`` set to ``value``."""
    column = pa.array([value] * table.num_rows, dtype)
    return table.set_column(table.column_names.index(name), name, column)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(["position_y"]), "missing columns"),
        (lambda t: pa.concat_tables([t, t.slice(0, 1)]), "duplicate row for track 'car'"),
        (lambda t: replace(t, "position_x", float("nan")), "NaN"),
        (lambda t: replace(t, "timestep", -1), "negative"),
        (lambda t: replace(t, "track_id", None, pa.string()), "null"),
        (lambda t: replace(t, "heading", "north"), "numeric"),
    ],
)
def test_bad_scenario_parquet(tmp_path: Path, change: Any, message: str) -> None:
    folder = copy_scenario(tmp_path, change)
    with pytest.raises(ScenarioFormatError, match=message):
        load_scenario(folder)


def test_parquet_that_is_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "scenario_x.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(ScenarioFormatError, match="parquet"):
        load_scenario(path)


def test_missing_pyarrow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MapencError, match=r"pip install mapenc\[av2\]"):
        load_scenario(TINY)


def test_string_columns_come_factorized_in_order_of_first_appearance(tmp_path: Path) -> None:
    """Arrow's dictionary encoding gives the same distinct values and indices as ``factorize``
    on the strings, over chunks, so tracks keep their order of first appearance."""
    from mapenc.maps.av2 import _read_parquet
    from mapenc.maps.tracks import Factorized, factorize

    rng = np.random.default_rng(0)
    ids = np.array([f"t{k}" for k in rng.integers(0, 40, 500)], dtype=object)
    path = tmp_path / "scenario_x.parquet"
    pq.write_table(pa.table({"track_id": ids, "x": rng.normal(size=500)}), path, row_group_size=77)
    columns = _read_parquet(path)
    read = columns["track_id"]
    assert isinstance(read, Factorized) and not isinstance(columns["x"], Factorized)
    values, index = factorize(ids)
    assert read.values.tolist() == values.tolist()
    np.testing.assert_array_equal(read.index, index)
    assert read[3] == ids[3]
