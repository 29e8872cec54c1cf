"""The run folder of a training run: one writer at a time, and an existing run never replaced
by accident.

``claim_run_folder(path, resume, overwrite)`` is entered before any work (data loading,
rasterizing) and held until the run ends:

- ``path`` must be a folder or not exist yet (a file in its place is refused);
- a lock file ``.lock`` holding the owner's process id and host name is created exclusively; a
  second process training into the same folder is refused with one line naming the owner. A
  lock left by a process that no longer runs on this host is stale and taken over;
- a folder that already holds a run (``config.json``, ``checkpoint.pt`` or the logs) is refused
  unless ``resume`` (continue it) or ``overwrite`` (its files are deleted by ``start_fresh_run``
  when the new run starts writing, so a setting refused before that leaves the old run intact);
- temporary files of a killed writer are removed.

The same process may claim a folder it holds again (the experiment claims it, then ``fit``).

Under torchrun one claim is made per run: every rank joins the process group, rank 0 claims the
folder, and the other ranks wait for the outcome; when rank 0 is refused, they raise its error too
(instead of each rank claiming, and all but one being refused by the others' lock).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mapenc.errors import ConfigError, MapencError, TrainingError
from mapenc.safeio import ensure_folder, process_alive, remove_stale_temporaries
from mapenc.train.distributed import broadcast_from_main, join_process_group, launch_rank

LOCK_NAME = ".lock"
# Files that make a folder "hold a run"; deleted by ``overwrite``.
RUN_FILES = (
    "config.json",
    "checkpoint.pt",
    "train_log.csv",
    "epochs.csv",
    "training.json",
    "metrics.json",
    "results.json",
)
RUN_FOLDERS = ("tensorboard",)


@dataclass
class _Claim:
    """A run folder this process holds: how many blocks hold it, and whether the run in it is
    to be replaced (``overwrite``) once a fresh run starts writing."""

    depth: int = 1
    replace: bool = False


# Run folders this process holds, by resolved path.
_HELD: dict[Path, _Claim] = {}


@contextlib.contextmanager
def claim_run_folder(
    path: str | os.PathLike[str],
    resume: bool = False,
    overwrite: bool = False,
    main: bool | None = None,
) -> Iterator[Path]:
    """Hold ``path`` as this process's run folder for the block (see the module docstring).

    ``main`` says whether this process is torchrun's rank 0, the one that claims and writes
    (None: from torchrun's environment; a single process is its own rank 0). Under torchrun
    every rank must call it alike: the claim is collective.

    Raises ConfigError for a file in the folder's place or ``resume`` with ``overwrite``;
    TrainingError (one line) when another live process holds the folder, or the folder holds a
    run and neither ``resume`` nor ``overwrite`` is given.
    """
    if resume and overwrite:
        raise ConfigError("give --resume or --overwrite, not both")
    join_process_group()
    if main is None:
        main = launch_rank()[0] == 0
    with contextlib.ExitStack() as held:
        own_refusal: MapencError | OSError | None = None
        if main:
            try:
                held.enter_context(_claim(Path(path), resume, overwrite))
            except (MapencError, OSError) as err:
                own_refusal = err
        # The other ranks wait here for rank 0's outcome (in one process: nothing to wait for).
        refusal = broadcast_from_main(
            None if own_refusal is None else (type(own_refusal), str(own_refusal))
        )
        if own_refusal is not None:
            raise own_refusal
        if refusal is not None:
            raise _same_error(*refusal)  # type: ignore[misc]
        yield Path(path)


def _same_error(error_type: type[Exception], message: str) -> Exception:
    """Rank 0's refusal, raised again on a rank that waited for it."""
    if issubclass(error_type, MapencError) and error_type.__init__ is MapencError.__init__:
        return error_type(message)
    return TrainingError(message)


@contextlib.contextmanager
def _claim(path: Path, resume: bool, overwrite: bool) -> Iterator[Path]:
    """Hold ``path`` in this process (the claim itself; see ``claim_run_folder``)."""
    folder = ensure_folder(path, "the run folder (--out)")
    key = folder.resolve()
    if key in _HELD:
        _HELD[key].depth += 1
        try:
            yield folder
        finally:
            _HELD[key].depth -= 1
        return
    _lock(folder)
    _HELD[key] = _Claim()
    try:
        remove_stale_temporaries(folder)
        _HELD[key].replace = _check_existing_run(folder, resume, overwrite)
        yield folder
    finally:
        del _HELD[key]
        (folder / LOCK_NAME).unlink(missing_ok=True)


def _owner_text() -> str:
    return f"{os.getpid()} {socket.gethostname()}\n"


def _lock(folder: Path) -> None:
    """Create ``folder/.lock`` exclusively; take over a stale one; TrainingError when held."""
    lock = folder / LOCK_NAME
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            owner = _live_owner(lock)
            if owner is not None:
                raise TrainingError(
                    f"{folder}: another training run (process {owner}) is writing here; "
                    "wait for it or use another --out"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(_owner_text())
        return
    raise TrainingError(f"{folder}: could not take the run folder's lock {lock}")


def _live_owner(lock: Path) -> str | None:
    """ "PID on HOST" of a lock whose owner may still run, or None for a stale lock."""
    try:
        pid_text, _, host = lock.read_text(errors="replace").strip().partition(" ")
    except OSError:
        return "unknown"
    if not pid_text.isdigit():
        return None  # unreadable content: a lock torn by a crash
    if host and host != socket.gethostname():
        return f"{pid_text} on {host}"  # cannot tell from here whether it still runs
    return pid_text if process_alive(int(pid_text)) else None


def _check_existing_run(folder: Path, resume: bool, overwrite: bool) -> bool:
    """Whether the run in ``folder`` is to be replaced; TrainingError when it may not be."""
    existing = [name for name in RUN_FILES if (folder / name).exists()]
    if not existing or resume:
        return False
    if not overwrite:
        raise TrainingError(
            f"{folder}: holds a run already ({', '.join(existing)}); use --resume to continue "
            "it, --overwrite to replace it, or another --out"
        )
    return True


def start_fresh_run(path: str | os.PathLike[str]) -> None:
    """Delete the run that an ``overwrite`` claim of ``path`` replaces, once, when the new run
    starts writing: a bad setting found before that (while loading data or building the model)
    leaves the old run as it was."""
    claim = _HELD.get(Path(path).resolve())
    if claim is None or not claim.replace:
        return
    folder = Path(path)
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(folder / name, ignore_errors=True)
    claim.replace = False
