"""Scenarios for trajectory work: load them from paths, name them, and split them by recording.

Data paths (``load_scenarios``): CommonRoad ``.xml``/``.xml.gz`` files, Waymo Open Motion
``.tfrecord`` files or shards (every scenario of each) and INTERACTION ``vehicle_tracks_NNN.csv``
files (one recording each, with its pedestrian file and map), or folders holding them (searched
recursively: an INTERACTION release folder, one location's folder), AV2 scenario and sensor-log
folders, generic scene folders (``map.geojson`` + ``tracks.csv``), and ``synthetic`` /
``synthetic:N`` for N scenes of the embedded synthetic town.

Each scene is *named* by its path relative to the data path it was found under (a file given
directly is named by its file name; an INTERACTION recording by its vehicle track file; synthetic
scenes ``synthetic/<i>``); a scene read back from a scenario store keeps the name its source had
under the data path it was prepared from (``Scenario.provenance``). The split
(``split_scenarios``) keeps whole recordings per split and drops exact duplicates; it is the fixed
split file that lists the scenes by content, or one planned at load time (``mapenc.data.split``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from mapenc.data.split import SPLITS, SplitPlan, merge_plans, resolve_split
from mapenc.errors import ConfigError, DataError, MapencError
from mapenc.maps import iter_scenarios
from mapenc.maps.io import holds_tracks, is_interaction_tracks, is_waymo_file
from mapenc.maps.store import is_store_shard
from mapenc.maps.types import Scenario

Key = TypeVar("Key")
Value = TypeVar("Value")

SYNTHETIC_PREFIX = "synthetic"
DEFAULT_SYNTHETIC_SCENES = 24
COMMONROAD_SUFFIXES = (".xml", ".xml.gz")


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
    if holds_tracks(path):
        yield path
        return
    for child in sorted(path.iterdir()):
        if child.is_dir():
            yield from _scene_files(child, visited)
        elif (
            child.name.endswith(COMMONROAD_SUFFIXES)
            or is_waymo_file(child)
            or is_interaction_tracks(child)
            or is_store_shard(child)
        ):
            yield child


def scene_files_under(path: Path) -> list[Path]:
    """The scene files and folders under a data path (``_scene_files``); DataError when the
    path does not exist."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return list(_scene_files(path))


def _is_synthetic(spec: str) -> bool:
    return spec == SYNTHETIC_PREFIX or spec.startswith(SYNTHETIC_PREFIX + ":")


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


# Scene files kept parsed: more than a study's data paths hold (315 files for NGSIM, INTERACTION,
# womd_210 and MONA/inD), since a least-recently-used cache read in order through more files
# than it holds keeps none of them.
SCENE_FILES_KEPT = 4096


@functools.lru_cache(maxsize=SCENE_FILES_KEPT)
def _load_scenes(
    path: Path, stamp: tuple[tuple[str, int, int, int, int], ...]
) -> tuple[Scenario, ...]:
    """``iter_scenarios(path)`` (one scenario, or each of a Waymo shard), read once per process
    while ``stamp`` (the files) is unchanged: training and evaluation, and the runs of an encoder
    study, share the parsed scenes."""
    return tuple(iter_scenarios(path))


def load_scenarios(paths: Sequence[str], skipped: dict[str, str] | None = None) -> list[Scenario]:
    """Every scenario found under ``paths`` (see the module docstring), in a stable order: per
    data path, the order of its files (a scenario store's in the order of the sources it was
    prepared from, so a store of one data path loads, and splits, as that data path does).

    Scenes are parsed once per process and shared (they are never modified); a file that changes
    on disk is read again. Raises MapFormatError naming a file that cannot be read, DataError when
    nothing is found. With ``skipped`` (a dict), a scene file or folder that cannot be read is left
    out instead (a shard with a broken record as a whole) and recorded there: path -> the error
    message (which names the file at fault).
    """
    scenarios: list[Scenario] = []
    for spec in paths:
        if _is_synthetic(spec):
            scenarios.extend(_synthetic(spec))
            continue
        path = Path(spec)
        found: list[Scenario] = []
        for scene_path in scene_files_under(path):
            try:
                found.extend(_load_scenes(scene_path, _file_stamp(scene_path)))
            except MapencError as err:
                if skipped is None:
                    raise
                skipped[str(scene_path)] = str(err)
        if not found:
            unreadable = f" ({len(skipped)} unreadable, skipped)" if skipped else ""
            raise DataError(
                f"{path}: no CommonRoad, AV2, Waymo, INTERACTION or generic scene found{unreadable}"
            )
        prepared = [sc.provenance.name for sc in found if sc.provenance is not None]
        if len(prepared) == len(found):  # a scenario store's: in the order of its sources
            found = [sc for _, sc in sorted(zip(prepared, found, strict=True), key=_source_order)]
        scenarios.extend(found)
    return scenarios


def _source_order(named: tuple[str, Scenario]) -> tuple[tuple[str, ...], int]:
    """Sort key of a scene read back from a scenario store, given with its provenance name: where
    its source stood in the walk of the data path it was prepared from (``_scene_files``: folder
    and file names in order), then its record number (``FILE#i``; -1 for a file of one)."""
    name = named[0]
    file, mark, record = name.rpartition("#")
    if mark and record.isdigit():
        return Path(file).parts, int(record)
    return Path(name).parts, -1


def shard_files(paths: Sequence[str]) -> list[Path]:
    """The scene files and folders under ``paths`` (folders searched as by ``load_scenarios``),
    each one a shard of a stream (``mapenc.data.streaming``): a Waymo or scenario-store shard, a
    scene file or folder. Raises ConfigError for synthetic data (nothing on disk to stream; write
    it to a store shard), DataError for a missing path or one that holds no scene."""
    shards: list[Path] = []
    for spec in paths:
        if _is_synthetic(spec):
            raise ConfigError(
                f"data path {spec!r}: synthetic scenes are made in memory and cannot be streamed"
            )
        path = Path(spec)
        found = scene_files_under(path)
        if not found:
            raise DataError(f"{path}: no scene file or shard to stream")
        shards.extend(found)
    return shards


