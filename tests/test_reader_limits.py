"""Readers under hostile input: no silent data loss, bounded memory and time, named errors.

Each case here once ended in a silent wrong result, a huge allocation or a raw traceback.
"""

from __future__ import annotations

import builtins
import gzip
import io
import json
import shutil
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mapenc.data.mnist import read_idx, read_mnist_npz
from mapenc.data.traj_sources import load_scenarios
from mapenc.errors import DataError, MapencError, MapFormatError, ScenarioFormatError
from mapenc.maps import jsonparse, load_map, load_scenario
from mapenc.maps.io import load_map_or_scenario
from mapenc.maps.jsonparse import parse_json
from mapenc.safeio import gunzip

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
AV2_TINY = FIXTURES / "av2_tiny"
AV2_MAP = AV2_TINY / "log_map_archive_tiny.json"
LANELET2 = FIXTURES / "lanelet2_tiny.osm"
COMMONROAD = FIXTURES / "commonroad_tiny.xml"
GENERIC = FIXTURES / "generic_tiny"
CSV_HEADER = "track_id,timestep,x,y,heading,kind\n"


def generic_scene(
    tmp_path: Path, tracks_csv: str | None = None, geojson: bytes | None = None
) -> Path:
    """A copy of the tiny generic scene, with its tracks CSV or map bytes replaced."""
    folder = tmp_path / "scene"
    shutil.copytree(GENERIC, folder)
    if tracks_csv is not None:
        (folder / "tracks.csv").write_text(tracks_csv)
    if geojson is not None:
        (folder / "map.geojson").write_bytes(geojson)
    return folder


# --- item 8: data that used to be dropped silently ---------------------------------------------


def test_av2_key_given_twice_is_refused(tmp_path: Path) -> None:
    doc = json.loads(AV2_MAP.read_text())
    lanes = doc["lane_segments"]
    first = json.dumps(lanes["1"])
    # The same lane id twice in lane_segments: json.loads kept the second and lost a lane.
    body = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in lanes.items())
    doc_text = json.dumps(doc).replace(
        json.dumps({"lane_segments": lanes})[1:-1], f'"lane_segments": {{{body}, "1": {first}}}'
    )
    assert doc_text.count('"1": ') >= 2
    path = tmp_path / "log_map_archive_dup.json"
    path.write_text(doc_text)
    with pytest.raises(MapFormatError, match="key '1' appears twice"):
        load_map(path)


def test_lanelet2_node_id_given_twice_is_refused(tmp_path: Path) -> None:
    text = LANELET2.read_text()
    # A second node 1 far away: it used to move the node silently and blow the map up to km.
    far = '<node id="1" lat="49.1" lon="8.5" />'
    path = tmp_path / "dup.osm"
    path.write_text(text.replace("</osm>", f"  {far}\n</osm>"))
    with pytest.raises(MapFormatError, match="<node> id 1 is given twice"):
        load_map(path)


def test_lanelet2_way_id_given_twice_is_refused(tmp_path: Path) -> None:
    text = LANELET2.read_text()
    path = tmp_path / "dup_way.osm"
    extra = '<way id="201"><nd ref="4" /><nd ref="5" /><tag k="type" v="line_thin" /></way>'
    path.write_text(text.replace("</osm>", f"  {extra}\n</osm>"))
    with pytest.raises(MapFormatError, match="<way> id 201 is given twice"):
        load_map(path)


# --- item 9: gzip bombs and one read per file ---------------------------------------------------


def bomb(path: Path, inflated_mib: int) -> Path:
    """A CommonRoad-looking ``.xml.gz`` that inflates to ``inflated_mib`` MiB of blanks."""
    blanks = b" " * (1 << 20)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as gz:
        gz.write(b'<commonRoad timeStepSize="0.1">')
        for _ in range(inflated_mib):
            gz.write(blanks)
        gz.write(b"</commonRoad>")
    path.write_bytes(buffer.getvalue())
    return path


