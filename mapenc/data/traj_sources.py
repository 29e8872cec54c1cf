"""Scenarios for trajectory work: load them from paths, and split them by recording.

Data paths (``load_scenarios``): CommonRoad ``.xml``/``.xml.gz`` files and Waymo Open Motion
``.tfrecord`` files or shards (every scenario of each), or folders holding them (searched
recursively), AV2 scenario folders (``scenario_*.parquet`` + map JSON), generic scene folders
(``map.geojson`` + ``tracks.csv``), and ``synthetic`` / ``synthetic:N`` for N scenes of the
embedded synthetic town.

The split (``split_scenarios``) is fixed and needs no side file:

1. Each scenario gets a *recording key* from its content: the smallest SHA-1 over its tracks of
   ``"{first valid step}:{x:.1f}:{y:.1f}"`` (first position, decimetres). Two files holding the
   same recorded traffic get the same key, whatever their names. In the NGSIM CommonRoad set,
   122 files hold only 63 distinct recordings (e.g. ``USA_Lanker-2_10_T-1`` and
   ``USA_Lanker-2_22_T-1`` share all 68 vehicles), while MANIFEST.csv's ``obstacle_fingerprint``
   flags only 5 of these duplicates.
2. Files that share any track start (same step, same first position) are duplicates, or
   near-duplicates with a vehicle more or less: only the first (by source path) is kept. When a
   ``MANIFEST.csv`` with ``file`` and ``obstacle_fingerprint`` columns sits in a data folder (or
   its parent), files sharing a fingerprint are dropped the same way.
3. ``bucket = int(sha256(SPLIT_SALT + ":" + key)[:8], 16) % 100``: train below 70, val below 85,
   test otherwise (about 70/15/15 of the recordings). Every file of a recording lands in the
   same split, and a file's split does not depend on which other files are loaded.
   ``SPLIT_SALT`` was chosen so that US101, Lankershim and Peachtree each have recordings in all
   three splits (Peachtree has only 8 recordings).
"""

from __future__ import annotations

import csv
import functools
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mapenc.errors import ConfigError, DataError, MapencError
from mapenc.maps import iter_scenarios
from mapenc.maps.io import is_waymo_file
from mapenc.maps.types import Scenario

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_SALT = "mapenc-traj-v25"
TRAIN_PERCENT, VAL_PERCENT = 70, 15
SYNTHETIC_PREFIX = "synthetic"
DEFAULT_SYNTHETIC_SCENES = 24
COMMONROAD_SUFFIXES = (".xml", ".xml.gz")


def track_digests(scenario: Scenario) -> set[str]:
    """SHA-1 of ``"{first valid step}:{x:.1f}:{y:.1f}"`` for each track that is ever valid."""
    digests = set()
    for track in scenario.tracks:
        valid = np.flatnonzero(track.valid)
        if valid.size:
            t = int(valid[0])
            x, y = track.xy[t]
            digests.add(hashlib.sha1(f"{t}:{x:.1f}:{y:.1f}".encode()).hexdigest())
    return digests


def recording_key(scenario: Scenario) -> str:
    """Content key of the recorded traffic (see the module docstring); DataError with no tracks."""
    digests = track_digests(scenario)
    if not digests:
        raise DataError(f"{scenario.source or 'scenario'}: no valid track to key the recording by")
    return min(digests)


def split_of_key(key: str) -> str:
    """ "train", "val" or "test" for a recording key (see the module docstring)."""
    bucket = int(hashlib.sha256(f"{SPLIT_SALT}:{key}".encode()).hexdigest()[:8], 16) % 100
    if bucket < TRAIN_PERCENT:
        return "train"
    return "val" if bucket < TRAIN_PERCENT + VAL_PERCENT else "test"


def _scene_files(path: Path, visited: set[Path] | None = None) -> Iterator[Path]:
    """Scenario files and scene folders under ``path`` (itself included), sorted.

    Links to folders are followed, but each real folder is entered once (``visited`` holds the
    resolved folders seen so far), so links that loop back are walked through only once.
    """
    if path.is_file():
        yield path
        return
    visited = set() if visited is None else visited
    real = path.resolve()
    if real in visited:
        return
    visited.add(real)
    if sorted(path.glob("scenario_*.parquet")) or (path / "tracks.csv").is_file():
        yield path
        return
    for child in sorted(path.iterdir()):
        if child.is_dir():
            yield from _scene_files(child, visited)
        elif child.name.endswith(COMMONROAD_SUFFIXES) or is_waymo_file(child):
            yield child


