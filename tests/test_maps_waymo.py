"""Waymo Open Motion reader: small shards written here (one, many, corrupt, truncated, empty,
gzipped) and the two real scenarios, checked against an independent wire-format parse."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from protowire import count_map_features, decode_tracks, tfrecord_payloads

from mapenc.cli import main
from mapenc.errors import MapFormatError
from mapenc.maps import MarkType, iter_scenarios, load_map, load_scenario
from mapenc.maps.io import holds_tracks

pytest.importorskip("google.protobuf", reason="the waymo extra is not installed")
pytest.importorskip("google_crc32c", reason="the waymo extra is not installed")

from google.protobuf.message import DecodeError

from mapenc.maps.tfrecord import frame_record, iter_records, write_records
from mapenc.maps.waymo_proto import map_pb2, scenario_pb2
from mapenc.maps.waymo_wire import ScenarioBytes

REAL_FILES = {
    "motion_data_one_scenario.tfrecord": "637f20cafde22ff8",
    "womd_scenario_input.tfrecord": "ee519cf571686d19",
}
STEPS = 11


def _point(container: Any, x: float, y: float) -> None:
    point = container.add()
    point.x, point.y, point.z = x, y, 0.0


def make_scenario(name: str, x0: float = 0.0) -> Any:
    """A small Scenario message: 3 tracks over 11 steps, two lanes, lines, a crosswalk, a stop."""
    sc = scenario_pb2.Scenario(scenario_id=name, current_time_index=3, sdc_track_index=0)
    sc.timestamps_seconds.extend(0.1 * t + 1e-5 * (t % 2) for t in range(STEPS))
    for k, object_type in enumerate((1, 2, 3)):
        track = sc.tracks.add(id=100 + k, object_type=object_type)
        for t in range(STEPS):
            track.states.add(
                center_x=x0 + t * (k + 1.0),
                center_y=2.0 * k,
                heading=0.1 * k,
                velocity_x=10.0 * (k + 1.0),
                length=4.0 + k,
                width=2.0,
                valid=not (k == 2 and t < 4),
            )
    sc.tracks_to_predict.add(track_index=1)
    solid = sc.map_features.add(id=1)
    solid.road_line.type = map_pb2.RoadLine.TYPE_SOLID_SINGLE_WHITE
    for x in (x0, x0 + 20.0):
        _point(solid.road_line.polyline, x, 2.0)
    edge = sc.map_features.add(id=2)
    for x in (x0, x0 + 20.0):
        _point(edge.road_edge.polyline, x, -1.5)
    lane = sc.map_features.add(id=10)
    for x in range(21):
        _point(lane.lane.polyline, x0 + x, 0.0)
    lane.lane.exit_lanes.append(11)
    lane.lane.left_boundaries.add(lane_start_index=0, lane_end_index=20, boundary_feature_id=1)
    lane.lane.right_boundaries.add(lane_start_index=0, lane_end_index=10, boundary_feature_id=2)
    follower = sc.map_features.add(id=11)
    follower.lane.entry_lanes.append(10)
    for x in range(20, 41, 2):
        _point(follower.lane.polyline, x0 + x, 0.0)
    degenerate = sc.map_features.add(id=12)
    _point(degenerate.lane.polyline, x0, 5.0)
    crosswalk = sc.map_features.add(id=20)
    for x, y in ((5, -2), (8, -2), (8, 2), (5, 2)):
        _point(crosswalk.crosswalk.polygon, x0 + x, y)
    stop = sc.map_features.add(id=30)
    stop.stop_sign.lane.append(10)
    stop.stop_sign.position.x, stop.stop_sign.position.y = x0 + 19.0, 2.5
    return sc


def write_shard(path: Path, count: int) -> Path:
    payloads = [make_scenario(f"s{i}", x0=100.0 * i).SerializeToString() for i in range(count)]
    return write_records(path, payloads)


def quiet_load(path: Path | str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_scenario(path)


def test_one_scenario_file_tracks_and_metadata(tmp_path: Path) -> None:
    path = write_shard(tmp_path / "one.tfrecord", 1)
    with pytest.warns(UserWarning, match="1 lane\\(s\\) with fewer than 2 distinct points"):
        sc = load_scenario(path)
    assert sc.source == str(path)
    assert sc.scenario_id == "s0"
    assert sc.dt == pytest.approx(0.1)
    assert sc.num_steps == STEPS
    assert sc.current_step == 3
    assert sc.ego_track_id == "100"
    assert sc.tracks_to_predict == ("101",)
    assert [t.id for t in sc.tracks] == ["100", "101", "102"]
    assert [t.kind for t in sc.tracks] == ["vehicle", "pedestrian", "cyclist"]
    cyclist = sc.track("102")
    np.testing.assert_array_equal(cyclist.valid, np.arange(STEPS) >= 4)
    assert np.isnan(cyclist.xy[:4]).all() and np.isnan(cyclist.heading[:4]).all()
    np.testing.assert_allclose(cyclist.xy[4:, 0], 3.0 * np.arange(4, STEPS))
    np.testing.assert_allclose(cyclist.heading[4:], 0.2, atol=1e-6)
    assert cyclist.velocity is not None
    np.testing.assert_allclose(cyclist.velocity[4:, 0], 30.0)
    assert (cyclist.length, cyclist.width) == (6.0, 2.0)


def test_one_scenario_file_map(tmp_path: Path) -> None:
    sc = quiet_load(write_shard(tmp_path / "one.tfrecord", 1))
    m = sc.map
    assert [lane.id for lane in m.lanes] == ["10", "11"]
    lane = m.lane("10")
    # Left boundary: the solid line 2 m away; right: the edge 1.5 m away on points 0..10, and the
    # points the segment does not cover take the nearest covered distance.
    np.testing.assert_allclose(lane.left_boundary[:, 1], 2.0)
    np.testing.assert_allclose(lane.right_boundary[:, 1], -1.5)
    assert (lane.left_mark, lane.right_mark) == (MarkType.SOLID, MarkType.CURB)
    assert lane.successors == ("11",) and m.lane("11").predecessors == ("10",)
    follower = m.lane("11")  # no boundary segments: the default width, no marking
    np.testing.assert_allclose(follower.left_boundary[:, 1], 1.75)
    np.testing.assert_allclose(follower.right_boundary[:, 1], -1.75)
    assert follower.left_mark == MarkType.NONE
    assert [(line.id, line.mark) for line in m.road_lines] == [("1", MarkType.SOLID)]
    assert len(m.road_edges) == 1 and len(m.crosswalks) == 1
    assert m.crosswalks[0].area == pytest.approx(12.0)
    assert [(s.id, s.lanes) for s in m.stop_signs] == [("30", ("10",))]
    np.testing.assert_allclose(m.stop_signs[0].position, [19.0, 2.5])
    assert m.area.area == pytest.approx(20 * 3.5 + 20 * 3.5)


def test_shard_is_streamed_and_records_are_addressable(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "train.tfrecord-00000-of-00001", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scenarios = list(iter_scenarios(shard))
        third = load_scenario(f"{shard}#2")
    assert [sc.scenario_id for sc in scenarios] == ["s0", "s1", "s2"]
    assert [sc.source for sc in scenarios] == [f"{shard}#{i}" for i in range(3)]
    assert third.scenario_id == "s2" and third.source == f"{shard}#2"
    np.testing.assert_allclose(third.track("100").xy[0], [200.0, 0.0])
    assert holds_tracks(shard) and holds_tracks(f"{shard}#1")
    with pytest.raises(MapFormatError, match="more than one scenario"):
        load_scenario(shard)
    with pytest.raises(MapFormatError, match="no record 7: the file holds 3"):
        load_scenario(f"{shard}#7")


def test_synthetic_town_round_trip(tmp_path: Path) -> None:
    from mapenc.maps.synthetic import make_scenarios
    from mapenc.maps.waymo_write import write_waymo_shard

    towns = list(make_scenarios(2, seed=0))
    back = list(iter_scenarios(write_waymo_shard(tmp_path / "town.tfrecord", towns)))
    for original, read in zip(towns, back, strict=True):
        assert read.dt == original.dt and read.num_steps == original.num_steps
        assert [t.id for t in read.tracks] == [t.id for t in original.tracks]
        for a, b in zip(original.tracks, read.tracks, strict=True):
            np.testing.assert_array_equal(a.valid, b.valid)
            np.testing.assert_allclose(a.xy[a.valid], b.xy[b.valid], atol=1e-9)
            np.testing.assert_allclose(a.heading[a.valid], b.heading[b.valid], atol=1e-6)
            assert a.kind == b.kind
        for a_lane, b_lane in zip(original.map.lanes, read.map.lanes, strict=True):
            np.testing.assert_allclose(a_lane.centerline, b_lane.centerline)
            # Waymo has no type for an unpainted boundary: it comes back "unknown".
            painted = a_lane.left_mark not in (MarkType.NONE, MarkType.VIRTUAL)
            assert b_lane.left_mark == (a_lane.left_mark if painted else MarkType.UNKNOWN)
        assert len(read.map.crosswalks) == len(original.map.crosswalks)
        # Boundaries come back as offsets at the measured distance: the same area within 2 %.
        lost = original.map.area.symmetric_difference(read.map.area).area
        assert lost < 0.02 * original.map.area.area


def test_gzipped_shard(tmp_path: Path) -> None:
    plain = write_shard(tmp_path / "plain.tfrecord", 2)
    zipped = tmp_path / "zipped.tfrecord.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    assert list(iter_records(zipped)) == list(iter_records(plain))
    zipped.write_bytes(gzip.compress(plain.read_bytes())[:-30])
    with pytest.raises(MapFormatError, match="gzip"):
        list(iter_records(zipped))


def _record_offsets(path: Path) -> list[int]:
    offsets, pos, raw = [], 0, path.read_bytes()
    for payload in tfrecord_payloads(path):
        offsets.append(pos)
        pos += 12 + len(payload) + 4
    assert pos == len(raw)
    return offsets


def _flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))


def test_flipped_payload_byte_names_file_and_record(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "bad.tfrecord", 3)
    _flip(shard, _record_offsets(shard)[1] + 12 + 40)
    seen = []
    with pytest.raises(
        MapFormatError, match=r"record 1: CRC mismatch on the \d+-byte payload"
    ) as err:
        for sc in iter_scenarios(shard):
            seen.append(sc.scenario_id)
    assert str(shard) in str(err.value)
    assert seen == ["s0"]  # streamed: the good record came out before the bad one was read


def test_flipped_length_byte_names_record(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "bad.tfrecord", 3)
    _flip(shard, _record_offsets(shard)[2] + 1)
    with pytest.raises(MapFormatError, match="record 2: CRC mismatch on the record length"):
        list(iter_records(shard))


@pytest.mark.parametrize(
    ("cut_into", "message"),
    [
        (40, "record 2: truncated, the length says"),  # inside the payload
        (5, "record 2 header: truncated, expected 12 bytes but the file ends after 5"),
    ],
)
def test_truncated_shard_names_record(tmp_path: Path, cut_into: int, message: str) -> None:
    shard = write_shard(tmp_path / "cut.tfrecord", 3)
    raw = shard.read_bytes()
    shard.write_bytes(raw[: _record_offsets(shard)[2] + cut_into])
    with pytest.raises(MapFormatError, match=message) as err:
        list(iter_records(shard))
    assert str(shard) in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    assert list(iter_records(empty)) == []
    with pytest.raises(MapFormatError, match="empty: no TFRecord record"):
        load_scenario(empty)
    with pytest.raises(MapFormatError, match="empty: no TFRecord record"):
        list(iter_scenarios(empty))


def test_record_that_is_not_a_scenario(tmp_path: Path) -> None:
    path = tmp_path / "junk.tfrecord"
    path.write_bytes(frame_record(b"\xff\xff\xff\xff"))
    with pytest.raises(MapFormatError, match="record 0: not a Waymo Scenario protocol buffer"):
        load_scenario(path)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda sc: sc.tracks[1].states.pop(), "record 0: track 101 has 10 states for 11"),
        (lambda sc: sc.tracks_to_predict.add(track_index=9), "index 9 is not a track index"),
        (lambda sc: sc.tracks.append(sc.tracks[0]), "track id 100 appears twice"),
        (lambda sc: sc.ClearField("timestamps_seconds"), "0 timestamps"),
        (lambda sc: setattr(sc.tracks[2].states[5], "center_y", np.nan), "track 102: NaN or inf"),
    ],
)
def test_inconsistent_scenario_names_record(tmp_path: Path, break_it: Any, message: str) -> None:
    sc = make_scenario("broken")
    break_it(sc)
    path = write_records(tmp_path / "broken.tfrecord", [sc.SerializeToString()])
    with pytest.raises(MapFormatError, match=message):
        quiet_load(path)


def test_info_reads_a_shard(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "s.tfrecord-00000-of-00002", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["info", str(shard)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["scenario"]["scenario_id"] for s in out["scenarios"]] == ["s0", "s1"]
    assert out["scenarios"][1]["map"]["lanes"] == 2


def test_render_draws_one_record_of_a_shard(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shard = write_shard(tmp_path / "s.tfrecord-00000-of-00001", 2)
    out = tmp_path / "agent.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            main(["render", f"{shard}#1", "--track", "101", "--size", "32", "32", "-o", str(out)])
            == 0
        )
        assert out.stat().st_size > 0
        assert main(["render", str(shard), "--track", "101", "-o", str(out)]) == 2
    assert "name one as FILE#i" in capsys.readouterr().err


def test_cli_corrupt_file_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shard = write_shard(tmp_path / "bad.tfrecord", 1)
    _flip(shard, 30)
    assert main(["info", str(shard)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "record 0: CRC mismatch" in err and str(shard) in err


# --- the real scenarios -------------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_scenario_matches_independent_parse(real_data: Path, name: str) -> None:
    path = real_data / "waymo" / name
    (payload,) = tfrecord_payloads(path)
    expected = decode_tracks(payload)
    sc = quiet_load(path)
    assert sc.scenario_id == REAL_FILES[name]
    assert sc.dt == pytest.approx(0.1) and sc.num_steps == 91 and sc.current_step == 10
    assert [t.id for t in sc.tracks] == list(expected)
    kinds = {1: "vehicle", 2: "pedestrian", 3: "cyclist", 4: "other"}
    for track in sc.tracks:
        wire = expected[track.id]
        valid = np.asarray(wire["valid"], dtype=bool)
        np.testing.assert_array_equal(track.valid, valid)
        np.testing.assert_allclose(track.xy[valid, 0], np.asarray(wire["x"])[valid], atol=1e-3)
        np.testing.assert_allclose(track.xy[valid, 1], np.asarray(wire["y"])[valid], atol=1e-3)
        np.testing.assert_allclose(
            track.heading[valid], np.asarray(wire["heading"])[valid], atol=1e-3
        )
        assert track.kind == kinds[wire["object_type"]]  # type: ignore[index]
    counts = count_map_features(payload)
    assert len(sc.map.lanes) == counts["lanes"]
    assert len(sc.map.crosswalks) == counts["crosswalks"]
    assert len(sc.map.road_edges) == counts["road_edges"]
    assert sc.ego_track_id in {t.id for t in sc.tracks}
    assert set(sc.tracks_to_predict) <= {t.id for t in sc.tracks}


@pytest.mark.real_data
def test_real_lanes_sit_between_their_boundaries(real_data: Path) -> None:
    m = quiet_load(real_data / "waymo" / "motion_data_one_scenario.tfrecord").map
    widths = np.concatenate(
        [np.linalg.norm(lane.left_boundary - lane.right_boundary, axis=1) for lane in m.lanes]
    )
    # Real lanes are 2.5-5 m wide; the median must be a lane's width, not the 3.5 m default alone.
    assert 2.5 < np.median(widths) < 5.0
    assert all(lane.polygon.is_valid and lane.polygon.area > 0 for lane in m.lanes)
    assert {lane.left_mark for lane in m.lanes} >= {MarkType.DASHED, MarkType.NONE}
    assert load_map(real_data / "waymo" / "motion_data_one_scenario.tfrecord").summary() == (
        m.summary()
    )


@pytest.mark.real_data
def test_real_corrupt_and_truncated_copies(real_data: Path, tmp_path: Path) -> None:
    raw = (real_data / "waymo" / "womd_scenario_input.tfrecord").read_bytes()
    flipped, truncated = tmp_path / "flipped.tfrecord", tmp_path / "truncated.tfrecord"
    flipped.write_bytes(raw[:5000] + bytes([raw[5000] ^ 0x80]) + raw[5001:])
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MapFormatError, match="record 0: CRC mismatch on the 996519-byte payload"):
        load_scenario(flipped)
    with pytest.raises(MapFormatError, match="record 0: truncated"):
        load_scenario(truncated)


@pytest.mark.real_data
def test_info_reads_a_real_tfrecord(capsys: pytest.CaptureFixture[str], real_data: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["info", str(real_data / "waymo" / "womd_scenario_input.tfrecord")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scenario"]["tracks"] == 257 and out["scenario"]["steps"] == 91
    assert out["scenario"]["scenario_id"] == "ee519cf571686d19"
    assert out["map"]["lanes"] == 114 and out["map"]["crosswalks"] == 4


def test_data_paths_expand_shards(tmp_path: Path) -> None:
    from mapenc.data.traj_sources import load_scenarios

    (tmp_path / "shards").mkdir()
    write_shard(tmp_path / "shards" / "a.tfrecord-00000-of-00002", 3)
    write_shard(tmp_path / "shards" / "b.tfrecord", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scenarios = load_scenarios([str(tmp_path / "shards")])
    names = [Path(sc.source).name for sc in scenarios]
    assert names == [f"a.tfrecord-00000-of-00002#{i}" for i in range(3)] + ["b.tfrecord"]


@pytest.mark.real_data
@pytest.mark.slow
def test_train_and_eval_traj_read_tfrecords(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raster = ["--raster-size", "24", "24", "--pixel-size", "2.5", "--layers", "drivable_area"]
    # The two single-scenario files only: the folder also holds the 210 scenarios of womd_210.
    files = sorted((real_data / "waymo").glob("*.tfrecord"))
    assert len(files) == 2
    data = ["--data", *map(str, files), "--split", "all"]
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            main(
                [
                    "train-traj",
                    *data,
                    "--epochs",
                    "1",
                    "--out",
                    str(run),
                    *raster,
                    "--cache-dir",
                    str(tmp_path / "cache"),
                    "--no-progress",
                ]
            )
            == 0
        )
        trained = json.loads(capsys.readouterr().out)
        assert main(["eval-traj", str(run), *data, "--k", "2", "--figures", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert trained["train_samples"] > 100 and result["n"] == trained["train_samples"]


def test_split_reads_shards_and_skips_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mapenc.maps.synthetic import make_scenarios
    from mapenc.maps.waymo_write import write_waymo_shard

    data = tmp_path / "data"
    data.mkdir()
    write_waymo_shard(data / "towns.tfrecord-00000-of-00001", make_scenarios(3, seed=0))
    broken = write_shard(data / "broken.tfrecord", 1)
    _flip(broken, 40)
    command = ["split", "--data", str(data), "--json"]
    assert main(command) == 2
    assert f"{broken}: record 0" in capsys.readouterr().err
    assert main([*command, "--skip-bad"]) == 0
    listing = json.loads(capsys.readouterr().out)
    named = sorted(listing["train"] + listing["val"] + listing["test"] + list(listing["dropped"]))
    assert named == [f"towns.tfrecord-00000-of-00001#{i}" for i in range(3)]
    assert list(listing["skipped"]) == [str(broken)]
    assert "CRC mismatch" in listing["skipped"][str(broken)]


def _states_from_messages(sc: Any) -> np.ndarray:
    """(N, T, 8) states copied field by field from the messages (``ScenarioBytes.states``'s
    columns)."""
    names = ("center_x", "center_y", "heading", "velocity_x", "velocity_y", "length", "width")
    return np.array(
        [[[*(getattr(s, n) for n in names), float(s.valid)] for s in t.states] for t in sc.tracks]
    )


def _points_from_messages(sc: Any) -> tuple[np.ndarray, list[int]]:
    """(P, 2) map points and the count of each feature, from the messages."""
    fields = {"lane": "polyline", "road_line": "polyline", "road_edge": "polyline"}
    fields |= {"crosswalk": "polygon", "speed_bump": "polygon", "driveway": "polygon"}
    containers = []
    for feature in sc.map_features:
        kind = feature.WhichOneof("feature_data")
        containers.append(
            list(getattr(getattr(feature, kind), fields[kind])) if kind in fields else []
        )
    points = [[p.x, p.y] for c in containers for p in c]
    return np.array(points, dtype=np.float64).reshape(-1, 2), [len(c) for c in containers]


def regular_scenario() -> Any:
    """``make_scenario`` with every state field set (invalid states: ``valid`` alone), as in
    the released files."""
    sc = make_scenario("regular")
    for track in sc.tracks:
        for state in track.states:
            if state.valid:
                state.center_z, state.velocity_y, state.height = 0.5, -1.25, 1.5
            else:
                state.Clear()
                state.valid = False
    return sc


def test_states_and_points_from_the_bytes_equal_the_messages() -> None:
    sc = regular_scenario()
    raw = ScenarioBytes(sc.SerializeToString())
    states = raw.states(len(sc.tracks), STEPS)
    assert states is not None
    np.testing.assert_array_equal(states, _states_from_messages(sc))
    assert (states[2, :4, 7] == 0).all() and (states[2, 4:, 7] == 1).all()
    points, counts = _points_from_messages(sc)
    read = raw.points(counts)
    assert read is not None
    np.testing.assert_array_equal(read, points)
    assert raw.points([*counts[:-1], 1]) is None  # a count that does not match the bytes
    assert raw.states(len(sc.tracks), STEPS + 1) is None
    assert raw.states(len(sc.tracks) + 1, STEPS) is None  # a track count that does not match


@pytest.mark.parametrize(
    ("change", "read_from_bytes"),
    [
        # a state of 54 bytes
        (lambda sc: sc.tracks[0].states[3].ClearField("velocity_y"), "points"),
        # a map point of 18 bytes
        (lambda sc: sc.map_features[2].lane.polyline[4].ClearField("z"), "states"),
    ],
)
def test_other_encodings_are_read_from_the_messages(
    tmp_path: Path, change: Any, read_from_bytes: str
) -> None:
    """A state or point encoded otherwise than in the released files is not read from the bytes,
    and the reader still gives the values of the messages."""
    sc = regular_scenario()
    change(sc)
    raw = ScenarioBytes(sc.SerializeToString())
    points, counts = _points_from_messages(sc)
    from_bytes = {"states": raw.states(len(sc.tracks), STEPS), "points": raw.points(counts)}
    assert [k for k, v in from_bytes.items() if v is not None] == [read_from_bytes]
    path = write_records(tmp_path / "one.tfrecord", [sc.SerializeToString()])
    loaded = quiet_load(path)
    expected = _states_from_messages(sc)
    for track, values in zip(loaded.tracks, expected, strict=True):
        valid = values[:, 7] > 0
        np.testing.assert_array_equal(track.xy[valid], values[valid, :2])
        np.testing.assert_array_equal(track.velocity[valid], values[valid, 3:5])
    np.testing.assert_array_equal(loaded.map.road_edges[0], points[2:4])


@pytest.mark.real_data
def test_real_states_and_points_from_the_bytes_equal_the_messages(real_data: Path) -> None:
    """Every scenario of a womd_210 shard is read from its bytes (the regular encoding), with the
    values the messages give, bit for bit."""
    shard = real_data / "waymo" / "womd_210" / "womd_210.tfrecord-00000-of-00004.gz"
    payloads = list(iter_records(shard))
    assert len(payloads) > 10
    for payload in payloads:
        sc = scenario_pb2.Scenario.FromString(payload)
        raw = ScenarioBytes(payload)
        states = raw.states(len(sc.tracks), len(sc.timestamps_seconds))
        points, counts = _points_from_messages(sc)
        read = raw.points(counts)
        assert states is not None and read is not None
        np.testing.assert_array_equal(states, _states_from_messages(sc))
        np.testing.assert_array_equal(read, points)


def test_bytes_changed_anywhere_never_give_other_values_than_the_messages() -> None:
    """Single bytes of a regular record changed at random: wherever protobuf still parses the
    record, what is read from its bytes is either refused (None: read from the messages) or
    equal to the messages' values, bit for bit."""
    payload = bytearray(regular_scenario().SerializeToString())
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(400):
        changed = bytearray(payload)
        changed[int(rng.integers(len(changed)))] = int(rng.integers(256))
        try:
            sc = scenario_pb2.Scenario.FromString(bytes(changed))
        except DecodeError:
            continue
        raw = ScenarioBytes(bytes(changed))
        steps = {len(track.states) for track in sc.tracks}
        states = raw.states(len(sc.tracks), steps.pop()) if len(steps) == 1 else None
        if states is not None:
            np.testing.assert_array_equal(states, _states_from_messages(sc))
            compared += 1
        points, counts = _points_from_messages(sc)
        read = raw.points(counts)
        if read is not None:
            np.testing.assert_array_equal(read, points)
            compared += 1
    assert compared > 100


