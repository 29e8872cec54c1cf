"""Entry points ``load_map`` / ``load_scenario`` / ``iter_scenarios``: detect the format from
content (Waymo TFRecord and INTERACTION track files by name), then dispatch.

Readers live one per format (``av2``, ``lanelet2``, ``commonroad``, ``geojson``, ``waymo``,
``interaction``) and are imported lazily through the registries below, so a user without pyarrow
can still read CommonRoad.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from os import PathLike
from pathlib import Path
from typing import Any

from mapenc.errors import MapencError, MapFormatError
from mapenc.maps.store import is_store_shard
from mapenc.maps.types import Scenario, VectorMap
from mapenc.safeio import GZIP_MAGIC, gunzip

PathType = str | PathLike[str]

# The tracks file of an AV2 sensor log, moved into the city frame.
SENSOR_LOG_TRACKS = "DERIVED_tracks_city_frame.parquet"
UTF8_BOM = b"\xef\xbb\xbf"
# Waymo Open Motion files: *.tfrecord(s), shards *.tfrecord-00012-of-01000, each optionally gzipped;
# FILE#i names the scenario in record i (from 0) of a file of many.
WAYMO_FILE_NAME = re.compile(r"\.tfrecords?(-\d+-of-\d+)?(\.gz)?$")
WAYMO_RECORD = re.compile(r"^(?P<file>.+)#(?P<index>\d+)$")
# INTERACTION recordings: recorded_trackfiles/<LOCATION>/vehicle_tracks_NNN.csv[.gz], the
# location's map in maps/<LOCATION>.osm; a release folder holds maps/ and recorded_trackfiles/.
INTERACTION_VEHICLE_FILE = re.compile(r"^vehicle_tracks_(?P<number>\d+)\.csv(\.gz)?$")
INTERACTION_TRACKS_FOLDER = "recorded_trackfiles"

# format name -> "module:function" of the reader taking a Path.
MAP_READERS: dict[str, str] = {
    "av2": "mapenc.maps.av2:read_av2_map",
    "lanelet2": "mapenc.maps.lanelet2:read_lanelet2_map",
    "commonroad": "mapenc.maps.commonroad:read_commonroad_map",
    "geojson": "mapenc.maps.geojson:read_geojson_map",
    "interaction": "mapenc.maps.interaction:read_interaction_map",
}
SCENARIO_READERS: dict[str, str] = {
    "av2": "mapenc.maps.av2:read_av2_scenario",
    "commonroad": "mapenc.maps.commonroad:read_commonroad_scenario",
    "generic": "mapenc.maps.geojson:read_generic_scenario",
    "waymo": "mapenc.maps.waymo:read_waymo_scenario",
    "interaction": "mapenc.maps.interaction:read_interaction_scenario",
}
# Files that may hold many scenarios: format name -> "module:function" yielding them one by one.
SCENARIO_STREAMS: dict[str, str] = {
    "waymo": "mapenc.maps.waymo:iter_waymo_scenarios",
    "store": "mapenc.maps.store:iter_store_scenarios",
}


# While a ``reading_once()`` block runs: (path, size, mtime, inode) -> content already read.
_READ_ONCE: ContextVar[dict[tuple[str, int, int, int], bytes] | None] = ContextVar(
    "mapenc_read_once", default=None
)


@contextmanager
def reading_once() -> Iterator[None]:
    """Inside the block each unchanged file is read and inflated once, however many readers ask.

    Format detection, ``holds_tracks`` and the reader itself then share one read of the file.
    The contents are dropped when the outermost block ends, so no memory is held afterwards.
    """
    if _READ_ONCE.get() is not None:
        yield
        return
    token = _READ_ONCE.set({})
    try:
        yield
    finally:
        _READ_ONCE.reset(token)


def read_bytes(path: PathType) -> bytes:
    """Whole file content, gunzipped when it starts with the gzip magic.

    The gzip stream is inflated chunk by chunk up to ``mapenc.safeio.max_inflated_bytes()``.
    Raises MapFormatError for a missing or empty file, a ``.gz`` file that is not gzip, a
    truncated gzip stream, or content that inflates beyond the limit.
    """
    p = Path(path)
    try:
        info = p.stat()
    except OSError:
        info = None
    if info is None or not p.is_file():
        raise MapFormatError(p, "no such file")
    remembered = _READ_ONCE.get()
    key = (str(p.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    if remembered is not None and key in remembered:
        return remembered[key]
    raw = _inflated(p, p.read_bytes())
    if remembered is not None:
        remembered.clear()  # one file's content at a time
        remembered[key] = raw
    return raw


def _inflated(p: Path, raw: bytes) -> bytes:
    """``raw`` gunzipped when it is gzip; MapFormatError for an empty or bad file."""
    if not raw:
        raise MapFormatError(p, "empty file")
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gunzip(raw)
        except MapencError as err:
            raise MapFormatError(p, str(err)) from None
        if not raw:
            raise MapFormatError(p, "empty file after gunzip")
    elif p.suffix == ".gz":
        raise MapFormatError(p, "has a .gz suffix but is not gzip-compressed")
    return raw


def detect_format(path: PathType) -> str:
    """Name of the map format of ``path`` ("av2", "lanelet2", "commonroad", "geojson"), by content."""
    head = read_bytes(path)[:4096].removeprefix(UTF8_BOM).lstrip()
    if head.startswith(b"{"):
        if b'"lane_segments"' in head or b'"drivable_areas"' in head:
            return "av2"
        if b"FeatureCollection" in head or b'"features"' in head:
            return "geojson"
        raise MapFormatError(
            path, "JSON that is neither an AV2 map nor a GeoJSON FeatureCollection"
        )
    if head.startswith(b"["):
        raise MapFormatError(
            path,
            "JSON whose top level is an array; a map is an object "
            "(an AV2 map or a GeoJSON FeatureCollection)",
        )
    if head.startswith(b"<"):
        if b"<osm" in head:
            return "lanelet2"
        if b"<commonRoad" in head:
            return "commonroad"
        raise MapFormatError(path, "XML that is neither Lanelet2 OSM nor CommonRoad")
    raise MapFormatError(
        path,
        "unrecognised map format (expected JSON or XML; Waymo TFRecord files are known by a "
        ".tfrecord name)",
    )


def _reader(spec: str) -> Callable[..., Any]:
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def load_map(path: PathType) -> VectorMap:
    """Read a vector map: AV2 ``log_map_archive_*.json``, Lanelet2 ``.osm``, CommonRoad
    ``.xml``/``.xml.gz`` or GeoJSON FeatureCollection. A folder holding exactly one of these
    (e.g. an AV2 scenario folder, a generic scene folder with ``map.geojson``) also works, and
    so do an INTERACTION track file or location folder (their location's map, in their frame)."""
    p = Path(path)
    if is_interaction_tracks(p) or (p.is_dir() and interaction_track_files(p)):
        return _reader(MAP_READERS["interaction"])(p)
    if p.is_dir():
        p = find_map_in_folder(p)
    if is_waymo_file(p):
        return load_scenario(p).map
    with reading_once():
        reader = _reader(MAP_READERS[detect_format(p)])
        result: VectorMap = reader(p)
    return result


def find_map_in_folder(folder: Path) -> Path:
    """The map file inside a scene folder (``log_map_archive_*.json`` or ``map.geojson``)."""
    candidates = sorted(folder.glob("log_map_archive_*.json")) + sorted(folder.glob("map.geojson"))
    if len(candidates) != 1:
        raise MapFormatError(
            folder,
            f"expected one map file (log_map_archive_*.json or map.geojson), found {len(candidates)}",
        )
    return candidates[0]


def _is_av2_scene_folder(folder: Path) -> bool:
    """The folder holds an AV2 scenario parquet or a sensor log's tracks."""
    return any(folder.glob("scenario_*.parquet")) or (folder / SENSOR_LOG_TRACKS).is_file()


def holds_tracks(path: PathType) -> bool:
    """Whether ``load_scenario`` has tracks to read at ``path`` (an AV2 parquet or scene folder, a
    generic scene folder, a CommonRoad file with dynamic obstacles, an INTERACTION vehicle track
    file); False for a map alone, and for a folder of many INTERACTION recordings."""
    p = Path(path)
    if p.is_dir():
        return _is_av2_scene_folder(p) or (p / "tracks.csv").is_file()
    if p.suffix == ".parquet" or is_waymo_file(p) or is_interaction_tracks(p):
        return True
    raw = read_bytes(p)
    return b"<commonRoad" in raw[:4096] and b"<dynamicObstacle" in raw


def load_scenario(
    path: PathType,
    tracks: PathType | None = None,
    dt: float | None = None,
    heading_units: str | None = None,
) -> Scenario:
    """Read a scenario: an AV2 ``scenario_*.parquet`` (map JSON beside it) or its folder, an AV2
    sensor log's ``DERIVED_tracks_city_frame.parquet`` or its folder, a
    CommonRoad XML, a Waymo Open Motion ``.tfrecord`` of one scenario, an INTERACTION
    ``vehicle_tracks_NNN.csv[.gz]`` (or a folder holding one recording), or the generic format (a
    folder with ``map.geojson`` + ``tracks.csv``, or the GeoJSON path plus ``tracks``; ``dt`` and
    ``heading_units`` ("rad" or "deg") override the GeoJSON's ``properties.dt`` /
    ``properties.heading_units``). Files of many scenarios (Waymo shards): use ``iter_scenarios``."""
    with reading_once():
        return _load_scenario(Path(path), tracks, dt, heading_units)


def _load_scenario(
    p: Path, tracks: PathType | None, dt: float | None, heading_units: str | None
) -> Scenario:
    """``load_scenario`` once its reads are shared."""
    files = interaction_track_files(p)
    if files:
        if len(files) != 1:
            raise MapFormatError(
                p,
                f"holds {len(files)} INTERACTION recordings; name one vehicle_tracks_NNN.csv "
                "file, or read them all with iter_scenarios",
            )
        p = files[0]
    if is_interaction_tracks(p):
        return _reader(SCENARIO_READERS["interaction"])(p)
    if p.is_dir():
        if _is_av2_scene_folder(p):
            return _reader(SCENARIO_READERS["av2"])(p)
        if (p / "tracks.csv").is_file():
            map_path = find_map_in_folder(p)
            return _reader(SCENARIO_READERS["generic"])(
                map_path, p / "tracks.csv", dt, heading_units
            )
        raise MapFormatError(
            p,
            "folder holds no scenario_*.parquet, DERIVED_tracks_city_frame.parquet or map.geojson + tracks.csv",
        )
    if p.suffix == ".parquet":
        return _reader(SCENARIO_READERS["av2"])(p)
    if is_waymo_file(p):
        file, index = waymo_record(p)
        return _reader(SCENARIO_READERS["waymo"])(file, index)
    fmt = detect_format(p)
    if fmt == "commonroad":
        return _reader(SCENARIO_READERS["commonroad"])(p)
    if fmt == "geojson":
        if tracks is None:
            raise MapFormatError(p, "a GeoJSON scenario needs its tracks CSV (tracks=...)")
        return _reader(SCENARIO_READERS["generic"])(p, Path(tracks), dt, heading_units)
    raise MapFormatError(p, f"{fmt} files hold a map only, no tracks; use load_map")


def waymo_record(path: PathType) -> tuple[Path, int | None]:
    """(file, record index) of ``FILE#i``; (path, None) for a plain path."""
    match = WAYMO_RECORD.match(str(path))
    if match is None or Path(path).exists():
        return Path(path), None
    return Path(match["file"]), int(match["index"])


def is_waymo_file(path: PathType) -> bool:
    """Whether ``path`` names a Waymo Open Motion TFRecord file (``*.tfrecord``, a shard
    ``*.tfrecord-00000-of-01000``, optionally ``.gz``) or one record of it (``FILE#i``)."""
    return WAYMO_FILE_NAME.search(waymo_record(path)[0].name) is not None


def is_interaction_tracks(path: PathType) -> bool:
    """Whether ``path`` is named like an INTERACTION vehicle track file
    (``vehicle_tracks_NNN.csv``, optionally ``.gz``)."""
    return INTERACTION_VEHICLE_FILE.match(Path(path).name) is not None and Path(path).is_file()


def interaction_track_files(folder: PathType) -> list[Path]:
    """The vehicle track files of an INTERACTION release folder (in
    ``recorded_trackfiles/<LOCATION>/``), of its ``recorded_trackfiles`` folder or of one
    location's folder, sorted; [] for any other folder."""
    p = Path(folder)
    if not p.is_dir():
        return []
    if (p / INTERACTION_TRACKS_FOLDER).is_dir():
        p = p / INTERACTION_TRACKS_FOLDER
    pattern = "*/*" if p.name == INTERACTION_TRACKS_FOLDER else "*"
    return sorted(f for f in p.glob(pattern) if is_interaction_tracks(f))


def iter_scenarios(
    path: PathType, tracks: PathType | None = None, dt: float | None = None
) -> Iterator[Scenario]:
    """Every scenario at ``path``, one in memory at a time: each record of a Waymo TFRecord shard
    (``Scenario.source`` is ``FILE#i`` when the file holds more than one), each scenario of a
    scenario-store shard (``*.scenarios``, ``mapenc prepare``), each recording of an
    INTERACTION release or location folder, else the one scenario ``load_scenario(path, tracks,
    dt)`` reads."""
    file, index = waymo_record(path)
    if index is None and is_waymo_file(file):
        yield from _reader(SCENARIO_STREAMS["waymo"])(file)
    elif is_store_shard(path):
        yield from _reader(SCENARIO_STREAMS["store"])(path)
    elif interaction_track_files(path):
        for track_file in interaction_track_files(path):
            yield load_scenario(track_file)
    else:
        yield load_scenario(path, tracks=tracks, dt=dt)


def load_map_or_scenario(
    path: PathType,
    tracks: PathType | None = None,
    dt: float | None = None,
    heading_units: str | None = None,
) -> tuple[VectorMap, Scenario | None]:
    """The scenario when ``path`` holds tracks (AV2 parquet or folder, generic scene, CommonRoad
    XML with dynamic obstacles) or ``tracks`` names a CSV, else the map alone (scenario None).
    Each file is read once."""
    with reading_once():
        if tracks is None and not holds_tracks(path):
            return load_map(path), None
        scenario = load_scenario(path, tracks=tracks, dt=dt, heading_units=heading_units)
    return scenario.map, scenario


def summarize(vector_map: VectorMap, scenario: Scenario | None) -> dict[str, Any]:
    """``VectorMap.summary()`` plus, for a scenario, a ``scenario`` entry with track counts."""
    summary: dict[str, Any] = {"map": vector_map.summary()}
    if scenario is not None:
        kinds = Counter(track.kind for track in scenario.tracks)
        summary["scenario"] = {
            "source": scenario.source,
            "tracks": len(scenario.tracks),
            "kinds": dict(kinds.most_common()),
            "dt_s": scenario.dt,
            "steps": scenario.num_steps,
            "duration_s": round(scenario.dt * max(scenario.num_steps - 1, 0), 3),
            "valid_positions": int(sum(int(t.valid.sum()) for t in scenario.tracks)),
            "focal_track_id": scenario.focal_track_id,
        }
        metadata = {
            "scenario_id": scenario.scenario_id,
            "current_step": scenario.current_step,
            "first_step": scenario.first_step or None,
            "ego_track_id": scenario.ego_track_id,
            "tracks_to_predict": list(scenario.tracks_to_predict) or None,
        }
        summary["scenario"].update({k: v for k, v in metadata.items() if v is not None})
    return summary
