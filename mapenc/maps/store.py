"""The scenario store: scenarios of any readable source as columnar numpy arrays, one file per
source file, read back at memory speed (no protobuf, JSON, XML or polygon repair).

A store shard ``*.scenarios`` is ``MAGIC``, the length of a JSON header (uint64, little endian),
the header, then the raw bytes of every array, each at a multiple of 64 bytes (the header gives
each array's dtype, shape and offset, and a checksum of the data (CRC-32C, or CRC-32 without
``google-crc32c``), checked once per process per file). Nothing is pickled; reading is one copy of the file into memory and numpy views of it.
For S scenarios:

- header: format version, the source file, and per scenario its metadata
  (``source``, ``dt``, ``scenario_id``, ``current_step``, ``ego_track_id``, ``focal_track_id``,
  ``tracks_to_predict``, ``first_step``, ``provenance`` (``{"name", "sha256"}`` or null: see
  ``Provenance``), map ``source``, ``projection``, ``boundaries_offset``);
- tracks: ``track_first`` (S + 1) offsets into the per-track arrays ``track_id``, ``track_kind``,
  ``track_box`` (N, 2) length and width in metres, ``track_category`` (-1: none),
  ``track_has_velocity``; ``step_first`` (N + 1) offsets into the per-step rows ``states``
  (M, 5) float64 [x, y, heading, vx, vy] (city frame, metres, rad, m/s) and ``valid`` (M,);
- lanes: ``lane_first`` (S + 1) offsets into ``lane_id``, ``lane_marks`` (L, 2) left/right
  ``MarkType`` values, ``lane_type``, ``lane_is_intersection``, ``lane_neighbors`` (L, 2) ids
  ('' and ``lane_has_neighbor`` False when none); the (P, 2) float64 point arrays
  ``centerline_points``, ``left_points``, ``right_points`` with (L + 1) offsets
  ``centerline_first``, ``left_first``, ``right_first``; ``predecessors`` / ``successors``
  flat id lists with (L + 1) offsets ``predecessors_first`` / ``successors_first``;
- road lines (``road_line_first``, ``road_line_id``, ``road_line_mark``, points
  ``road_line_points`` / ``road_line_points_first``), road edges (``road_edge_first``,
  ``road_edge_points`` / ``road_edge_points_first``), stop signs (``stop_sign_first``,
  ``stop_sign_id``, ``stop_sign_position``, ``stop_sign_lanes`` / ``stop_sign_lanes_first``);
- polygons as WKB (``{kind}_wkb`` concatenated bytes, ``{kind}_wkb_first`` byte offsets and
  ``{kind}_first`` (S + 1) offsets) for crosswalks, driveways, speed bumps and the drivable area
  (one per scenario: the union is built once when the store is written, never while training).

All coordinates are kept in float64, so a scenario read back equals the one written (same map
content, same rasters). ``write_store_shard`` writes atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from mapenc.errors import MapFormatError
from mapenc.maps.tfrecord import require_crc32c
from mapenc.maps.types import (
    FloatArray,
    Lane,
    LaneType,
    MarkType,
    Projection,
    Provenance,
    RoadLine,
    Scenario,
    StopSign,
    Track,
    VectorMap,
    made_with_fields,
)
from mapenc.safeio import write_atomic

STORE_VERSION = 2  # 2: per-scenario provenance
STORE_SUFFIX = ".scenarios"
MAGIC = b"mapenc scenario store\n"
_LENGTH = struct.Struct("<Q")  # bytes of the JSON header, padding included
_ALIGN = 64  # every array starts at a multiple of this many bytes of the data
# (path, size, mtime, inode) of shards whose CRC-32 this process has already checked.
_VERIFIED: set[tuple[str, int, int, int]] = set()
# Polygon kinds decoded when a shard is opened; the drivable area is decoded when first read.
MAP_POLYGON_KINDS = ("crosswalks", "driveways", "speed_bumps")
POLYGON_KINDS = (*MAP_POLYGON_KINDS, "drivable_area")
Arrays = dict[str, NDArray[Any]]
# Enum members by value: a dict lookup, not Enum's constructor, for each of thousands of lanes.
_MARKS = {mark.value: mark for mark in MarkType}
_LANE_TYPES = {lane_type.value: lane_type for lane_type in LaneType}


def is_store_shard(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a scenario-store shard (by its ``.scenarios`` suffix)."""
    return os.fspath(path).endswith(STORE_SUFFIX)