def _field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (key, varint length, payload)."""
    size, length = len(payload), bytearray()
    while True:
        length.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            return bytes([(number << 3) | 2]) + bytes(length) + payload


def test_points_in_two_runs_are_left_to_the_messages(tmp_path: Path) -> None:
    """A lane whose points come in two runs with another field between them (protobuf merges
    them; the released files never split them): the bytes reader refuses the layout, so the
    points come from the messages, never from the bytes between the runs."""
    points = [map_pb2.MapPoint(x=1.5 + i, y=-2.5 * (i + 1), z=0.25) for i in range(4)]
    lane = (
        map_pb2.LaneCenter(polyline=points[:2]).SerializeToString()
        + map_pb2.LaneCenter(entry_lanes=[7]).SerializeToString()
        + map_pb2.LaneCenter(polyline=points[2:]).SerializeToString()
    )
    feature = map_pb2.MapFeature(id=99).SerializeToString() + _field_bytes(3, lane)
    payload = regular_scenario().SerializeToString() + _field_bytes(8, feature)
    sc = scenario_pb2.Scenario.FromString(payload)
    assert len(sc.map_features[-1].lane.polyline) == 4
    _, counts = _points_from_messages(sc)
    assert ScenarioBytes(payload).points(counts) is None
    path = tmp_path / "one.tfrecord-00000-of-00001"
    write_records(path, [payload])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scenario's own degenerate features
        lane_99 = load_map(path).lane("99")
    np.testing.assert_array_equal(lane_99.centerline, [[p.x, p.y] for p in points])
