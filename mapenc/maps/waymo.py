"""Waymo Open Motion scenarios from TFRecord files, without TensorFlow.

A file (``*.tfrecord``, a shard ``*.tfrecord-00000-of-01000``) holds one serialized
``Scenario`` protocol buffer per TFRecord record (``mapenc.maps.tfrecord``). The messages are
parsed with the modules generated from the dataset's own ``.proto`` files
(``mapenc.maps.waymo_proto``); this needs ``pip install mapenc[waymo]`` (protobuf, google-crc32c).

What a record becomes (city frame = Waymo's global frame, metres):

- tracks: ``center_x/center_y``, ``heading`` (rad), ``velocity_x/velocity_y`` (m/s) and
  ``valid`` per step, NaN where not valid; box ``length/width`` = median over valid steps; kind
  from ``object_type`` (vehicle, pedestrian, cyclist, other; unset -> unknown); ids as strings.
  ``dt`` is the median step of ``timestamps_seconds``, rounded to the millisecond (the recorded
  stamps jitter by tens of microseconds around 0.1 s).
- scenario metadata: ``scenario_id``, ``current_step`` (``current_time_index``),
  ``ego_track_id`` (``sdc_track_index``) and ``tracks_to_predict``, as track ids.
- lanes: the ``polyline`` is the centerline; successors / predecessors are ``exit_lanes`` /
  ``entry_lanes``, neighbours the first left / right neighbour, ``is_intersection`` the
  ``interpolating`` flag. Each boundary is the centerline offset by the distance, point by point,
  to the road line or road edge that the lane's boundary segments name; points no segment covers
  take the distance interpolated from the covered ones, and a side without segments takes half of
  ``DEFAULT_LANE_WIDTH_M``. Half widths are clipped to ``waymo_map.HALF_WIDTH_RANGE_M``. The boundary's mark
  is the type of the segments covering most points (a road edge is a curb), ``none`` without
  segments. On turns tighter than the half width the offset folds: the lane polygon, built when
  a caller first needs it (``VectorMap.lane_polygons``), is mended with ``make_valid``. No
  drivable-area union is built while reading (``VectorMap.drivable_area`` builds it on demand).
- road lines (``VectorMap.road_lines`` with their mark types), road edges, crosswalks, driveways
  and speed bumps (polygons), stop signs.

Degenerate features (a lane or edge with fewer than 2 distinct points, a polygon with fewer than
3) occur in real maps: they are skipped with one warning per scenario. A broken file raises
MapFormatError naming the file, the record and what failed (CRC, length, protobuf decoding,
inconsistent content).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import chain
from operator import attrgetter
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mapenc.errors import MapencError, MapFormatError
from mapenc.maps.tfrecord import iter_records
from mapenc.maps.tracks import default_box_size
from mapenc.maps.types import (
    FloatArray,
    Scenario,
    Track,
    made_with_fields,
)
from mapenc.maps.waymo_map import map_from_features
from mapenc.maps.waymo_wire import ScenarioBytes

KINDS = {1: "vehicle", 2: "pedestrian", 3: "cyclist", 4: "other"}
UNKNOWN_KIND = "unknown"
# Per state, in the order of the (N, T, 8) array the tracks are read into.
_STATE_FIELDS = attrgetter(
    "center_x", "center_y", "heading", "velocity_x", "velocity_y", "length", "width", "valid"
)


def read_waymo_scenario(path: Path, index: int | None = None) -> Scenario:
    """The scenario in record ``index`` of a TFRecord file (source ``FILE#index``), or with
    ``index=None`` the one scenario of a file that holds exactly one (source ``FILE``).

    MapFormatError for an empty file, a shard of many without ``index`` (stream those with
    ``iter_waymo_scenarios``), an index past the last record, and any broken record on the way.
    """
    proto = scenario_proto_module(path)
    records = iter_records(path)
    if index is not None:
        count = 0
        for count, payload in enumerate(records, start=1):
            if count - 1 == index:
                return scenario_from_record(proto, payload, path, index, source=f"{path}#{index}")
        raise MapFormatError(path, f"no record {index}: the file holds {count}")
    first = next(records, None)
    if first is None:
        raise MapFormatError(path, "empty: no TFRecord record, so no scenario")
    if next(records, None) is not None:
        raise MapFormatError(
            path,
            "holds more than one scenario (a shard): name one as FILE#i (from 0) or stream them "
            "with mapenc.maps.iter_scenarios",
        )
    return scenario_from_record(proto, first, path, 0, source=str(path))


def iter_waymo_scenarios(path: Path) -> Iterator[Scenario]:
    """Every scenario of a TFRecord file, in order, one in memory at a time.

    ``Scenario.source`` is the file for a file of one scenario, else ``FILE#i`` for record i.
    MapFormatError for an empty file and for any broken record (when it is reached).
    """
    proto = scenario_proto_module(path)
    records = iter_records(path)
    current = next(records, None)
    if current is None:
        raise MapFormatError(path, "empty: no TFRecord record, so no scenario")
    index = 0
    while current is not None:
        # Read one record ahead, to know whether the file holds a single scenario; a broken next
        # record is reported after this good one has been handed out.
        broken: MapFormatError | None = None
        try:
            following = next(records, None)
        except MapFormatError as err:
            broken, following = err, None
        single = index == 0 and following is None and broken is None
        source = str(path) if single else f"{path}#{index}"
        yield scenario_from_record(proto, current, path, index, source=source)
        if broken is not None:
            raise broken
        current, index = following, index + 1


def scenario_proto_module(path: Path) -> ModuleType:
    """The generated ``scenario_pb2`` module; MapencError naming ``path`` without protobuf."""
    try:
        from google.protobuf import runtime_version

        from mapenc.maps.waymo_proto import scenario_pb2
    except ImportError as err:
        raise MapencError(
            f"{path}: reading Waymo scenarios needs protobuf>=6.31.1 ({err}); "
            "install it with `pip install mapenc[waymo]`"
        ) from None
    except runtime_version.VersionError as err:
        raise MapencError(
            f"{path}: the installed protobuf is too old for the Waymo reader ({err}); "
            "install a newer one with `pip install -U mapenc[waymo]`"
        ) from None
    return scenario_pb2


def scenario_from_record(
    proto: ModuleType, payload: bytes, path: Path, index: int, source: str
) -> Scenario:
    """The Scenario in one record's payload; MapFormatError naming ``path`` and record ``index``."""
    from google.protobuf.message import DecodeError

    where = f"record {index}"
    try:
        message = proto.Scenario.FromString(payload)
    except DecodeError as err:
        raise MapFormatError(
            path, f"{where}: not a Waymo Scenario protocol buffer ({err})"
        ) from None
    try:
        return _scenario(message, source, ScenarioBytes(payload))
    except MapencError as err:
        raise MapFormatError(path, f"{where}: {err}") from None


def _scenario(message: Any, source: str, raw: ScenarioBytes) -> Scenario:
    """Scenario from a parsed ``Scenario`` message and its bytes ``raw`` (see the module
    docstring)."""
    stamps = np.asarray(message.timestamps_seconds, dtype=np.float64)
    dt = _step_seconds(stamps)
    tracks = _tracks(message.tracks, len(stamps), raw)
    ids = [track.id for track in tracks]
    if len(set(ids)) != len(ids):
        repeated = next(i for i, count in Counter(ids).items() if count > 1)
        raise MapencError(f"track id {repeated} appears twice")

    def track_id(index: int, what: str) -> str:
        if not 0 <= index < len(tracks):
            raise MapencError(f"{what} {index} is not a track index (0..{len(tracks) - 1})")
        return ids[index]

    current = message.current_time_index if message.HasField("current_time_index") else None
    if current is not None and not 0 <= current < len(stamps):
        raise MapencError(f"current_time_index {current} outside 0..{len(stamps) - 1}")
    return Scenario(
        map=map_from_features(message.map_features, source, raw),
        dt=dt,
        tracks=tracks,
        source=source,
        scenario_id=message.scenario_id or None,
        current_step=current,
        ego_track_id=(
            track_id(message.sdc_track_index, "sdc_track_index")
            if message.HasField("sdc_track_index")
            else None
        ),
        tracks_to_predict=tuple(
            track_id(required.track_index, "tracks_to_predict index")
            for required in message.tracks_to_predict
        ),
    )


def _step_seconds(stamps: FloatArray) -> float:
    """Seconds per step from (T,) timestamps: the median step, rounded to the millisecond."""
    if len(stamps) < 2:
        raise MapencError(f"{len(stamps)} timestamps, at least 2 are needed for a time step")
    steps = np.diff(stamps)
    if not np.isfinite(stamps).all() or (steps <= 0).any():
        raise MapencError("timestamps_seconds are not finite and increasing")
    dt = round(float(np.median(steps)), 3)
    if np.abs(steps - dt).max() > 0.5 * dt:
        raise MapencError(f"timestamps_seconds are not evenly spaced (median step {dt} s)")
    return dt


def _tracks(messages: Sequence[Any], num_steps: int, raw: ScenarioBytes) -> list[Track]:
    """Tracks from ``Track`` messages of ``num_steps`` states each (see the module docstring);
    the states of all tracks are read into one (N, T, 8) array, from the scenario's bytes
    ``raw`` where their encoding allows (``mapenc.maps.waymo_wire``), else from the messages."""
    for track in messages:
        if len(track.states) != num_steps:
            raise MapencError(
                f"track {track.id} has {len(track.states)} states for {num_steps} timestamps"
            )
    values = raw.states(len(messages), num_steps)
    if values is None:
        values = np.fromiter(
            chain.from_iterable(
                map(_STATE_FIELDS, chain.from_iterable(t.states for t in messages))
            ),
            dtype=np.float64,
            count=len(messages) * num_steps * 8,
        ).reshape(len(messages), num_steps, 8)
    valid: NDArray[np.bool_] = values[..., 7] > 0
    finite = np.isfinite(values[..., 0])
    for column in range(1, 7):  # column by column: numpy reduces an axis of 7 ~5x slower
        finite &= np.isfinite(values[..., column])
    bad = ~finite & valid
    if bad.any():
        raise MapencError(f"track {messages[int(bad.any(axis=1).argmax())].id}: NaN or inf values")
    values[~valid] = np.nan
    box = _median_over_valid(values[..., 5:7], valid)
    # Each column of all tracks copied once; a track's arrays are rows of these.
    xy, heading = np.ascontiguousarray(values[..., 0:2]), np.ascontiguousarray(values[..., 2])
    velocity = np.ascontiguousarray(values[..., 3:5])
    boxes: list[list[float]] = box.tolist()
    seen: list[bool] = np.any(valid, axis=1).tolist()
    tracks = []
    for i, (track, observed) in enumerate(zip(messages, valid, strict=True)):
        kind = KINDS.get(track.object_type, UNKNOWN_KIND)
        length, width = boxes[i] if seen[i] else default_box_size(kind)  # median or default
        tracks.append(
            made_with_fields(
                Track,
                id=str(track.id),
                kind=kind,
                xy=xy[i],
                heading=heading[i],
                valid=observed,
                length=length,
                width=width,
                velocity=velocity[i],
                category=None,
            )
        )
    return tracks


def _median_over_valid(values: FloatArray, valid: NDArray[np.bool_]) -> FloatArray:
    """(N, C) median over the valid steps of (N, T, C) values (``np.median`` of each track's valid
    rows, all tracks at once); NaN for a track without valid steps."""
    ordered = np.sort(np.where(valid[..., None], values, np.nan), axis=1)  # NaN sort last
    count = valid.sum(axis=1)
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0)[:, None, None] // 2, axis=1)
    high = np.take_along_axis(ordered, (count // 2)[:, None, None], axis=1)
    return np.where(count[:, None] > 0, ((low + high) / 2)[:, 0], np.nan)
