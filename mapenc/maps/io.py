"""Entry points ``load_map`` / ``load_scenario``: detect the format from content, then dispatch.

Readers live one per format (``av2``, ``lanelet2``, ``commonroad``, ``geojson``) and are imported
lazily through the registries below, so a user without pyarrow can still read CommonRoad.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from os import PathLike
from pathlib import Path
from typing import Any

from mapenc.errors import MapencError, MapFormatError
from mapenc.maps.types import Scenario, VectorMap
from mapenc.safeio import GZIP_MAGIC, gunzip

PathType = str | PathLike[str]

# The tracks file of an AV2 sensor log, moved into the city frame.
SENSOR_LOG_TRACKS = "DERIVED_tracks_city_frame.parquet"
UTF8_BOM = b"\xef\xbb\xbf"

# format name -> "module:function" of the reader taking a Path.
MAP_READERS: dict[str, str] = {
    "av2": "mapenc.maps.av2:read_av2_map",
    "lanelet2": "mapenc.maps.lanelet2:read_lanelet2_map",
    "commonroad": "mapenc.maps.commonroad:read_commonroad_map",
    "geojson": "mapenc.maps.geojson:read_geojson_map",
}
SCENARIO_READERS: dict[str, str] = {
    "av2": "mapenc.maps.av2:read_av2_scenario",
    "commonroad": "mapenc.maps.commonroad:read_commonroad_scenario",
    "generic": "mapenc.maps.geojson:read_generic_scenario",
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
    raise MapFormatError(path, "unrecognised map format (expected JSON or XML)")


def _reader(spec: str) -> Callable[..., Any]:
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def load_map(path: PathType) -> VectorMap:
    """Read a vector map: AV2 ``log_map_archive_*.json``, Lanelet2 ``.osm``, CommonRoad
    ``.xml``/``.xml.gz`` or GeoJSON FeatureCollection. A folder holding exactly one of these
    (e.g. an AV2 scenario folder, a generic scene folder with ``map.geojson``) also works."""
    p = Path(path)
    if p.is_dir():
        p = find_map_in_folder(p)
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
    generic scene folder, a CommonRoad file with dynamic obstacles); False for a map alone."""
    p = Path(path)
    if p.is_dir():
        return _is_av2_scene_folder(p) or (p / "tracks.csv").is_file()
    if p.suffix == ".parquet":
        return True
    raw = read_bytes(p)
    return b"<commonRoad" in raw[:4096] and b"<dynamicObstacle" in raw


def load_scenario(
    path: PathType, tracks: PathType | None = None, dt: float | None = None
) -> Scenario:
    """Read a scenario: an AV2 ``scenario_*.parquet`` (map JSON beside it) or its folder, an AV2
    sensor log's ``DERIVED_tracks_city_frame.parquet`` or its folder, a
    CommonRoad XML, or the generic format (a folder with ``map.geojson`` + ``tracks.csv``, or the
    GeoJSON path plus ``tracks``; ``dt`` overrides the GeoJSON's ``properties.dt``)."""
    with reading_once():
        return _load_scenario(Path(path), tracks, dt)


def _load_scenario(p: Path, tracks: PathType | None, dt: float | None) -> Scenario:
    """``load_scenario`` once its reads are shared."""
    if p.is_dir():
        if _is_av2_scene_folder(p):
            return _reader(SCENARIO_READERS["av2"])(p)
        if (p / "tracks.csv").is_file():
            return _reader(SCENARIO_READERS["generic"])(find_map_in_folder(p), p / "tracks.csv", dt)
        raise MapFormatError(
            p,
            "folder holds no scenario_*.parquet, DERIVED_tracks_city_frame.parquet or map.geojson + tracks.csv",
        )
    if p.suffix == ".parquet":
        return _reader(SCENARIO_READERS["av2"])(p)
    fmt = detect_format(p)
    if fmt == "commonroad":
        return _reader(SCENARIO_READERS["commonroad"])(p)
    if fmt == "geojson":
        if tracks is None:
            raise MapFormatError(p, "a GeoJSON scenario needs its tracks CSV (tracks=...)")
        return _reader(SCENARIO_READERS["generic"])(p, Path(tracks), dt)
    raise MapFormatError(p, f"{fmt} files hold a map only, no tracks; use load_map")