def test_gzip_bomb_is_refused_with_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAPENC_MAX_INFLATED_MB", "4")
    path = bomb(tmp_path / "bomb.xml.gz", inflated_mib=64)
    assert path.stat().st_size < (1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(MapFormatError, match="inflates beyond 4 MiB"):
            load_map(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak >> 20} MiB while refusing a 64 MiB bomb"


def test_default_limit_refuses_a_large_bomb(tmp_path: Path) -> None:
    path = bomb(tmp_path / "bomb.xml.gz", inflated_mib=300)
    with pytest.raises(MapFormatError, match="MAPENC_MAX_INFLATED_MB"):
        load_map(path)


def test_gunzip_keeps_members_and_refuses_damage() -> None:
    two_members = gzip.compress(b"hello ") + gzip.compress(b"world") + b"\0\0"
    assert gunzip(two_members) == b"hello world"
    whole = gzip.compress(b"x" * 1000)
    with pytest.raises(MapencError, match="truncated"):
        gunzip(whole[:-12])
    with pytest.raises(MapencError, match="trailing bytes"):
        gunzip(whole + b"junk")
    with pytest.raises(MapencError, match="corrupt"):
        gunzip(whole[:10] + bytes(b ^ 0xFF for b in whole[10:20]) + whole[20:])


def test_mnist_idx_gzip_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAPENC_MAX_INFLATED_MB", "1")
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\0\0\x08\x01" + (4 << 20).to_bytes(4, "big") + bytes(4 << 20)))
    with pytest.raises(DataError, match="inflates beyond 1 MiB"):
        read_idx(path)


def test_mnist_npz_declaring_huge_arrays_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAPENC_MAX_INFLATED_MB", "1")
    path = tmp_path / "mnist.npz"
    zeros = np.zeros((2000, 28, 28), np.uint8)  # 1.5 MiB, compresses to a few KiB
    np.savez_compressed(
        path, x_train=zeros, y_train=np.zeros(2000), x_test=zeros, y_test=np.zeros(2000)
    )
    with pytest.raises(DataError, match=r"inflate to \d+ MiB, beyond 1 MiB"):
        read_mnist_npz(path)


def test_garbage_npz_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        read_mnist_npz(path)


def count_opens(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Every ``open`` of a file called ``name`` from now on (builtins and pathlib alike)."""
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(str(file)).name == name:
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    return opened


def test_each_map_file_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "scenario.xml.gz"
    path.write_bytes(gzip.compress(COMMONROAD.read_bytes()))
    opened = count_opens(monkeypatch, path.name)
    load_map_or_scenario(path)  # holds_tracks, detection and parsing
    assert len(opened) == 1
    load_map(path)  # detection and parsing
    assert len(opened) == 2


# --- item 10: one huge time step must not size the arrays --------------------------------------


def test_huge_csv_time_step_is_refused_before_allocating(tmp_path: Path) -> None:
    folder = generic_scene(tmp_path, CSV_HEADER + "a,0,1,2,0,car\na,10000000000,1,2,0,car\n")
    with pytest.raises(ScenarioFormatError, match=r"would need .* GiB"):
        load_scenario(folder)


def test_time_step_1e20_is_not_called_negative(tmp_path: Path) -> None:
    folder = generic_scene(tmp_path, CSV_HEADER + "a,0,1,2,0,car\na,1e20,1,2,0,car\n")
    with pytest.raises(ScenarioFormatError, match=r"'1e20' is not an integer within \+-2\*\*53"):
        load_scenario(folder)


def test_huge_commonroad_time_is_refused(tmp_path: Path) -> None:
    text = COMMONROAD.read_text()
    path = tmp_path / "huge_time.xml"
    path.write_text(
        text.replace("<exact>0</exact>\n      </time>", "<exact>1e10</exact>\n      </time>", 1)
    )
    assert path.read_text() != text
    with pytest.raises(ScenarioFormatError, match="would need"):
        load_scenario(path)
    path.write_text(
        text.replace("<exact>0</exact>\n      </time>", "<exact>1e20</exact>\n      </time>", 1)
    )
    with pytest.raises(ScenarioFormatError, match="not a whole number"):
        load_scenario(path)


def av2_scene_with(tmp_path: Path, column: str, value: Any) -> Path:
    """The tiny AV2 scene with every value of ``column`` replaced by ``value``."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    folder = tmp_path / "scene"
    shutil.copytree(AV2_TINY, folder)
    parquet = folder / "scenario_tiny.parquet"
    parquet.chmod(0o644)
    table = pq.read_table(parquet)
    array = pa.array([value] * table.num_rows)
    pq.write_table(table.set_column(table.column_names.index(column), column, array), parquet)
    return folder


def test_huge_av2_num_timestamps_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioFormatError, match="would need"):
        load_scenario(av2_scene_with(tmp_path, "num_timestamps", 10**10))


def test_fractional_av2_time_step_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioFormatError, match="not a whole number"):
        load_scenario(av2_scene_with(tmp_path, "timestep", 1.5))


# --- item 13: symlink loops ---------------------------------------------------------------------