class _Ragged:
    """A list of arrays (or strings) gathered into one flat array with (len + 1) offsets."""

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.sizes: list[int] = []

    def add(self, part: Any) -> None:
        self.parts.append(part)
        self.sizes.append(len(part))

    def count(self, size: int) -> None:
        """One more item of ``size`` elements whose content is kept elsewhere."""
        self.sizes.append(size)

    def offsets(self) -> NDArray[np.int64]:
        return np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)]).astype(np.int64)

    def points(self) -> FloatArray:
        return np.concatenate(self.parts) if self.parts else np.zeros((0, 2))

    def strings(self) -> NDArray[np.str_]:
        flat = [s for part in self.parts for s in part]
        return np.array(flat, dtype=str) if flat else np.zeros(0, dtype="<U1")


def _polygon_column(groups: Sequence[Sequence[BaseGeometry]]) -> Arrays:
    """WKB of each group's polygons: ``wkb`` bytes, ``wkb_first`` byte offsets, ``first``
    (len(groups) + 1) offsets of each group's polygons."""
    flat = [g for group in groups for g in group]
    blobs = shapely.to_wkb(np.array(flat, dtype=object)) if flat else np.zeros(0, dtype=object)
    sizes = [len(b) for b in blobs]
    return {
        "wkb": np.frombuffer(b"".join(blobs), dtype=np.uint8),
        "wkb_first": np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64),
        "first": np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64),
    }


def scenario_arrays(scenarios: Iterable[Scenario], source: str) -> Arrays:
    """The store's arrays (see the module docstring) for ``scenarios`` read from ``source``."""
    columns: dict[str, _Ragged] = {
        name: _Ragged()
        for name in (
            "tracks",
            "steps",
            "lanes",
            "centerline",
            "left",
            "right",
            "predecessors",
            "successors",
            "road_lines",
            "road_line_points",
            "road_edges",
            "road_edge_points",
            "stop_signs",
            "stop_sign_lanes",
        )
    }
    polygons: dict[str, list[list[BaseGeometry]]] = {kind: [] for kind in POLYGON_KINDS}
    metadata: list[dict[str, Any]] = []
    track_rows: list[tuple[str, str, float, float, int, bool]] = []
    lane_rows: list[tuple[str, str, str, str, bool, str, str, bool, bool]] = []
    road_lines: list[tuple[str, str]] = []  # id, mark
    stop_signs: list[tuple[str, FloatArray]] = []  # id, position
    states: list[FloatArray] = []
    valid: list[NDArray[np.bool_]] = []
    for scenario in scenarios:
        metadata.append(_scenario_metadata(scenario))
        columns["tracks"].count(len(scenario.tracks))
        for track in scenario.tracks:
            velocity = track.velocity if track.velocity is not None else np.zeros_like(track.xy)
            states.append(np.column_stack([track.xy, track.heading, velocity]))
            valid.append(track.valid)
            columns["steps"].add(track.valid)
            category = -1 if track.category is None else track.category
            has_velocity = track.velocity is not None
            track_rows.append(
                (track.id, track.kind, track.length, track.width, category, has_velocity)
            )
        vector_map = scenario.map
        columns["lanes"].count(len(vector_map.lanes))
        for lane in vector_map.lanes:
            columns["centerline"].add(lane.centerline)
            columns["left"].add(lane.left_boundary)
            columns["right"].add(lane.right_boundary)
            columns["predecessors"].add(lane.predecessors)
            columns["successors"].add(lane.successors)
            lane_rows.append(
                (
                    lane.id,
                    lane.left_mark.value,
                    lane.right_mark.value,
                    lane.lane_type.value,
                    lane.is_intersection,
                    lane.left_neighbor or "",
                    lane.right_neighbor or "",
                    lane.left_neighbor is not None,
                    lane.right_neighbor is not None,
                )
            )
        columns["road_lines"].count(len(vector_map.road_lines))
        for line in vector_map.road_lines:
            columns["road_line_points"].add(line.points)
            road_lines.append((line.id, line.mark.value))
        columns["road_edges"].count(len(vector_map.road_edges))
        for edge in vector_map.road_edges:
            columns["road_edge_points"].add(edge)
        columns["stop_signs"].count(len(vector_map.stop_signs))
        for sign in vector_map.stop_signs:
            columns["stop_sign_lanes"].add(sign.lanes)
            stop_signs.append((sign.id, sign.position))
        polygons["crosswalks"].append(vector_map.crosswalks)
        polygons["driveways"].append(vector_map.driveways)
        polygons["speed_bumps"].append(vector_map.speed_bumps)
        polygons["drivable_area"].append([vector_map.drivable_area])
    lanes: list[Sequence[Any]] = list(zip(*lane_rows, strict=True)) or [()] * 9
    tracks: list[Sequence[Any]] = list(zip(*track_rows, strict=True)) or [()] * 6
    arrays: Arrays = {
        "header": np.array(
            json.dumps({"version": STORE_VERSION, "source": source, "scenarios": metadata})
        ),
        "track_first": columns["tracks"].offsets(),
        "track_id": np.array(tracks[0], dtype=str),
        "track_kind": np.array(tracks[1], dtype=str),
        "track_box": np.column_stack([tracks[2], tracks[3]]).astype(np.float64).reshape(-1, 2),
        "track_category": np.array(tracks[4], dtype=np.int64),
        "track_has_velocity": np.array(tracks[5], dtype=bool),
        "step_first": columns["steps"].offsets(),
        "states": np.concatenate(states) if states else np.zeros((0, 5)),
        "valid": np.concatenate(valid) if valid else np.zeros(0, dtype=bool),
        "lane_first": columns["lanes"].offsets(),
        "lane_id": np.array(lanes[0], dtype=str),
        "lane_marks": np.column_stack([lanes[1], lanes[2]]).astype(str).reshape(-1, 2),
        "lane_type": np.array(lanes[3], dtype=str),
        "lane_is_intersection": np.array(lanes[4], dtype=bool),
        "lane_neighbors": np.column_stack([lanes[5], lanes[6]]).astype(str).reshape(-1, 2),
        "lane_has_neighbor": np.column_stack([lanes[7], lanes[8]]).astype(bool).reshape(-1, 2),
        "road_line_first": columns["road_lines"].offsets(),
        "road_line_id": np.array([line_id for line_id, _ in road_lines], dtype=str),
        "road_line_mark": np.array([mark for _, mark in road_lines], dtype=str),
        "road_edge_first": columns["road_edges"].offsets(),
        "stop_sign_first": columns["stop_signs"].offsets(),
        "stop_sign_id": np.array([sign_id for sign_id, _ in stop_signs], dtype=str),
        "stop_sign_position": np.array(
            [position for _, position in stop_signs], dtype=np.float64
        ).reshape(-1, 2),
    }
    for name in ("centerline", "left", "right", "road_line_points", "road_edge_points"):
        key = name if name.endswith("_points") else f"{name}_points"
        arrays[key] = columns[name].points()
        arrays[f"{key}_first"] = columns[name].offsets()
    for name in ("predecessors", "successors", "stop_sign_lanes"):
        arrays[name] = columns[name].strings()
        arrays[f"{name}_first"] = columns[name].offsets()
    for kind, groups in polygons.items():
        for key, value in _polygon_column(groups).items():
            arrays[f"{kind}_{key}" if key != "first" else f"{kind}_first"] = value
    return arrays


