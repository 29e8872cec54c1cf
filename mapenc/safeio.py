"""File input and output that stays bounded and leaves no half-written file.

- ``gunzip`` measures a gzip stream chunk by chunk and stops at a size limit, so a small
  compressed file cannot ask for gigabytes of memory (a gzip bomb); content within the limit is
  held once, never built up and copied. The limit is ``DEFAULT_MAX_INFLATED_MB`` MiB (the largest
  real inputs inflate to tens of MB: MNIST's training images to 47 MB), overridden by the
  environment variable ``MAPENC_MAX_INFLATED_MB``.
- ``write_atomic`` writes to an exclusive temporary file beside the target, fsyncs it and renames
  it over the target, so a crash or a full disk leaves the previous file or the new one, never a
  mix; ``save_figure`` does the same for matplotlib figures. ``remove_stale_temporaries``
  deletes what a killed writer left behind.
- ``ensure_folder`` makes a folder or names what is in its way.
"""

from __future__ import annotations

import io
import os
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mapenc.errors import ConfigError, MapencError

GZIP_MAGIC = b"\x1f\x8b"
MAX_INFLATED_ENV = "MAPENC_MAX_INFLATED_MB"
DEFAULT_MAX_INFLATED_MB = 256
# Output is produced in pieces of this many bytes, so the limit is checked before it is passed.
_INFLATE_CHUNK = 1 << 20
TEMPORARY_SUFFIX = ".tmp"


def limit_setting(variable: str, default: int, unit: str) -> int:
    """The positive whole number in the environment variable ``variable``, else ``default``;
    ConfigError naming the variable and ``unit`` (e.g. "MiB") for anything else."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{variable}={text!r}: expected a positive whole number of {unit}")
    return value


def max_inflated_bytes() -> int:
    """The most bytes one gzip file may inflate to: ``$MAPENC_MAX_INFLATED_MB`` MiB or the default."""
    return limit_setting(MAX_INFLATED_ENV, DEFAULT_MAX_INFLATED_MB, "MiB") << 20


def gunzip(raw: bytes, limit: int | None = None) -> bytes:
    """The inflated content of the gzip stream ``raw`` (one or more members).

    Inflates at most ``limit`` bytes (default ``max_inflated_bytes()``) and never holds more than
    the content itself: a first pass measures each member chunk by chunk (refusing one beyond
    the limit before it is held), a second inflates each member into a buffer of its measured
    size. Raises MapencError for a truncated or corrupt stream, trailing bytes that are not gzip,
    or content beyond the limit (the message gives the limit and the variable that raises it).
    """
    members = _gzip_members(raw, max_inflated_bytes() if limit is None else limit)
    view = memoryview(raw)
    contents = [
        zlib.decompress(view[start:end], wbits=31, bufsize=max(size, 1))
        for start, end, size in members
    ]
    return contents[0] if len(contents) == 1 else b"".join(contents)


def _gzip_members(raw: bytes, limit: int) -> list[tuple[int, int, int]]:
    """(start, end, inflated size) of each gzip member of ``raw``, measured by inflating them
    chunk by chunk without keeping the output; MapencError as ``gunzip`` says."""
    members = []
    total = 0
    start = 0
    while True:
        inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer only
        pending = raw[start:]
        size = 0
        try:
            while not inflater.eof:
                piece = inflater.decompress(pending, _INFLATE_CHUNK)
                pending = inflater.unconsumed_tail
                if not piece and not pending:
                    raise MapencError("truncated gzip data (the stream ends early)")
                size += len(piece)
                if total + size > limit:
                    raise MapencError(
                        f"gzip content inflates beyond {limit >> 20} MiB (a compression bomb?); "
                        f"set {MAX_INFLATED_ENV} to allow more"
                    )
        except zlib.error as err:
            raise MapencError(f"corrupt gzip data ({err})") from None
        end = len(raw) - len(inflater.unused_data)
        members.append((start, end, size))
        total += size
        # Like gzip.decompress: members may follow, and zero padding after the last is ignored.
        remaining = inflater.unused_data.lstrip(b"\0")
        if not remaining:
            return members
        if not remaining.startswith(GZIP_MAGIC):
            raise MapencError("trailing bytes after the gzip data")
        start = len(raw) - len(remaining)


def ensure_folder(folder: Path, role: str, error: type[MapencError] = ConfigError) -> Path:
    """``folder``, created (with its parents) when missing; ``error`` naming the folder and its
    ``role`` (e.g. "the run folder (--out)") when a file is in its place or it cannot be made."""
    if folder.exists() and not folder.is_dir():
        raise error(f"{folder}: is a file; {role} must be a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise error(f"{folder}: cannot create {role} ({err.strerror or err})") from None
    return folder


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def create_temporary(target: Path) -> tuple[int, Path]:
    """A new, empty temporary file beside ``target``, opened for writing: (fd, path).

    Created exclusively (``mkstemp``: never an existing file or a planted link) with the usual
    file mode, and named ``.<name>.<pid>.<random>.tmp`` so ``remove_stale_temporaries`` can tell
    a killed writer's file from a live one.
    """
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}.", suffix=TEMPORARY_SUFFIX, dir=target.parent
    )
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
    return fd, Path(name)


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Run ``write`` on a new temporary file beside ``path``, fsync it, then rename it to ``path``.

    The file is open for reading too (``w+b``), so ``write`` may map it into memory. The
    temporary file comes from ``create_temporary`` and is removed when ``write`` fails (a
    full disk too). ``os.replace`` swaps the name itself, so a symlink at ``path`` is replaced,
    never followed. Raises OSError from the file system, naming ``path`` when the refused
    call named no file (a write beyond a full disk or the file-size limit).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temporary(target)
    try:
        with os.fdopen(fd, "w+b") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is not None:
            raise
        raise OSError(err.errno, err.strerror or str(err), str(target)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """``write_atomic`` of the bytes ``data``."""
    write_atomic(path, lambda handle: handle.write(data))


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of writers that died (killed during a checkpoint or a build).

    A ``.<name>.<pid>.<random>.tmp`` file is stale when no process ``pid`` runs on this machine.
    Only regular files are removed; links and folders are left alone. Returns the removed paths.
    """
    removed = []
    for candidate in folder.glob(f".*{TEMPORARY_SUFFIX}"):
        pid_text = candidate.name.removesuffix(TEMPORARY_SUFFIX).split(".")[-2]
        if not pid_text.isdigit() or process_alive(int(pid_text)):
            continue
        if candidate.is_file() and not candidate.is_symlink():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (any owner)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def figure_path(path: str | os.PathLike[str]) -> Path:
    """Where ``save_figure`` writes ``path``: as given, or with ``.png`` added when it has no
    suffix (what matplotlib does too, so the name printed is the name written)."""
    target = Path(path)
    return target if target.suffix else target.with_name(target.name + ".png")


def save_figure(figure: Any, path: str | os.PathLike[str], **options: Any) -> Path:
    """Write a matplotlib ``figure`` atomically to ``figure_path(path)``; returns that path.

    The format follows the suffix (PNG when there is none). Raises MapencError when the file
    system refuses (a full disk, no permission); an existing file is then left as it was.
    """
    target = figure_path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=target.suffix.lstrip(".").lower(), **options)
    try:
        write_bytes_atomic(target, buffer.getvalue())
    except OSError as err:
        raise MapencError(f"{target}: cannot write the figure ({err.strerror or err})") from None
    return target
