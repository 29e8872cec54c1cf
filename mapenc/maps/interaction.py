"""INTERACTION dataset reader: one recording (a vehicle track file, its pedestrian file and its
location's Lanelet2 map) -> Scenario.

The dataset ships as::

    <root>/maps/<LOCATION>.osm                                        Lanelet2, lat/lon
    <root>/recorded_trackfiles/<LOCATION>/vehicle_tracks_NNN.csv      one recording each
    <root>/recorded_trackfiles/<LOCATION>/pedestrian_tracks_NNN.csv   same recording (some only)

(each CSV optionally gzipped). How it maps onto mapenc's types:

- Frame: the maps' lat/lon are not real places. The dataset projects them with Lanelet2's
  ``UtmProjector`` whose origin is (0, 0) (UTM zone 31 minus the origin's UTM coordinates,
  ``lanelet2.utm_origin_projection``), which gives the tracks' metric frame (x, y about
  900-1100 m). A transverse Mercator centred on the map would miss the tracks by about a km.
- Time: ``frame_id`` counts frames of ``dt`` seconds, ``dt`` taken from ``timestamp_ms`` (100 ms in
  every shipped file) and checked on every row of both files. Step ``t`` of the arrays is frame
  ``Scenario.first_step + t``; ``first_step`` is the first ``frame_id`` of either file. A track
  is valid on the frames it has rows for.
- Vehicles (``track_id,frame_id,timestamp_ms,agent_type,x,y,vx,vy,psi_rad,length,width``): kind
  ``"vehicle"`` whatever the ``agent_type`` (the shipped files say ``car``), heading
  ``psi_rad``, velocity ``vx, vy``, box the median ``length, width``. Ids as in the file.
- Pedestrian files (the same columns without ``psi_rad,length,width``) label every agent
  ``pedestrian/bicycle``. Their speeds are bimodal: of the 945 tracks in the 51 shipped
  pedestrian files, 785 have a 90th-percentile speed within 0.5-2.5 m/s (walking), 114 beyond
  3.5 m/s (riding), 43 in between. A track whose 90th-percentile speed exceeds
  ``CYCLIST_SPEED_MPS`` (3 m/s, faster than a brisk walk) is a ``"cyclist"`` (129 of the 945),
  any other a ``"pedestrian"``; a cyclist that only waits reads as a pedestrian. Heading follows the velocity where the speed is at least
  ``HEADING_MIN_SPEED_MPS`` and is held through slower steps (the first moving heading before
  them; 0 for a track that never moves). Boxes are ``tracks.default_box_size`` of the kind.
  Ids keep the file's ``P`` prefix (``P4``; one is added to an id without it), so they never
  collide with the vehicles' numbers.
- Maps are parsed once per process per file (keyed by path, size and modification time): the
  recordings of one location share one VectorMap. They draw crosswalks as pairs of
  ``pedestrian_marking`` lines only, which the Lanelet2 reader turns into crosswalk polygons.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mapenc.errors import MapFormatError, ScenarioFormatError
from mapenc.maps.io import (
    INTERACTION_TRACKS_FOLDER,
    INTERACTION_VEHICLE_FILE,
    interaction_track_files,
)
from mapenc.maps.jsonparse import format_errors
from mapenc.maps.lanelet2 import read_lanelet2_map, utm_origin_projection
from mapenc.maps.tracks import TrackRows, build_tracks
from mapenc.maps.tracks_csv import CsvColumns, read_csv_columns
from mapenc.maps.types import FloatArray, Scenario, Track, VectorMap

MAPS_FOLDER = "maps"
PEDESTRIAN_PREFIX = "P"
COMMON_COLUMNS = ("track_id", "frame_id", "timestamp_ms", "agent_type", "x", "y", "vx", "vy")
VEHICLE_COLUMNS = (*COMMON_COLUMNS, "psi_rad", "length", "width")
CYCLIST_SPEED_MPS = 3.0
HEADING_MIN_SPEED_MPS = 0.2
# Largest disagreement (ms) between a row's timestamp and its frame number times dt.
TIMESTAMP_TOL_MS = 1.0


@dataclass(frozen=True)
class _Table(CsvColumns):
    """The rows of one track CSV and the file they come from (``path``)."""

    path: Path


def map_path_for(vehicle_csv: Path) -> Path:
    """``<root>/maps/<LOCATION>.osm`` for ``<root>/recorded_trackfiles/<LOCATION>/<file>``;
    MapFormatError naming the track file and the expected map when there is none."""
    folder = Path(vehicle_csv).resolve().parent
    expected = folder.parent.parent / MAPS_FOLDER / f"{folder.name}.osm"
    if not expected.is_file():
        raise MapFormatError(
            vehicle_csv,
            f"no map for location {folder.name}: expected {expected} (the dataset's layout: "
            f"<root>/{MAPS_FOLDER}/<LOCATION>.osm beside "
            f"<root>/{INTERACTION_TRACKS_FOLDER}/<LOCATION>/)",
        )
    return expected


def pedestrian_path_for(vehicle_csv: Path) -> Path | None:
    """The ``pedestrian_tracks_NNN.csv[.gz]`` of the same recording, or None when there is none."""
    path = Path(vehicle_csv)
    match = INTERACTION_VEHICLE_FILE.match(path.name)
    if match is None:
        raise MapFormatError(path, "not an INTERACTION vehicle_tracks_NNN.csv[.gz] file")
    for suffix in (".csv", ".csv.gz"):
        candidate = path.with_name(f"pedestrian_tracks_{match['number']}{suffix}")
        if candidate.is_file():
            return candidate
    return None


def read_interaction_map(path: Path) -> VectorMap:
    """The map of a track file's or location folder's location, in the tracks' frame (see the
    module docstring); MapFormatError when the map file is missing or unreadable."""
    path = Path(path)
    if path.is_dir():
        files = interaction_track_files(path)
        locations = sorted({file.parent.name for file in files})
        if len(locations) != 1:
            raise MapFormatError(
                path,
                f"holds recordings of {len(locations)} locations {locations[:3]}: name one "
                "location's folder or one vehicle_tracks_NNN.csv file for its map",
            )
        path = files[0]
    osm = map_path_for(path)
    info = osm.stat()
    return _location_map(str(osm), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _location_map(osm: str, size: int, mtime_ns: int) -> VectorMap:
    """The parsed map, once per (file, size, mtime): recordings of a location share it."""
    del size, mtime_ns  # part of the cache key only
    return read_lanelet2_map(Path(osm), projection=utm_origin_projection((0.0, 0.0)))


def read_interaction_scenario(vehicle_csv: Path) -> Scenario:
    """One recording: the vehicles of ``vehicle_csv``, the agents of its pedestrian file (when
    there is one) and its location's map, over the frames of both files.

    Raises MapFormatError (ScenarioFormatError for the tracks) naming the file at fault for a
    missing map, missing columns, bad numbers or frames, timestamps that disagree with the frame
    numbers, repeated (track, frame) rows, or a pedestrian id equal to a vehicle id.
    """
    vehicle_csv = Path(vehicle_csv)
    vector_map = read_interaction_map(vehicle_csv)
    tables = [_read_table(vehicle_csv, VEHICLE_COLUMNS)]
    pedestrian_csv = pedestrian_path_for(vehicle_csv)
    if pedestrian_csv is not None:
        tables.append(_read_table(pedestrian_csv, COMMON_COLUMNS))
    if not tables[0].lines:
        raise ScenarioFormatError(vehicle_csv, "no track rows")
    tables = [table for table in tables if table.lines]
    frames = []
    for table in tables:
        with format_errors(table.path, ScenarioFormatError):
            frames.append(table.integers("frame_id"))
    first_frame = min(int(f.min()) for f in frames)
    num_steps = max(int(f.max()) for f in frames) - first_frame + 1
    dt = _frame_seconds(tables, frames)
    tracks: list[Track] = []
    for table, table_frames, to_rows in zip(
        tables, frames, (_vehicle_rows, _pedestrian_rows), strict=False
    ):
        with format_errors(table.path, ScenarioFormatError):
            read = build_tracks(to_rows(table, table_frames - first_frame), num_steps)
        _check_distinct_ids(table.path, tracks, read)
        tracks += read
    return Scenario(vector_map, dt, tracks, source=str(vehicle_csv), first_step=first_frame)


def _read_table(path: Path, required: tuple[str, ...]) -> _Table:
    """The data rows of a track CSV (none for a file with a header only); ScenarioFormatError
    naming the file for text that is not UTF-8 CSV, missing columns, a row of the wrong length or
    an empty track id."""
    with format_errors(path, ScenarioFormatError):
        table = read_csv_columns(path, required)
    return _Table(table.columns, table.lines, path)


def _frame_seconds(tables: list[_Table], frames: list[NDArray[np.int64]]) -> float:
    """Seconds per frame from ``timestamp_ms``: one rate and one clock in every row of every
    file, else ScenarioFormatError naming the file and line where the timestamp disagrees."""
    stamps = []
    for table in tables:
        with format_errors(table.path, ScenarioFormatError):
            stamps.append(table.numbers("timestamp_ms")[:, 0])
    all_frames, all_stamps = np.concatenate(frames), np.concatenate(stamps)
    first, last = int(np.argmin(all_frames)), int(np.argmax(all_frames))
    span = int(all_frames[last] - all_frames[first])
    # A recording of one frame gives nothing to measure the rate by: the dataset's 100 ms.
    frame_ms = float(all_stamps[last] - all_stamps[first]) / span if span else 100.0
    if not frame_ms > 0:
        raise ScenarioFormatError(tables[0].path, "timestamp_ms does not increase with frame_id")
    for table, table_frames, table_stamps in zip(tables, frames, stamps, strict=True):
        expected = all_stamps[first] + (table_frames - all_frames[first]) * frame_ms
        off = np.flatnonzero(np.abs(table_stamps - expected) > TIMESTAMP_TOL_MS)
        if off.size:
            i = int(off[0])
            raise ScenarioFormatError(
                table.path,
                f"line {table.lines[i]}: timestamp_ms {table_stamps[i]:g} disagrees with "
                f"frame_id {int(table_frames[i])} at {frame_ms:g} ms per frame",
            )
    return frame_ms / 1000.0


def _vehicle_rows(table: _Table, steps: NDArray[np.int64]) -> TrackRows:
    """TrackRows of a vehicle file, ``steps`` counted from the scenario's first frame."""
    return TrackRows(
        track_id=np.array(table.columns["track_id"], dtype=str),
        step=steps,
        xy=table.numbers("x", "y"),
        heading=table.numbers("psi_rad")[:, 0],
        kind=np.full(len(steps), "vehicle"),
        velocity=table.numbers("vx", "vy"),
        size=table.numbers("length", "width"),
    )