def test_symlink_loops_are_walked_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(GENERIC, data / "a" / "scene")
    (data / "a" / "loop1").symlink_to(data)
    (data / "a" / "loop2").symlink_to(data / "a")
    start = time.monotonic()
    scenarios = load_scenarios([str(data)])
    assert len(scenarios) == 1
    assert time.monotonic() - start < 30


# --- items 14 and 15: a named error, a clear message --------------------------------------------


def geojson_text() -> str:
    return (GENERIC / "map.geojson").read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"type": "FeatureCollection", "features": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "nested too deeply",
        ),
        (
            b'{"type": "FeatureCollection", "features": [], "n": ' + b"9" * 5000 + b"}",
            "has 5000 digits",
        ),
        (b'{"type": "FeatureCollection", "features": [], "n": 1e400}', "beyond float range"),
        (
            b'{"type": "FeatureCollection", "features": [], "n": ' + b"9" * 400 + b".5}",
            "beyond float range",
        ),
    ],
)
def test_hostile_json_numbers_and_nesting(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "map.geojson"
    path.write_bytes(content)
    with pytest.raises(MapFormatError, match=message):
        load_map(path)


def test_json_numbers_parse_alike_with_and_without_the_checks(tmp_path: Path) -> None:
    """A document whose numbers cannot exceed the limits is parsed without a check per number;
    one that holds a long digit run (here an id string) is parsed with the checks: both give the
    same values."""
    numbers = [1, -7, 0.1, -2.5e-3, 1.5e99, 123456789012345678901234567890, 3.0e-99]
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"n": numbers}))
    checked = tmp_path / "checked.json"
    checked.write_text(json.dumps({"n": numbers, "id": "7" * 60}))
    assert not jsonparse._numbers_need_checks(plain.read_bytes())
    assert jsonparse._numbers_need_checks(checked.read_bytes())
    assert parse_json(plain)["n"] == parse_json(checked)["n"] == numbers


def test_av2_successors_not_a_list(tmp_path: Path) -> None:
    doc = json.loads(AV2_MAP.read_text())
    doc["lane_segments"]["1"]["successors"] = 5
    path = tmp_path / "log_map_archive_x.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(MapFormatError, match="'successors' must be a list of ids"):
        load_map(path)


@pytest.mark.parametrize("origin", [[8.4, 49.0, 0.0], ["8.4", "49.0"], None])
def test_geojson_origin_lonlat_must_be_two_numbers(tmp_path: Path, origin: Any) -> None:
    doc = json.loads(geojson_text())
    doc.setdefault("properties", {})["projection"] = {"crs": "EPSG:32632", "origin_lonlat": origin}
    path = tmp_path / "map.geojson"
    path.write_text(json.dumps(doc))
    with pytest.raises(MapFormatError, match="origin_lonlat: expected two finite numbers"):
        load_map(path)


def test_csv_field_over_the_csv_limit(tmp_path: Path) -> None:
    folder = generic_scene(
        tmp_path, CSV_HEADER + "a,0,1,2,0,car\n" + "b" * 200_000 + ",1,1,2,0,car\n"
    )
    with pytest.raises(ScenarioFormatError, match="line 3: malformed CSV"):
        load_scenario(folder)


def test_geojson_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "map.geojson"
    path.write_bytes(b"\xef\xbb\xbf" + (GENERIC / "map.geojson").read_bytes())
    assert len(load_map(path).lanes) == len(load_map(GENERIC / "map.geojson").lanes)


def test_top_level_json_array_is_named(tmp_path: Path) -> None:
    path = tmp_path / "map.geojson"
    path.write_text("[" + geojson_text() + "]")
    with pytest.raises(MapFormatError, match="top level is an array"):
        load_map(path)


def test_gzipped_tfrecord_length_beyond_the_limit_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("google_crc32c")
    from mapenc.maps.tfrecord import frame_record, iter_records

    monkeypatch.setenv("MAPENC_MAX_INFLATED_MB", "4")
    path = tmp_path / "bomb.tfrecord.gz"
    path.write_bytes(gzip.compress(frame_record(bytes(64 << 20)), compresslevel=1))
    tracemalloc.start()
    try:
        with pytest.raises(MapFormatError, match="record 0: the length says 67108864 bytes"):
            list(iter_records(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_garbage_per_sample_scores_are_a_data_error(tmp_path: Path) -> None:
    from mapenc.study.traj_scores import SampleScores

    path = tmp_path / "per_sample.npz"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)))
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        SampleScores.load(path)