def _synthetic(spec: str) -> list[Scenario]:
    """``synthetic`` or ``synthetic:N`` -> N scenes of the embedded synthetic town (seed 0)."""
    from mapenc.maps.synthetic import make_scenarios

    _, _, count = spec.partition(":")
    try:
        n = int(count) if count else DEFAULT_SYNTHETIC_SCENES
    except ValueError:
        raise ConfigError(f"data path {spec!r}: expected synthetic or synthetic:N") from None
    if n < 1:
        raise ConfigError(f"data path {spec!r}: N must be >= 1")
    return list(make_scenarios(n, seed=0))


def _file_stamp(path: Path) -> tuple[tuple[str, int, int, int, int], ...]:
    """(name, mtime ns, change time ns, inode, size) of a file, or of every file directly in a
    scene folder. The change time cannot be set back by a program (``touch -d`` sets mtime only),
    so an edit that keeps the size and mtime still changes the stamp."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    stats = [(p.name, p.stat()) for p in files]
    return tuple((n, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_size) for n, s in stats)


@functools.lru_cache(maxsize=256)
def _load_scenes(
    path: Path, stamp: tuple[tuple[str, int, int, int, int], ...]
) -> tuple[Scenario, ...]:
    """``iter_scenarios(path)`` (one scenario, or each of a Waymo shard), read once per process
    while ``stamp`` (the files) is unchanged: training and evaluation, and the runs of an encoder
    study, share the parsed scenes."""
    return tuple(iter_scenarios(path))


def load_scenarios(paths: Sequence[str], skipped: dict[str, str] | None = None) -> list[Scenario]:
    """Every scenario found under ``paths`` (see the module docstring), in a stable order.

    Scenes are parsed once per process and shared (they are never modified); a file that changes
    on disk is read again. Raises MapFormatError naming a file that cannot be read, DataError when
    nothing is found. With ``skipped`` (a dict), a scene file or folder that cannot be read is left
    out instead (a shard with a broken record as a whole) and recorded there: path -> the error
    message (which names the file at fault).
    """
    scenarios: list[Scenario] = []
    for spec in paths:
        if spec == SYNTHETIC_PREFIX or spec.startswith(SYNTHETIC_PREFIX + ":"):
            scenarios.extend(_synthetic(spec))
            continue
        path = Path(spec)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        found: list[Scenario] = []
        for scene_path in _scene_files(path):
            try:
                found.extend(_load_scenes(scene_path, _file_stamp(scene_path)))
            except MapencError as err:
                if skipped is None:
                    raise
                skipped[str(scene_path)] = str(err)
        if not found:
            unreadable = f" ({len(skipped)} unreadable, skipped)" if skipped else ""
            raise DataError(f"{path}: no CommonRoad, AV2, Waymo or generic scene found{unreadable}")
        scenarios.extend(found)
    return scenarios


def _manifest_fingerprints(paths: Sequence[str]) -> dict[str, str]:
    """Resolved file path -> ``obstacle_fingerprint`` from MANIFEST.csv files near ``paths``."""
    fingerprints: dict[str, str] = {}
    for spec in paths:
        path = Path(spec)
        folder = path if path.is_dir() else path.parent
        for manifest in (folder / "MANIFEST.csv", folder.parent / "MANIFEST.csv"):
            if not manifest.is_file():
                continue
            with manifest.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            if rows and {"file", "obstacle_fingerprint"} <= set(rows[0]):
                for row in rows:
                    resolved = str((manifest.parent / row["file"]).resolve())
                    fingerprints[resolved] = row["obstacle_fingerprint"]
    return fingerprints


def split_scenarios(
    scenarios: Sequence[Scenario], split: str, paths: Sequence[str] = ()
) -> list[Scenario]:
    """The scenarios of ``split`` ("train", "val", "test" or "all"), duplicates removed.

    Args:
        scenarios: as returned by ``load_scenarios``.
        split: which part to keep; "all" keeps every distinct recording.
        paths: the data paths the scenarios came from, to find MANIFEST.csv files.
    """
    if split not in (*SPLITS, "all"):
        raise ConfigError(f"split must be one of {(*SPLITS, 'all')}, got {split!r}")
    fingerprints = _manifest_fingerprints(paths)
    seen: set[str] = set()
    kept: list[Scenario] = []
    for sc in sorted(scenarios, key=lambda s: s.source):
        digests = track_digests(sc)
        if not digests:
            continue  # a scene with no track gives no sample in any split
        fingerprint = fingerprints.get(str(Path(sc.source).resolve())) if sc.source else None
        marks = digests | ({f"manifest:{fingerprint}"} if fingerprint else set())
        if marks & seen:
            continue
        seen |= marks
        if split in ("all", split_of_key(min(digests))):
            kept.append(sc)
    return kept
