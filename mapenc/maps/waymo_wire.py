"""Track states and map points of a serialized Waymo ``Scenario``, read straight from its bytes.

Copying a scenario's ~7,000 track states and ~16,000 map points out of the parsed messages, one
field at a time, takes several times as long as the parse itself (about 12 ms against 1-2 ms).
In the released files every state is encoded alike (all ten fields, 59 bytes, or ``valid``
alone, 2 bytes) and so is every map point (x, y, z, 27 bytes), so their numbers can be taken
from the record with numpy:
the fields are walked in Python down to each track's states and each feature's run of points,
and every record found is then checked byte by byte (its field keys and lengths) before its
numbers are read. Anything else (another encoding, an unexpected field or order) gives None, and
the reader copies from the messages instead: the values are the same either way (bit for bit,
tested on the real files).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from mapenc.geometry.ragged import ramp
from mapenc.maps.types import FloatArray

# Field numbers of the Scenario message and of its parts (scenario.proto, map.proto).
_SCENARIO_TRACKS = 2
_SCENARIO_MAP_FEATURES = 8
_TRACK_STATES = 3
# MapFeature's oneof field -> the field of its points in that message (lanes, road lines and
# edges: polyline; crosswalks, speed bumps, driveways: polygon). Stop signs have none.
_POINT_FIELD = {3: 8, 4: 2, 5: 2, 8: 1, 9: 1, 10: 1}
_STOP_SIGN = 7
_LENGTH_DELIMITED = 2

# An ObjectState with all ten fields: each field's key and where that key stands (bytes into
# the 59-byte message; the value follows it). Doubles: center x, y, z; floats: length, width,
# height, heading, velocity x, y; a one-byte bool: valid.
_STATE_BYTES = 59
_STATE_KEYS = np.array([0x11, 0x19, 0x21, 0x2D, 0x35, 0x3D, 0x45, 0x4D, 0x55, 0x58], np.uint8)
_STATE_KEY_AT = np.array([0, 9, 18, 27, 32, 37, 42, 47, 52, 57])
_STATE_VALUES = np.dtype(
    {
        "names": ["x", "y", "length", "width", "heading", "vx", "vy", "valid"],
        "formats": ["<f8", "<f8", "<f4", "<f4", "<f4", "<f4", "<f4", "u1"],
        "offsets": [1, 10, 28, 33, 43, 48, 53, 58],
        "itemsize": _STATE_BYTES,
    }
)
# ``valid`` alone: its key and the value.
_VALID_ONLY_BYTES = 2
_VALID_KEY = 0x58
# A MapPoint record inside its feature: the point field's key, the length 27, then x, y, z
# (doubles, keys 0x09, 0x11, 0x19).
_POINT_RECORD_BYTES = 29
_POINT_LENGTH = 27
_POINT_KEYS_AT = {1: _POINT_LENGTH, 2: 0x09, 11: 0x11, 20: 0x19}
# A point record's x and y from x's first byte (record byte 3) on: y follows x's 8 bytes and
# its key byte.
_XY_BYTES = np.dtype({"names": ["x", "y"], "formats": ["<f8", "<f8"], "offsets": [0, 9]})


class _Irregular(Exception):
    """The bytes are not in the layout this module reads (the reader copies from the messages)."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``pos``."""
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Irregular


