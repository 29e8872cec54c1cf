"""Scenarios for trajectory work: load them from paths, name them, and split them by recording.

Data paths (``load_scenarios``): CommonRoad ``.xml``/``.xml.gz`` files and Waymo Open Motion
``.tfrecord`` files or shards (every scenario of each), or folders holding them (searched
recursively), AV2 scenario and sensor-log folders, generic scene folders (``map.geojson`` +
``tracks.csv``), and ``synthetic`` / ``synthetic:N`` for N scenes of the embedded synthetic town.

Each scene is *named* by its path relative to the data path it was found under (a file given
directly is named by its file name; synthetic scenes ``synthetic/<i>``). The split
(``split_scenarios``) keeps whole recordings per split and drops exact duplicates; it is the fixed
split file that lists the scenes by content, or one planned at load time (``mapenc.data.split``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

from mapenc.data.split import SPLITS, SplitPlan, resolve_split
from mapenc.errors import ConfigError, DataError
from mapenc.maps import iter_scenarios
from mapenc.maps.io import holds_tracks, is_waymo_file
from mapenc.maps.types import Scenario

SYNTHETIC_PREFIX = "synthetic"
DEFAULT_SYNTHETIC_SCENES = 24
COMMONROAD_SUFFIXES = (".xml", ".xml.gz")


def _scene_files(path: Path) -> Iterator[Path]:
    """Scenario files and scene folders under ``path`` (itself included), sorted."""
    if path.is_file():
        yield path
        return
    if holds_tracks(path):
        yield path
        return
    for child in sorted(path.iterdir()):
        if child.is_dir():
            yield from _scene_files(child)
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


def _file_stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, mtime ns, size) of a file, or of every file directly in a scene folder."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)


@functools.lru_cache(maxsize=256)
def _load_scenes(path: Path, stamp: tuple[tuple[str, int, int], ...]) -> tuple[Scenario, ...]:
    """``iter_scenarios(path)`` (one scenario, or each of a Waymo shard), read once per process
    while ``stamp`` (the files) is unchanged: training and evaluation, and the runs of an encoder
    study, share the parsed scenes."""
    return tuple(iter_scenarios(path))


def load_scenarios(paths: Sequence[str]) -> list[Scenario]:
    """Every scenario found under ``paths`` (see the module docstring), in a stable order.

    Scenes are parsed once per process and shared (they are never modified); a file that changes
    on disk is read again. Raises MapFormatError naming a file that cannot be read, DataError when
    nothing is found.
    """
    scenarios: list[Scenario] = []
    for spec in paths:
        if spec == SYNTHETIC_PREFIX or spec.startswith(SYNTHETIC_PREFIX + ":"):
            scenarios.extend(_synthetic(spec))
            continue
        path = Path(spec)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        found = [sc for p in _scene_files(path) for sc in _load_scenes(p, _file_stamp(p))]
        if not found:
            raise DataError(f"{path}: no CommonRoad, AV2, Waymo or generic scene found")
        scenarios.extend(found)
    return scenarios


def scene_names(scenarios: Sequence[Scenario], paths: Sequence[str]) -> list[str]:
    """Name of each scene: its path relative to the data path (of ``paths``) it lies under."""
    roots = [Path(p).resolve() for p in paths if Path(p).exists()]
    names = []
    for index, sc in enumerate(scenarios):
        if not sc.source:
            names.append(f"{SYNTHETIC_PREFIX}/{index}")
            continue
        source = Path(sc.source).resolve()
        name = source.name
        for root in roots:
            if root.is_dir() and source.is_relative_to(root) and source != root:
                name = source.relative_to(root).as_posix()
                break
        names.append(name)
    return names


def plan_for(scenarios: Sequence[Scenario], paths: Sequence[str]) -> SplitPlan:
    """The split of ``scenarios`` loaded from ``paths`` (fixed or planned; ``resolve_split``)."""
    with_tracks = [sc for sc in scenarios if any(t.valid.any() for t in sc.tracks)]
    return resolve_split(with_tracks, scene_names(with_tracks, paths))


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
