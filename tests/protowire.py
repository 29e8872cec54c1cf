"""A minimal protocol buffer wire-format decoder, independent of protobuf and of mapenc.

Tests check the Waymo reader against it: records are split with ``struct`` and the ``Scenario``
fields read from the wire by field number (scenario.proto / map.proto), no generated code.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def tfrecord_payloads(path: Path) -> list[bytes]:
    """Payloads of a TFRecord file (length, 4 bytes, payload, 4 bytes), CRCs not checked."""
    raw, payloads, pos = path.read_bytes(), [], 0
    while pos < len(raw):
        (length,) = struct.unpack_from("<Q", raw, pos)
        payloads.append(raw[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
    return payloads


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def wire_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field: int for varints, raw bytes for the rest."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire_type == FIXED64:
            yield number, buf[pos : pos + 8]
            pos += 8
        elif wire_type == FIXED32:
            yield number, buf[pos : pos + 4]
            pos += 4
        elif wire_type == LENGTH_DELIMITED:
            length, pos = _varint(buf, pos)
            yield number, buf[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"wire type {wire_type} not handled")


def grouped(buf: bytes) -> dict[int, list[int | bytes]]:
    """Field number -> every value of that field, in order."""
    out: dict[int, list[int | bytes]] = defaultdict(list)
    for number, value in wire_fields(buf):
        out[number].append(value)
    return out


def _double(value: int | bytes) -> float:
    assert isinstance(value, bytes)
    return float(struct.unpack("<d", value)[0])


def _float(value: int | bytes) -> float:
    assert isinstance(value, bytes)
    return float(struct.unpack("<f", value)[0])


def decode_tracks(scenario: bytes) -> dict[str, dict[str, list[float] | list[bool] | int]]:
    """Track id -> {"x", "y", "heading", "valid" (per state), "object_type"} from the wire."""
    tracks = {}
    for track_bytes in grouped(scenario)[2]:
        assert isinstance(track_bytes, bytes)
        track = grouped(track_bytes)
        xs, ys, headings, valid = [], [], [], []
        for state_bytes in track[3]:
            assert isinstance(state_bytes, bytes)
            state = grouped(state_bytes)
            xs.append(_double(state[2][0]) if 2 in state else 0.0)
            ys.append(_double(state[3][0]) if 3 in state else 0.0)
            headings.append(_float(state[8][0]) if 8 in state else 0.0)
            valid.append(bool(state[11][0]) if 11 in state else False)
        track_id = track[1][0] if 1 in track else 0
        tracks[str(track_id)] = {
            "x": xs,
            "y": ys,
            "heading": headings,
            "valid": valid,
            "object_type": int(track[2][0]) if 2 in track else 0,  # type: ignore[arg-type]
        }
    return tracks


def count_map_features(scenario: bytes) -> dict[str, int]:
    """Counts of lanes with >= 2 distinct points, road edges with >= 2, and crosswalks."""
    counts = {"lanes": 0, "road_edges": 0, "crosswalks": 0}
    for feature_bytes in grouped(scenario)[8]:
        assert isinstance(feature_bytes, bytes)
        feature = grouped(feature_bytes)
        if 3 in feature:  # lane: LaneCenter.polyline = 8
            counts["lanes"] += _distinct_points(feature[3][0], 8) >= 2
        elif 5 in feature:  # road_edge: RoadEdge.polyline = 2
            counts["road_edges"] += _distinct_points(feature[5][0], 2) >= 2
        elif 8 in feature:
            counts["crosswalks"] += 1
    return counts


def _distinct_points(message: int | bytes, field: int) -> int:
    assert isinstance(message, bytes)
    points = set()
    for point_bytes in grouped(message).get(field, []):
        assert isinstance(point_bytes, bytes)
        point = grouped(point_bytes)
        points.add((_double(point[1][0]), _double(point[2][0])))
    return len(points)
