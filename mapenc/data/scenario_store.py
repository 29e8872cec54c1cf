"""Preparing the scenario store: every readable source converted once into store shards
(``mapenc.maps.store``), one per source file or scene folder, in parallel over files.

Each source found under the data paths (as trajectory data is found: Waymo shards, INTERACTION
recordings, CommonRoad files, AV2 and generic scene folders) becomes
``<out>/<name>-<digest>.scenarios``; ``digest`` is the first 16 hex digits of the SHA-256 of the
store version and the content of every file the source is read from (``source_files``: a scene
folder's files, an INTERACTION recording's pedestrian file and map), so a changed source gets a
new shard and a second ``prepare`` converts only what is new or changed.
Shards are written atomically; temporary files of killed runs are removed at the next start.
Training and evaluation then read the shards (``--data <out>``) with no protobuf, JSON, XML or
polygon repair.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from mapenc.data.traj_sources import scene_files_under
from mapenc.errors import ConfigError, DataError, MapencError
from mapenc.maps import iter_scenarios
from mapenc.maps.interaction import map_path_for, pedestrian_path_for
from mapenc.maps.io import is_interaction_tracks
from mapenc.maps.store import (
    STORE_SUFFIX,
    STORE_VERSION,
    is_store_shard,
    shard_header,
    write_store_shard,
)
from mapenc.progress import progress_bar
from mapenc.safeio import ensure_folder, remove_stale_temporaries

DIGEST_CHARS = 16
_HASH_CHUNK = 1 << 24  # bytes hashed per read, so memory stays bounded on large shards


@dataclass(frozen=True)
class PreparedShard:
    """One source and its store shard.

    Attributes:
        source: the source file or scene folder.
        shard: the store shard written (or found) for it.
        scenarios: scenarios in the shard.
        reused: the shard was already there (same source content), nothing converted.
    """

    source: Path
    shard: Path
    scenarios: int
    reused: bool


def source_files(source: Path) -> list[Path]:
    """The files a source is read from: the file itself (with, for an INTERACTION recording,
    its pedestrian file and its location's map), or every file in a scene folder and below it
    (an AV2 sensor log keeps its map in ``map/``), sorted."""
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file())
    files = [source]
    if is_interaction_tracks(source):
        pedestrians = pedestrian_path_for(source)
        files += [map_path_for(source), *([pedestrians] if pedestrians else [])]
    return files


def source_digest(source: Path) -> str:
    """Hex SHA-256 of the store version and the content of every file the source is read from
    (``source_files``), each with its name."""
    h = hashlib.sha256(f"mapenc scenario store {STORE_VERSION}".encode())
    for path in source_files(source):
        name = path.relative_to(source) if source.is_dir() else path.name
        h.update(f"<{name}>".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def shard_path(source: Path, out: Path) -> Path:
    """Where the store shard of ``source`` goes under ``out``."""
    return out / f"{source.name}-{source_digest(source)[:DIGEST_CHARS]}{STORE_SUFFIX}"


def store_sources(paths: Sequence[str | Path]) -> list[Path]:
    """The source files and scene folders under ``paths`` (store shards left out), sorted per
    path; DataError naming a path that does not exist or holds no source."""
    sources: list[Path] = []
    for spec in paths:
        path = Path(spec)
        found = [p for p in scene_files_under(path) if not is_store_shard(p)]
        if not found:
            raise DataError(f"{path}: no CommonRoad, AV2, Waymo, INTERACTION or generic scene")
        sources.extend(found)
    return sources


def convert_source(source: Path, shard: Path) -> PreparedShard:
    """Write the store shard of every scenario of ``source`` (map repairs are not reported
    here: ``mapenc info`` reports them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        count = write_store_shard(iter_scenarios(source), shard, str(source))
    return PreparedShard(source, shard, count, reused=False)


def prepare_store(
    paths: Sequence[str | Path], out: Path, workers: int = 1, progress: bool = True
) -> list[PreparedShard]:
    """Convert every source under ``paths`` into a store shard under ``out`` (see the module
    docstring), ``workers`` processes at a time; returns one PreparedShard per source, in the
    order found. A MapFormatError of any source stops the run (shards already written stay)."""
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    out = ensure_folder(Path(out), "the scenario store (--out)")
    remove_stale_temporaries(out)
    sources = store_sources(paths)
    targets = [shard_path(source, out) for source in sources]
    done: dict[Path, PreparedShard] = {}
    todo = []
    for source, target in zip(sources, targets, strict=True):
        if target.is_file():
            done[source] = PreparedShard(source, target, _count(target), reused=True)
        else:
            todo.append((source, target))
    bar = progress_bar(
        _converted(todo, workers),
        enabled=progress,
        total=len(todo),
        desc="prepare",
        unit="file",
    )
    scenarios = 0
    for prepared in bar:
        done[prepared.source] = prepared
        scenarios += prepared.scenarios
        bar.set_postfix(scenarios=scenarios)
    return [done[source] for source in sources]


def _convert_or_problem(source: Path, shard: Path) -> PreparedShard | str:
    """``convert_source`` in a pool worker: the MapencError's message instead of the error,
    since mapenc's errors do not survive the trip back between processes."""
    try:
        return convert_source(source, shard)
    except MapencError as err:
        return str(err)


def _converted(todo: list[tuple[Path, Path]], workers: int) -> Iterator[PreparedShard]:
    """``convert_source`` of each (source, shard), as each finishes: in this process with one
    worker, else in a pool of fresh processes (spawned, so no parent state is shared). A source
    that cannot be read stops the run with a DataError giving the reader's message."""
    if workers == 1 or len(todo) <= 1:
        for source, target in todo:
            yield convert_source(source, target)
        return
    context = multiprocessing.get_context("spawn")
    pool: Executor
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: list[Future[PreparedShard | str]] = [
            pool.submit(_convert_or_problem, source, target) for source, target in todo
        ]
        for future in as_completed(futures):
            result = future.result()
            if isinstance(result, str):
                for pending in futures:
                    pending.cancel()
                raise DataError(result)
            yield result


def _count(shard: Path) -> int:
    """Scenarios in an existing shard (read from its header only)."""
    return len(shard_header(shard)["scenarios"])
