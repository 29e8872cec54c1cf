"""Preparing the scenario store: every readable source converted once into store shards
(``mapenc.maps.store``), one per source file or scene folder, in parallel over files.

Each source found under the data paths (as trajectory data is found: Waymo shards, INTERACTION
recordings, CommonRoad files, AV2 and generic scene folders) becomes
``<out>/<name>-<digest>.scenarios``; ``digest`` is the first 16 hex digits of the SHA-256 of the
store version and the content of every file the source is read from (``source_files``: a scene
folder's files, an INTERACTION recording's pedestrian file and map), so a changed source gets a
new shard and a second ``prepare`` converts only what is new or changed.
Every scenario keeps its provenance (``Scenario.provenance``): the name its source gets under
the data path it was found under, as when loaded directly, and the SHA-256 by which fixed split
files list that source (``mapenc.data.split.source_sha256``), so a store splits as its sources
do (same fixed split, same INTERACTION locations and recordings). A shard found again keeps the
name it was first prepared with.
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
from dataclasses import dataclass, replace
from pathlib import Path

from mapenc.data.split import source_sha256
from mapenc.data.traj_sources import scene_files_under, source_name
from mapenc.errors import ConfigError, DataError, MapencError
from mapenc.maps import Provenance, Scenario, iter_scenarios
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


def store_sources(paths: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """(source, data path) of each source file and scene folder under ``paths`` (store shards
    left out), sorted per path; DataError naming a path that does not exist or holds no
    source."""
    sources: list[tuple[Path, Path]] = []
    for spec in paths:
        path = Path(spec)
        found = [p for p in scene_files_under(path) if not is_store_shard(p)]
        if not found:
            raise DataError(f"{path}: no CommonRoad, AV2, Waymo, INTERACTION or generic scene")
        sources.extend((source, path) for source in found)
    return sources


def _with_provenance(scenario: Scenario, data_path: Path) -> Scenario:
    """``scenario`` (read from its source, found under ``data_path``) with its provenance: its
    name under ``data_path`` and ``source_sha256`` (the digest of its source file, read once per
    source: a file of many records gets None)."""
    name = source_name(scenario.source, [data_path.resolve()])
    return replace(scenario, provenance=Provenance(name=name, sha256=source_sha256(scenario)))


def convert_source(source: Path, data_path: Path, shard: Path) -> PreparedShard:
    """Write the store shard of every scenario of ``source`` (found under ``data_path``), each
    with its provenance (map repairs are not reported here: ``mapenc info`` reports them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scenarios = (_with_provenance(sc, data_path) for sc in iter_scenarios(source))
        count = write_store_shard(scenarios, shard, str(source))
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
    done: dict[Path, PreparedShard] = {}
    todo = []
    for source, data_path in sources:
        target = shard_path(source, out)
        if target.is_file():
            done[source] = PreparedShard(source, target, _count(target), reused=True)
        else:
            todo.append((source, data_path, target))
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
    return [done[source] for source, _ in sources]


def _convert_or_problem(source: Path, data_path: Path, shard: Path) -> PreparedShard | str:
    """``convert_source`` in a pool worker: the MapencError's message instead of the error,
    since mapenc's errors do not survive the trip back between processes."""
    try:
        return convert_source(source, data_path, shard)
    except MapencError as err:
        return str(err)


def _converted(todo: list[tuple[Path, Path, Path]], workers: int) -> Iterator[PreparedShard]:
    """``convert_source`` of each (source, data path, shard), as each finishes: in this process
    with one worker, else in a pool of fresh processes (spawned, so no parent state is shared).
    A source that cannot be read stops the run with a DataError giving the reader's message."""
    if workers == 1 or len(todo) <= 1:
        for job in todo:
            yield convert_source(*job)
        return
    context = multiprocessing.get_context("spawn")
    pool: Executor
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: list[Future[PreparedShard | str]] = [
            pool.submit(_convert_or_problem, *job) for job in todo
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