def _scenario_metadata(scenario: Scenario) -> dict[str, Any]:
    """What a scenario and its map carry beside arrays, as JSON values."""
    projection = scenario.map.projection
    return {
        "source": scenario.source,
        "dt": scenario.dt,
        "scenario_id": scenario.scenario_id,
        "current_step": scenario.current_step,
        "ego_track_id": scenario.ego_track_id,
        "focal_track_id": scenario.focal_track_id,
        "tracks_to_predict": list(scenario.tracks_to_predict),
        "first_step": scenario.first_step,
        "provenance": (
            None
            if scenario.provenance is None
            else {"name": scenario.provenance.name, "sha256": scenario.provenance.sha256}
        ),
        "map_source": scenario.map.source,
        "boundaries_offset": scenario.map.boundaries_offset,
        "projection": (
            None
            if projection is None
            else {"crs": projection.crs, "origin_lonlat": list(projection.origin_lonlat)}
        ),
    }


def write_store_shard(scenarios: Iterable[Scenario], path: Path, source: str) -> int:
    """Write ``scenarios`` (read from ``source``) as one store shard at ``path``, atomically;
    return how many were written."""
    arrays = scenario_arrays(scenarios, source)
    header = json.loads(str(arrays.pop("header")))
    layout: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, array in arrays.items():
        offset = -(-offset // _ALIGN) * _ALIGN
        layout[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += array.nbytes
    data = np.zeros(offset, dtype=np.uint8)
    for name, array in arrays.items():
        start = layout[name]["offset"]
        data[start : start + array.nbytes] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    algorithm = _checksum_algorithm()
    header.update(
        arrays=layout, data_bytes=len(data), checksum=[algorithm, CHECKSUMS[algorithm](data)]
    )
    encoded = json.dumps(header).encode()
    lead = len(MAGIC) + _LENGTH.size + len(encoded)
    padding = b" " * (-lead % _ALIGN)  # JSON allows trailing blanks

    def write(handle: IO[bytes]) -> None:
        handle.write(MAGIC + _LENGTH.pack(len(encoded) + len(padding)) + encoded + padding)
        handle.write(data.tobytes())

    write_atomic(path, write)
    return len(header["scenarios"])


def _header(handle: IO[bytes], path: Path) -> dict[str, Any]:
    """The JSON header at the start of an open store shard; MapFormatError naming ``path`` for
    another kind of file or another format version."""
    if handle.read(len(MAGIC)) != MAGIC:
        raise MapFormatError(path, "not a scenario-store shard (no store header)")
    (length,) = _LENGTH.unpack(handle.read(_LENGTH.size))
    header: dict[str, Any] = json.loads(handle.read(length))
    if header.get("version") != STORE_VERSION:
        raise MapFormatError(
            path,
            f"scenario-store version {header.get('version')}, this mapenc reads "
            f"{STORE_VERSION}: prepare the store again into a new folder (or remove the "
            "old shards first)",
        )
    return header


def shard_header(path: Path) -> dict[str, Any]:
    """The header of a store shard (version, source, per-scenario metadata, array layout)."""
    try:
        with path.open("rb") as handle:
            return _header(handle, path)
    except (ValueError, struct.error) as err:
        raise MapFormatError(path, f"not a readable scenario-store shard ({err})") from None


def _read_shard(path: Path) -> tuple[dict[str, Any], Arrays]:
    """(header, arrays) of a store shard; the arrays are writable views of one copy-on-write
    mapping of the file (pages are read from the page cache as they are touched, without the
    copy a read makes; a write changes this process's copy only). The data's CRC-32 is checked
    once per process per file (path, size, mtime, inode)."""
    with path.open("rb") as handle:
        header = _header(handle, path)
        data_start = handle.tell()
        if os.fstat(handle.fileno()).st_size - data_start < header["data_bytes"]:
            raise MapFormatError(path, "truncated: the data ends before the header says")
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    data = np.frombuffer(mapped, dtype=np.uint8, count=header["data_bytes"], offset=data_start)
    info = path.stat()
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    if key not in _VERIFIED:
        algorithm, expected = header["checksum"]
        if algorithm not in CHECKSUMS:
            raise MapFormatError(path, f"unknown checksum {algorithm!r}")
        if algorithm == "crc32c":
            require_crc32c(path)
        if CHECKSUMS[algorithm](data) != expected:
            raise MapFormatError(path, f"{algorithm} mismatch: the data is corrupt")
        _VERIFIED.add(key)
    arrays = {
        name: np.frombuffer(
            data,
            dtype=np.dtype(item["dtype"]),
            count=math.prod(item["shape"]),
            offset=item["offset"],
        ).reshape(item["shape"])
        for name, item in header["arrays"].items()
    }
    return header, arrays


def _crc32c(data: Any) -> int:
    import google_crc32c

    return int(google_crc32c.value(data))


# Checksums of a shard's data by name: CRC-32C (hardware, ``google-crc32c``) when installed, as
# it is with the Waymo reader, else zlib's CRC-32 (ten times slower).
CHECKSUMS: dict[str, Callable[[Any], int]] = {"crc32c": _crc32c, "crc32": zlib.crc32}


def _checksum_algorithm() -> str:
    """The checksum a new shard gets: "crc32c" where google-crc32c is installed, else "crc32"."""
    try:
        import google_crc32c  # noqa: F401
    except ImportError:
        return "crc32"
    return "crc32c"


class StoreShard:
    """One store shard's arrays in memory, handing out its scenarios by index.

    Raises MapFormatError naming the file for a file that is not a store shard, one of another
    format version, or one whose content fails its checksum.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MapFormatError(self.path, "no such file")
        try:
            header, self.arrays = _read_shard(self.path)
        except (ValueError, KeyError, TypeError, struct.error) as err:
            raise MapFormatError(
                self.path, f"not a readable scenario-store shard ({err})"
            ) from None
        self.source: str = header["source"]
        self.metadata: list[dict[str, Any]] = header["scenarios"]
        self._polygons = {kind: self._geometries(kind) for kind in MAP_POLYGON_KINDS}
        self._area_wkb = self._wkb("drivable_area")
        # Every step's [x, y], heading, [vx, vy] and valid flag: a track's are rows of each
        # (slicing rows of these views is cheaper than cutting each track's block apart).
        states = self.arrays["states"]
        self._state_columns = (states[:, 0:2], states[:, 2], states[:, 3:5], self.arrays["valid"])

    def __len__(self) -> int:
        return len(self.metadata)

    def _wkb(self, kind: str) -> list[bytes]:
        """The WKB of each geometry of one polygon kind, every scenario's."""
        blob = self.arrays[f"{kind}_wkb"].tobytes()
        return [blob[a:b] for a, b in pairwise(self.arrays[f"{kind}_wkb_first"])]

    def _geometries(self, kind: str) -> NDArray[np.object_]:
        """(G,) shapely geometries of one polygon kind, every scenario's, decoded together."""
        wkb = np.array(self._wkb(kind), dtype=object)
        return shapely.from_wkb(wkb) if len(wkb) else np.zeros(0, dtype=object)

    def _range(self, name: str, index: int) -> range:
        first = self.arrays[name]
        return range(int(first[index]), int(first[index + 1]))

    def _bounds(self, column: str, index_range: range) -> tuple[list[int], int]:
        """Item bounds of items ``index_range`` of a ragged column, as Python ints from the
        first item's start (slicing with them is faster than with numpy scalars), and that
        start."""
        first = self.arrays[f"{column}_first"][index_range.start : index_range.stop + 1]
        start = int(first[0]) if len(first) else 0
        return (first - start).tolist(), start

    def _split(self, points: str, index_range: range) -> list[FloatArray]:
        """The (K, 2) point arrays of items ``index_range`` of a ragged point column."""
        bounds, start = self._bounds(points, index_range)
        flat = self.arrays[points][start:]
        return [flat[a:b] for a, b in pairwise(bounds)]

    def _strings(self, name: str, index_range: range) -> list[tuple[str, ...]]:
        """The string tuples of items ``index_range`` of a ragged string column."""
        bounds, start = self._bounds(name, index_range)
        flat = self.arrays[name][start : start + (bounds[-1] if bounds else 0)].tolist()
        return [tuple(flat[a:b]) for a, b in pairwise(bounds)]

    def scenario(self, index: int) -> Scenario:
        """The scenario at ``index`` (0..len - 1), as it was written, except its ``source``: the
        shard (``SHARD#i`` when the shard holds several), the file it is now read from;
        ``metadata[index]["source"]`` keeps the original path, and ``provenance`` (when
        ``mapenc prepare`` wrote it) the original name and content digest."""
        meta = self.metadata[index]
        provenance = meta["provenance"]
        return Scenario(
            map=self._map(index, meta),
            dt=float(meta["dt"]),
            tracks=self._tracks(index),
            focal_track_id=meta["focal_track_id"],
            source=str(self.path) if len(self) == 1 else f"{self.path}#{index}",
            scenario_id=meta["scenario_id"],
            current_step=meta["current_step"],
            ego_track_id=meta["ego_track_id"],
            tracks_to_predict=tuple(meta["tracks_to_predict"]),
            first_step=int(meta["first_step"]),
            provenance=(
                None
                if provenance is None
                else Provenance(name=provenance["name"], sha256=provenance["sha256"])
            ),
        )

    def __iter__(self) -> Iterator[Scenario]:
        return (self.scenario(i) for i in range(len(self)))

    def _tracks(self, index: int) -> list[Track]:
        a = self.arrays
        span = self._range("track_first", index)
        first = a["step_first"][span.start : span.stop + 1].tolist()
        ids = a["track_id"][span.start : span.stop].tolist()
        kinds = a["track_kind"][span.start : span.stop].tolist()
        boxes = a["track_box"][span.start : span.stop].tolist()
        categories = a["track_category"][span.start : span.stop].tolist()
        has_velocity = a["track_has_velocity"][span.start : span.stop].tolist()
        xy, heading, velocity, valid = self._state_columns
        tracks = []
        for k in range(len(ids)):
            steps = slice(first[k], first[k + 1])
            tracks.append(
                made_with_fields(
                    Track,
                    id=ids[k],
                    kind=kinds[k],
                    xy=xy[steps],
                    heading=heading[steps],
                    valid=valid[steps],
                    length=boxes[k][0],
                    width=boxes[k][1],
                    velocity=velocity[steps] if has_velocity[k] else None,
                    category=None if categories[k] < 0 else categories[k],
                )
            )
        return tracks

    def _map(self, index: int, meta: dict[str, Any]) -> VectorMap:
        a = self.arrays
        lanes_range = self._range("lane_first", index)
        lanes = _lanes(
            a,
            lanes_range,
            self._split("centerline_points", lanes_range),
            self._split("left_points", lanes_range),
            self._split("right_points", lanes_range),
            self._strings("predecessors", lanes_range),
            self._strings("successors", lanes_range),
        )
        lines_range = self._range("road_line_first", index)
        road_lines = [
            RoadLine(
                id=str(a["road_line_id"][i]),
                points=points,
                mark=_MARKS[str(a["road_line_mark"][i])],
            )
            for i, points in zip(
                lines_range, self._split("road_line_points", lines_range), strict=True
            )
        ]
        signs_range = self._range("stop_sign_first", index)
        stop_signs = [
            StopSign(
                id=str(a["stop_sign_id"][i]), position=a["stop_sign_position"][i], lanes=controlled
            )
            for i, controlled in zip(
                signs_range, self._strings("stop_sign_lanes", signs_range), strict=True
            )
        ]
        polygons = {}
        for kind in MAP_POLYGON_KINDS:
            kind_range = self._range(f"{kind}_first", index)
            polygons[kind] = list(self._polygons[kind][kind_range.start : kind_range.stop])
        projection = meta["projection"]
        vector_map = VectorMap(
            lanes=lanes,
            crosswalks=polygons["crosswalks"],
            road_edges=self._split("road_edge_points", self._range("road_edge_first", index)),
            source=meta["map_source"],
            projection=(
                None
                if projection is None
                else Projection(projection["crs"], tuple(projection["origin_lonlat"]))
            ),
            road_lines=road_lines,
            driveways=polygons["driveways"],
            speed_bumps=polygons["speed_bumps"],
            stop_signs=stop_signs,
            boundaries_offset=bool(meta["boundaries_offset"]),
        )
        area = self._area_wkb[self._range("drivable_area_first", index).start]
        vector_map.load_drivable_area_when_read(_DecodedWkb(area))
        return vector_map


@dataclass(frozen=True)
class _DecodedWkb:
    """A stored geometry, decoded when called (picklable, unlike a closure)."""

    wkb: bytes

    def __call__(self) -> BaseGeometry:
        return shapely.from_wkb(self.wkb)


def _lanes(
    a: Arrays,
    lanes_range: range,
    centerlines: list[FloatArray],
    lefts: list[FloatArray],
    rights: list[FloatArray],
    predecessors: list[tuple[str, ...]],
    successors: list[tuple[str, ...]],
) -> list[Lane]:
    """The Lanes ``lanes_range`` of the store's lane columns, with their point arrays."""
    ids = a["lane_id"][lanes_range.start : lanes_range.stop].tolist()
    marks = a["lane_marks"][lanes_range.start : lanes_range.stop].tolist()
    types = a["lane_type"][lanes_range.start : lanes_range.stop].tolist()
    junction = a["lane_is_intersection"][lanes_range.start : lanes_range.stop].tolist()
    neighbors = a["lane_neighbors"][lanes_range.start : lanes_range.stop].tolist()
    has_neighbor = a["lane_has_neighbor"][lanes_range.start : lanes_range.stop].tolist()
    return [
        made_with_fields(
            Lane,
            id=ids[k],
            centerline=centerlines[k],
            left_boundary=lefts[k],
            right_boundary=rights[k],
            left_mark=_MARKS[marks[k][0]],
            right_mark=_MARKS[marks[k][1]],
            lane_type=_LANE_TYPES[types[k]],
            predecessors=predecessors[k],
            successors=successors[k],
            left_neighbor=neighbors[k][0] if has_neighbor[k][0] else None,
            right_neighbor=neighbors[k][1] if has_neighbor[k][1] else None,
            is_intersection=junction[k],
        )
        for k in range(len(ids))
    ]


def iter_store_scenarios(path: str | Path) -> Iterator[Scenario]:
    """Every scenario of a store shard, in the order written (the shard's arrays stay in memory
    while the iterator runs; one shard at a time)."""
    yield from StoreShard(path)