def _pedestrian_rows(table: _Table, steps: NDArray[np.int64]) -> TrackRows:
    """TrackRows of a pedestrian file: ids with the ``P`` prefix, kind by speed and heading from
    the velocity (see the module docstring)."""
    ids = np.array(
        [
            i if i.startswith(PEDESTRIAN_PREFIX) else PEDESTRIAN_PREFIX + i
            for i in table.columns["track_id"]
        ],
        dtype=str,
    )
    velocity = table.numbers("vx", "vy")
    heading = np.zeros(len(ids))
    kind = np.full(len(ids), "pedestrian", dtype=object)
    for track_id in np.unique(ids):
        rows = np.flatnonzero(ids == track_id)
        rows = rows[np.argsort(steps[rows], kind="stable")]
        if np.percentile(np.linalg.norm(velocity[rows], axis=1), 90) > CYCLIST_SPEED_MPS:
            kind[rows] = "cyclist"
        heading[rows] = heading_from_velocity(velocity[rows])
    return TrackRows(
        track_id=ids,
        step=steps,
        xy=table.numbers("x", "y"),
        heading=heading,
        kind=kind.astype(str),
        velocity=velocity,
    )


def heading_from_velocity(velocity: FloatArray) -> FloatArray:
    """(T,) heading (rad) of one agent's (T, 2) velocities (m/s) in time order: the direction of
    motion where the speed is at least ``HEADING_MIN_SPEED_MPS``, held through slower steps, the
    first moving heading before the agent first moves, 0 where it never does."""
    moving = np.flatnonzero(np.linalg.norm(velocity, axis=1) >= HEADING_MIN_SPEED_MPS)
    if moving.size == 0:
        return np.zeros(len(velocity))
    direction = np.arctan2(velocity[moving, 1], velocity[moving, 0])
    # Index of the last moving step at or before each step (the first one before any).
    latest = np.searchsorted(moving, np.arange(len(velocity)), side="right") - 1
    return direction[np.maximum(latest, 0)]


def _check_distinct_ids(path: Path, earlier: list[Track], read: list[Track]) -> None:
    """ScenarioFormatError naming ``path`` when a track just read has the id of an earlier one
    (an agent of the pedestrian file with a vehicle's id)."""
    clash = sorted({t.id for t in earlier} & {t.id for t in read})
    if clash:
        raise ScenarioFormatError(
            path, f"track ids {clash[:5]} are also vehicle ids of the same recording"
        )