def _field(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """(field number, wire type, value start, value end) of the field at ``pos``."""
    key, pos = _varint(buf, pos)
    wire = key & 7
    if wire == 0:
        _, end = _varint(buf, pos)
    elif wire == 1:
        end = pos + 8
    elif wire == _LENGTH_DELIMITED:
        length, pos = _varint(buf, pos)
        end = pos + length
    elif wire == 5:
        end = pos + 4
    else:  # groups: not in these messages
        raise _Irregular
    return key >> 3, wire, pos, end


def _fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``_field`` of every field in ``buf[pos:end]``."""
    while pos < end:
        field = _field(buf, pos)
        yield field
        pos = field[3]
    if pos != end:
        raise _Irregular


class ScenarioBytes:
    """A serialized Scenario (already parsed once, so well formed) whose track states and map
    points are read from its bytes (see the module docstring).

    Args:
        buf: the record's bytes.
    """

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self._parts: tuple[list[tuple[int, int]], list[tuple[int, int]]] | None = None

    def _top_level(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Byte ranges of the tracks and of the map features, in order."""
        if self._parts is None:
            tracks, features = [], []
            for number, wire, start, end in _fields(self.buf, 0, len(self.buf)):
                if wire == _LENGTH_DELIMITED and number == _SCENARIO_TRACKS:
                    tracks.append((start, end))
                elif wire == _LENGTH_DELIMITED and number == _SCENARIO_MAP_FEATURES:
                    features.append((start, end))
            self._parts = tracks, features
        return self._parts

    def states(self, num_tracks: int, num_steps: int) -> FloatArray | None:
        """(N, T, 8) float64 per track and step [center x, center y, heading, velocity x,
        velocity y, length, width, valid (0 / 1)] of ``num_tracks`` tracks of ``num_steps``
        states each (from the parsed messages); a field a state leaves out reads 0, as from the
        messages. None where the encoding is not the regular one."""
        try:
            tracks = self._top_level()[0]
            if len(tracks) != num_tracks:
                return None
            return _states(self.buf, tracks, num_steps)
        except (_Irregular, IndexError):
            return None

    def points(self, point_counts: Sequence[int]) -> FloatArray | None:
        """(P, 2) float64 [x, y] of every map point, feature after feature, for map features
        holding ``point_counts`` points each (from the parsed messages). None where the
        encoding is not the regular one."""
        try:
            features = self._top_level()[1]
            if len(features) != len(point_counts):
                return None
            return _points(self.buf, features, point_counts)
        except (_Irregular, IndexError):
            return None


def _states(buf: bytes, tracks: list[tuple[int, int]], num_steps: int) -> FloatArray:
    """(N, T, 8) states of the tracks at byte ranges ``tracks`` (``ScenarioBytes.states``)."""
    runs: list[tuple[int, int, int]] = []  # (first record's start, records, step) of a run
    full_runs: list[tuple[int, int]] = []  # (first record's start, records) of full states
    state_key = (_TRACK_STATES << 3) | _LENGTH_DELIMITED
    key_byte = bytes([state_key])
    for start, end in tracks:
        states = 0
        pos = start
        while pos < end:
            if buf[pos] == state_key:
                size = buf[pos + 1]
                if size < 0x80:  # states of a one-byte length, taken a run of one size at once
                    step = size + 2
                    keys = buf[pos:end:step]
                    sizes = buf[pos + 1 : end : step]
                    run = min(
                        len(keys) - len(keys.lstrip(key_byte)),
                        len(sizes) - len(sizes.lstrip(bytes([size]))),
                    )
                    runs.append((pos + 2, run, step))
                    states += run
                    if size == _STATE_BYTES:
                        full_runs.append((pos + 2, run))
                    pos += run * step
                    continue
            number, _, _, pos = _field(buf, pos)  # id, object type
            if number == _TRACK_STATES:
                raise _Irregular
        if pos != end or states != num_steps:
            raise _Irregular
    data = np.frombuffer(buf, dtype=np.uint8)
    run_first, run_count, run_step = np.array(runs, dtype=np.intp).reshape(-1, 3).T
    record_run, k = ramp(run_count)
    at = run_first[record_run] + k * run_step[record_run]  # each record's start
    length = data[at - 1]
    full = length == _STATE_BYTES
    values = np.zeros((len(at), 8))
    if full.any():
        # A run's records lie a fixed step apart: one strided view each, joined in one copy.
        strides = (_STATE_BYTES + 2, 1)
        record = np.concatenate(
            [np.ndarray((n, _STATE_BYTES), np.uint8, buf, first, strides) for first, n in full_runs]
        )
        if (record[:, _STATE_KEY_AT] != _STATE_KEYS).any():
            raise _Irregular
        fields = record.reshape(-1).view(_STATE_VALUES)
        names = ("x", "y", "heading", "vx", "vy", "length", "width", "valid")
        rows = slice(None) if len(fields) == len(values) else np.flatnonzero(full)
        for column, name in enumerate(names):
            values[rows, column] = fields[name]
    short = ~full
    if short.any():
        if (length[short] != _VALID_ONLY_BYTES).any() or (data[at[short]] != _VALID_KEY).any():
            raise _Irregular
        values[short, 7] = data[at[short] + 1]
    if (values[:, 7] > 1).any():  # a bool written as another number: leave it to the messages
        raise _Irregular
    return values.reshape(len(tracks), num_steps, 8)


def _points(buf: bytes, features: list[tuple[int, int]], point_counts: Sequence[int]) -> FloatArray:
    """(P, 2) [x, y] of the map features at byte ranges ``features``, which hold
    ``point_counts`` points each."""
    run_starts: list[int] = []
    run_counts: list[int] = []
    for (start, end), count in zip(features, point_counts, strict=True):
        kind = [
            (n, a, b)
            for n, w, a, b in _fields(buf, start, end)
            if w == _LENGTH_DELIMITED and (n in _POINT_FIELD or n == _STOP_SIGN)
        ]
        if len(kind) != 1:
            raise _Irregular
        number, pos, kind_end = kind[0]
        if number == _STOP_SIGN:
            if count:
                raise _Irregular
            continue
        point_key = (_POINT_FIELD[number] << 3) | _LENGTH_DELIMITED
        run = False
        while pos < kind_end:
            if buf[pos] == point_key:
                if run or not count:  # points in two runs, or more than counted
                    raise _Irregular
                run = True
                run_starts.append(pos)
                run_counts.append(count)
                pos += count * _POINT_RECORD_BYTES
                continue
            _, _, _, pos = _field(buf, pos)
        if pos != kind_end or (count and not run):
            raise _Irregular
    data = np.frombuffer(buf, dtype=np.uint8)
    point_run, k = ramp(np.asarray(run_counts, dtype=np.intp))
    at = np.asarray(run_starts, dtype=np.intp)[point_run] + k * _POINT_RECORD_BYTES
    point_keys = np.asarray([buf[s] for s in run_starts], dtype=np.uint8)[point_run]
    if (data[at] != point_keys).any():
        raise _Irregular
    for offset, expected in _POINT_KEYS_AT.items():
        if (data[at + offset] != expected).any():
            raise _Irregular
    # The 17 bytes from x to the end of y of each point, one row gather, read as two doubles.
    values = np.lib.stride_tricks.sliding_window_view(data, _XY_BYTES.itemsize)[at + 3]
    xy = values.reshape(-1).view(_XY_BYTES)
    points = np.empty((len(at), 2))
    points[:, 0], points[:, 1] = xy["x"], xy["y"]
    return points
