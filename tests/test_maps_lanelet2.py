"""Lanelet2 OSM reader: the tiny fixture, the committed Karlsruhe map (projection, lengths,
counts) and bad input."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from defusedxml.ElementTree import parse as defused_parse

from mapenc.errors import MapFormatError
from mapenc.maps import Lane, LaneType, MarkType, VectorMap, load_map
from mapenc.maps.lanelet2 import read_lanelet2_map

DATA = Path(__file__).resolve().parents[1] / "data"
TINY = DATA / "fixtures" / "lanelet2_tiny.osm"
TINY_TEXT = TINY.read_text()
KARLSRUHE = DATA / "lanelet2_karlsruhe" / "mapping_example.osm"
EARTH_RADIUS_M = 6_371_008.8


def mutated(pattern: str, replacement: str) -> str:
    """The fixture text with the first match of the regex ``pattern`` replaced."""
    text, count = re.subn(pattern, replacement, TINY_TEXT, count=1)
    assert count == 1, pattern
    return text


def haversine_length_m(lonlat: np.ndarray) -> float:
    """Great-circle length (metres, mean Earth radius) of a (K, 2) lon/lat polyline."""
    lon, lat = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    a = (
        np.sin(np.diff(lat) / 2) ** 2
        + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(np.diff(lon) / 2) ** 2
    )
    return float((2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))).sum())


def polyline_length_m(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def left_is_on_the_left(lane: Lane) -> bool:
    direction = lane.centerline[-1] - lane.centerline[0]
    offset = lane.left_boundary.mean(axis=0) - lane.right_boundary.mean(axis=0)
    return bool(direction[0] * offset[1] - direction[1] * offset[0] > 0)


# ---- the tiny fixture -------------------------------------------------------------------------


def test_tiny_lanes_types_and_links() -> None:
    m = read_lanelet2_map(TINY)
    lanes = {lane.id: lane for lane in m.lanes}
    assert sorted(lanes) == ["1001", "1002", "1003", "1004"]
    assert lanes["1004"].lane_type is LaneType.BIKE
    assert lanes["1001"].successors == ("1003",) and lanes["1003"].predecessors == ("1001",)
    assert (lanes["1001"].left_neighbor, lanes["1002"].right_neighbor) == ("1002", "1001")
    assert (lanes["1003"].right_neighbor, lanes["1004"].left_neighbor) == ("1004", "1003")
    assert len(m.crosswalks) == 1
    assert m.crosswalks[0].area == pytest.approx(4 * 3.5, rel=1e-3)


def test_boundary_running_against_its_lanelet_is_reversed() -> None:
    """Way 202 is drawn right to left; both lanelets using it still run +x, left on the left."""
    m = read_lanelet2_map(TINY)
    for lane in m.lanes:
        assert left_is_on_the_left(lane), lane.id
        assert lane.centerline[-1, 0] - lane.centerline[0, 0] == pytest.approx(20.0, rel=1e-3)
    lane1001, lane1002 = m.lane("1001"), m.lane("1002")
    np.testing.assert_allclose(lane1001.left_boundary, lane1002.right_boundary)
    # solid_dashed names the way's own left part first; read against the way it swaps.
    assert lane1001.left_mark is MarkType.DASHED_SOLID
    assert (lane1001.right_mark, lane1002.left_mark) == (MarkType.CURB, MarkType.CURB)
    assert (m.lane("1003").left_mark, m.lane("1003").right_mark) == (
        MarkType.SOLID,
        MarkType.DASHED,
    )


def test_tiny_drivable_area_includes_parking() -> None:
    m = read_lanelet2_map(TINY)
    lanes_m2 = 3 * 20 * 3.5 + 20 * 2
    assert m.area.area == pytest.approx(lanes_m2 + 10 * 10, rel=1e-3)
    assert len(m.road_edges) == 3  # two curbstones and a road border


def test_tiny_projection_origin_is_the_map_centre() -> None:
    m = read_lanelet2_map(TINY)
    assert m.projection is not None
    assert m.projection.crs.startswith("+proj=tmerc")
    np.testing.assert_allclose(
        m.projection.to_city(*m.projection.origin_lonlat), [[0, 0]], atol=1e-6
    )
    xmin, ymin, xmax, ymax = m.bounds
    assert xmin == pytest.approx(-xmax, abs=0.01) and ymin == pytest.approx(-ymax, abs=0.01)


# ---- Karlsruhe (committed, BSD-3) -------------------------------------------------------------


@pytest.fixture(scope="module")
def karlsruhe() -> VectorMap:
    with pytest.warns(UserWarning, match="invalid polygon") as caught:
        loaded = load_map(KARLSRUHE)
    # One warning for the whole file, naming the repaired lanelets.
    assert len([w for w in caught if "invalid polygon" in str(w.message)]) == 1
    assert "repaired with make_valid: lanelet " in str(caught[0].message)
    return loaded


def test_karlsruhe_counts(karlsruhe: VectorMap) -> None:
    m = karlsruhe
    assert Counter(lane.lane_type for lane in m.lanes) == {
        LaneType.VEHICLE: 337 + 8,
        LaneType.BIKE: 14,
    }
    assert len(m.crosswalks) == 8
    assert all(left_is_on_the_left(lane) for lane in m.lanes)


def test_karlsruhe_lengths_match_great_circle_lengths(karlsruhe: VectorMap) -> None:
    """Each lanelet's left boundary in metres against the haversine length of its way's nodes,
    read from the file independently of the reader."""
    root = defused_parse(KARLSRUHE).getroot()
    lonlat = {
        n.get("id"): (float(n.get("lon", "")), float(n.get("lat", "")))
        for n in root.iterfind("node")
    }
    way_nodes = {
        w.get("id"): [nd.get("ref") for nd in w.iterfind("nd")] for w in root.iterfind("way")
    }
    lanes = {lane.id: lane for lane in karlsruhe.lanes}
    checked = 0
    for rel in root.iterfind("relation"):
        if rel.get("id") not in lanes:
            continue
        left_way = next(m.get("ref") for m in rel.iterfind("member") if m.get("role") == "left")
        geodesic = haversine_length_m(np.array([lonlat[n] for n in way_nodes[left_way]]))
        metric = polyline_length_m(lanes[rel.get("id")].left_boundary)
        if geodesic > 1.0:
            assert metric == pytest.approx(geodesic, rel=0.005), rel.get("id")
            checked += 1
    assert checked > 300


def test_karlsruhe_projection_round_trip(karlsruhe: VectorMap) -> None:
    root = defused_parse(KARLSRUHE).getroot()
    lonlat = np.array(
        [[float(n.get("lon", "")), float(n.get("lat", ""))] for n in root.iterfind("node")]
    )
    projection = karlsruhe.projection
    back = projection.to_lonlat(projection.to_city(lonlat[:, 0], lonlat[:, 1]))
    assert np.abs(back - lonlat).max() < 1e-7
    lon0, lat0 = projection.origin_lonlat
    assert lon0 == pytest.approx(0.5 * (lonlat[:, 0].min() + lonlat[:, 0].max()), abs=1e-9)
    assert lat0 == pytest.approx(0.5 * (lonlat[:, 1].min() + lonlat[:, 1].max()), abs=1e-9)


# ---- bad input --------------------------------------------------------------------------------

NO_LANELETS = TINY_TEXT[: TINY_TEXT.index("<relation")] + "</osm>"
BAD_OSM: dict[str, tuple[str, str]] = {
    "truncated": (TINY_TEXT[: len(TINY_TEXT) // 2], "malformed or truncated"),
    "no lanelet relations": (NO_LANELETS, "no lanelet relations"),
    "wrong root": ('<commonRoad timeStepSize="0.1"/>', "expected <osm>"),
    "missing way": (
        mutated('ref="201" role="right"', 'ref="999" role="right"'),
        "missing way '999'",
    ),
    "missing node": (mutated('<nd ref="1" />', '<nd ref="9999" />'), "missing node 9999"),
    "nan latitude": (mutated(r'lat="[0-9.]+"', 'lat="nan"'), "NaN or inf"),
    "latitude out of range": (mutated(r'lat="[0-9.]+"', 'lat="91.0"'), "outside"),
    "one-node boundary": (
        mutated(r'(<way id="203">\s*<nd ref="\d+" />)\s*<nd ref="\d+" />', r"\1"),
        "at least 2 points",
    ),
    "entity expansion": (
        '<?xml version="1.0"?><!DOCTYPE osm [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><osm>&b;</osm>',
        "unsafe XML",
    ),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", sorted(BAD_OSM))
def test_bad_osm_raises_naming_the_file(tmp_path: Path, case: str) -> None:
    text, problem = BAD_OSM[case]
    path = tmp_path / "bad.osm"
    path.write_text(text)
    with pytest.raises(MapFormatError, match=re.escape(problem)) as info:
        read_lanelet2_map(path)
    assert info.value.path == str(path)


def test_empty_osm_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.osm"
    path.touch()
    with pytest.raises(MapFormatError, match="empty file"):
        read_lanelet2_map(path)