def source_name(source: str, roots: Sequence[Path]) -> str:
    """The name of a scene read from ``source`` (a file or folder; ``FILE#i`` for record i of a
    file of many): its path relative to the first of ``roots`` (resolved data paths) that is a
    folder holding it, else its own name."""
    path = Path(source).resolve()
    for root in roots:
        if root.is_dir() and path.is_relative_to(root) and path != root:
            return path.relative_to(root).as_posix()
    return path.name


def scene_names(scenarios: Sequence[Scenario], paths: Sequence[str]) -> list[str]:
    """Name of each scene: its path relative to the data path (of ``paths``) it lies under; for
    a scene read back from a scenario store, the name its source had when prepared (a store of
    several data paths can hold two of one name: splitting refuses them)."""
    roots = [Path(p).resolve() for p in paths if Path(p).exists()]
    names = []
    for index, sc in enumerate(scenarios):
        if sc.provenance is not None:
            names.append(sc.provenance.name)
        elif not sc.source:
            names.append(f"{SYNTHETIC_PREFIX}/{index}")
        else:
            names.append(source_name(sc.source, roots))
    return names


def _data_path_of(scenario: Scenario, roots: Sequence[Path]) -> int:
    """Index of the data path (resolved ``roots``) ``scenario`` was found under; -1 for a scene
    with no file (synthetic)."""
    if not scenario.source:
        return -1
    source = Path(scenario.source).resolve()
    for index, root in enumerate(roots):
        if source == root or source.is_relative_to(root) or str(source).startswith(f"{root}#"):
            return index
    return -1


def data_sets_of(scenarios: Sequence[Scenario], paths: Sequence[str]) -> list[str]:
    """The data set of each scene: the folder or file name of the data path (of ``paths``) it
    was found under, ``synthetic`` for generated scenes."""
    roots = [Path(p).resolve() for p in paths]
    labels = []
    for scenario in scenarios:
        index = _data_path_of(scenario, roots)
        labels.append(SYNTHETIC_PREFIX if index < 0 else roots[index].name)
    return labels


class LastMadeFor(Generic[Key, Value]):
    """The last value made in this process, given again for the same key and the very same scene
    objects in the same order: scenes are shared objects (``load_scenarios``) that are never
    modified, so what was made from them still holds. One value is kept at a time."""

    def __init__(self) -> None:
        self._kept: tuple[Key, tuple[Scenario, ...], Value] | None = None

    def get(self, key: Key, scenes: Sequence[Scenario], make: Callable[[], Value]) -> Value:
        """The kept value for ``key`` and ``scenes``, else ``make()``, kept."""
        if self._kept is not None:
            kept_key, kept_scenes, value = self._kept
            same = len(kept_scenes) == len(scenes) and all(
                a is b for a, b in zip(kept_scenes, scenes, strict=True)
            )
            if kept_key == key and same:
                return value
        value = make()
        self._kept = (key, tuple(scenes), value)
        return value


# Planning (leak checks between recordings) takes minutes on a few hundred real scenes, and
# train, val and test each ask for the plan.
_LAST_PLAN: LastMadeFor[tuple[str, ...], SplitPlan] = LastMadeFor()


def plan_for(scenarios: Sequence[Scenario], paths: Sequence[str]) -> SplitPlan:
    """The split of ``scenarios`` loaded from ``paths`` (fixed or planned; ``resolve_split``),
    made for each data path on its own: every data set keeps its fixed split where it has one,
    and gets its own train, val and test parts (with its locations in each) when planned.

    The last plan is kept and given again for the same paths and the same scene objects."""
    key = tuple(str(p) for p in paths)
    return _LAST_PLAN.get(key, scenarios, lambda: _plan_per_data_path(scenarios, paths))


def _plan_per_data_path(scenarios: Sequence[Scenario], paths: Sequence[str]) -> SplitPlan:
    """``plan_for`` without the kept plan."""
    with_tracks = [sc for sc in scenarios if any(t.valid.any() for t in sc.tracks)]
    names = scene_names(with_tracks, paths)
    roots = [Path(p).resolve() for p in paths]
    by_path: dict[int, list[int]] = {}
    for index, scenario in enumerate(with_tracks):
        by_path.setdefault(_data_path_of(scenario, roots), []).append(index)
    if len(by_path) <= 1:
        return resolve_split(with_tracks, names)
    return merge_plans(
        [
            resolve_split([with_tracks[i] for i in rows], [names[i] for i in rows])
            for rows in by_path.values()
        ]
    )


def split_scenarios(
    scenarios: Sequence[Scenario], split: str, paths: Sequence[str] = ()
) -> list[Scenario]:
    """The scenarios of ``split`` ("train", "val", "test" or "all"), duplicates removed.

    Args:
        scenarios: as returned by ``load_scenarios``.
        split: which part to keep; "all" keeps every scene not dropped as a duplicate.
        paths: the data paths the scenarios came from (they name the scenes).
    """
    if split not in (*SPLITS, "all"):
        raise ConfigError(f"split must be one of {(*SPLITS, 'all')}, got {split!r}")
    with_tracks = [sc for sc in scenarios if any(t.valid.any() for t in sc.tracks)]
    names = scene_names(with_tracks, paths)
    plan = plan_for(with_tracks, paths)
    return [
        sc
        for sc, name in zip(with_tracks, names, strict=True)
        if name in plan.split and split in ("all", plan.split[name])
    ]
