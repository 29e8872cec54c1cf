"""TFRecord files without TensorFlow: read (and, for tests and tools, write) the framing.

Each record is ``uint64 length`` (little endian), ``uint32 masked CRC-32C of those 8 bytes``,
``length`` bytes of payload, ``uint32 masked CRC-32C of the payload``. Both checksums are verified
with ``google-crc32c`` (``pip install mapenc[waymo]``). A file that starts with the gzip magic is
gunzipped while it is read. Records are streamed: one payload in memory at a time.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterable, Iterator
from io import BufferedReader
from pathlib import Path

from mapenc.errors import MapencError, MapFormatError
from mapenc.safeio import MAX_INFLATED_ENV, max_inflated_bytes

HEADER = struct.Struct("<QI")  # length, masked CRC-32C of the length
FOOTER = struct.Struct("<I")  # masked CRC-32C of the payload
GZIP_MAGIC = b"\x1f\x8b"
_MASK_DELTA = 0xA282EAD8
_UINT32 = 0xFFFFFFFF
Stream = BufferedReader | gzip.GzipFile


def require_crc32c(path: Path) -> None:
    """MapencError naming ``path`` when ``google-crc32c`` is not installed."""
    try:
        import google_crc32c  # noqa: F401
    except ImportError:
        raise MapencError(
            f"{path}: reading TFRecord files needs google-crc32c; "
            "install it with `pip install mapenc[waymo]`"
        ) from None


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``: the CRC rotated right by 15 bits plus a constant."""
    import google_crc32c

    crc = int(google_crc32c.value(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _UINT32


def _open(path: Path) -> Stream:
    """``path`` opened for reading, through gzip when it starts with the gzip magic."""
    handle = path.open("rb")
    if handle.read(2) == GZIP_MAGIC:
        handle.close()
        return gzip.open(path, "rb")
    handle.seek(0)
    return handle


def _read_exactly(handle: Stream, size: int, path: Path, where: str) -> bytes:
    """``size`` bytes, or b"" at a clean end of file; MapFormatError when fewer are left."""
    try:
        data = handle.read(size)
    except (EOFError, OSError, zlib.error) as err:
        raise MapFormatError(path, f"{where}: truncated or corrupt gzip data ({err})") from None
    if 0 < len(data) < size:
        raise MapFormatError(
            path, f"{where}: truncated, expected {size} bytes but the file ends after {len(data)}"
        )
    return data


def iter_records(path: str | Path) -> Iterator[bytes]:
    """The payload of each record of a TFRecord file, in order, one at a time.

    Raises MapFormatError naming the file, the record index (from 0) and what failed: a missing
    file, a truncated header, length or payload, a length or payload CRC mismatch. An empty file
    yields nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise MapFormatError(path, "no such file")
    require_crc32c(path)
    with _open(path) as handle:
        # The bytes left can be checked before reading a payload only in a plain file.
        file_size = None if isinstance(handle, gzip.GzipFile) else path.stat().st_size
        index = 0
        while True:
            where = f"record {index}"
            header = _read_exactly(handle, HEADER.size, path, f"{where} header")
            if not header:
                return
            length, length_crc = HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise MapFormatError(
                    path, f"{where}: CRC mismatch on the record length (corrupt header)"
                )
            if file_size is None and length > max_inflated_bytes():
                raise MapFormatError(
                    path,
                    f"{where}: the length says {length} bytes, beyond the "
                    f"{max_inflated_bytes() >> 20} MiB a gzipped record may inflate to; "
                    f"set {MAX_INFLATED_ENV} to allow more",
                )
            if file_size is not None and handle.tell() + length + FOOTER.size > file_size:
                raise MapFormatError(
                    path,
                    f"{where}: truncated, the length says {length} bytes of payload + "
                    f"{FOOTER.size} of CRC, the file has {file_size - handle.tell()} left",
                )
            payload = _read_exactly(handle, length, path, f"{where} payload")
            footer = _read_exactly(handle, FOOTER.size, path, f"{where} payload CRC")
            if len(payload) < length or not footer:
                raise MapFormatError(path, f"{where}: truncated, the file ends in the record")
            if masked_crc32c(payload) != FOOTER.unpack(footer)[0]:
                raise MapFormatError(path, f"{where}: CRC mismatch on the {length}-byte payload")
            yield payload
            index += 1


def frame_record(payload: bytes) -> bytes:
    """One TFRecord record (header, payload, payload CRC) holding ``payload``."""
    length = struct.pack("<Q", len(payload))
    return (
        length + FOOTER.pack(masked_crc32c(length)) + payload + FOOTER.pack(masked_crc32c(payload))
    )


def write_records(path: str | Path, payloads: Iterable[bytes]) -> Path:
    """Write ``payloads`` as a TFRecord file at ``path`` (uncompressed); return the path."""
    path = Path(path)
    require_crc32c(path)
    with path.open("wb") as out:
        for payload in payloads:
            out.write(frame_record(payload))
    return path
