"""JSON parsing shared by the AV2 and GeoJSON readers: every problem becomes a MapFormatError.

Readers parse one element at a time inside ``format_errors(path)``; helpers here raise a plain
MapencError naming the element (``"lane segment 42: missing key 'left_lane_boundary'"``) and the
context manager adds the file, so no KeyError, TypeError or ValueError escapes from deep inside.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from mapenc.errors import MapencError, MapFormatError
from mapenc.maps.io import read_bytes
from mapenc.maps.types import FloatArray, as_polyline, repair_polygon

# Longer integer literals are refused: no coordinate, id or count needs them, and Python's int()
# gives up (ValueError) beyond 4300 digits.
MAX_INTEGER_DIGITS = 40
# Every digit as 0, e and E as e, + and - as + (``_numbers_need_checks``).
_NUMBER_SHAPES = bytes.maketrans(b"0123456789eE+-", b"0000000000ee++")


def parse_json(path: Path) -> Any:
    """The JSON document in ``path`` (gzip handled by ``read_bytes``).

    Raises MapFormatError for a missing, empty, truncated or otherwise malformed file, for NaN /
    Infinity literals and numbers beyond float range (never a valid coordinate), integers longer
    than ``MAX_INTEGER_DIGITS`` digits, a key given twice in one object (the reader would keep
    only the last one, silently) and nesting too deep to parse.
    """
    raw = read_bytes(path)

    def refuse_constant(name: str) -> float:
        raise MapFormatError(path, f"{name} is not a valid JSON number (NaN/inf coordinates)")

    def finite_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise MapFormatError(path, f"number {_shortened(text)} is beyond float range")
        return value

    def bounded_int(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
            raise MapFormatError(
                path, f"integer {_shortened(text)} has {len(text.lstrip('-'))} digits"
            )
        return int(text)

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        record = dict(pairs)
        if len(record) != len(pairs):
            repeated = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
            raise MapFormatError(
                path, f"key {repeated!r} appears twice in one object (one would be lost)"
            )
        return record

    checked = _numbers_need_checks(raw)
    try:
        return json.loads(
            raw,
            parse_constant=refuse_constant,
            parse_float=finite_float if checked else float,
            parse_int=bounded_int if checked else int,
            object_pairs_hook=unique_keys,
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MapFormatError(path, f"malformed or truncated JSON ({err})") from None
    except RecursionError:
        raise MapFormatError(path, "JSON nested too deeply to read") from None


def _numbers_need_checks(raw: bytes) -> bool:
    """Whether a JSON document may hold an integer longer than ``MAX_INTEGER_DIGITS`` digits or
    a float beyond float range. Without a run of more digits than that and without an exponent
    of 3 digits or more, every number is an int within the limit or a float below 1e140, and
    the document is parsed without a check per number (json's own C paths, about 5x faster on
    AV2 maps); a long digit run anywhere (an id string too) keeps the checks."""
    shapes = raw.translate(_NUMBER_SHAPES)
    return b"0" * (MAX_INTEGER_DIGITS + 1) in shapes or b"e000" in shapes or b"e+000" in shapes


def _shortened(text: str, keep: int = 12) -> str:
    """``text`` itself when short, else its start and end around an ellipsis."""
    return text if len(text) <= 2 * keep else f"{text[:keep]}...{text[-keep:]}"


@contextmanager
def format_errors(path: Path, error: type[MapFormatError] = MapFormatError) -> Iterator[None]:
    """Re-raise a MapencError from inside the block as ``error(path, message)``.

    A MapFormatError already naming a file keeps its file and is raised as ``error`` too, so a
    problem in a tracks file is always a ScenarioFormatError.
    """
    try:
        yield
    except MapFormatError as err:
        if isinstance(err, error):
            raise
        raise error(err.path, err.problem) from None
    except MapencError as err:
        raise error(path, str(err)) from None


def require(record: Any, key: str, what: str) -> Any:
    """``record[key]``; MapencError naming ``what`` when ``record`` is not a dict or lacks ``key``."""
    if not isinstance(record, Mapping):
        raise MapencError(f"{what}: expected an object, got {type(record).__name__}")
    if key not in record:
        raise MapencError(f"{what}: missing key {key!r}")
    return record[key]


def require_dict(record: Any, key: str, what: str) -> Mapping[str, Any]:
    """``record[key]``, which must be a JSON object."""
    value = require(record, key, what)
    if not isinstance(value, Mapping):
        raise MapencError(f"{what}: {key!r} must be an object, got {type(value).__name__}")
    return value


def require_list(record: Any, key: str, what: str) -> list[Any]:
    """``record[key]``, which must be a JSON array."""
    value = require(record, key, what)
    if not isinstance(value, list):
        raise MapencError(f"{what}: {key!r} must be a list, got {type(value).__name__}")
    return value


def optional_ids(record: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    """``record[key]`` as a tuple of string ids: absent or null is (); else a list of ids."""
    value = record.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(i, str | int) for i in value):
        raise MapencError(f"{what}: {key!r} must be a list of ids, got {json.dumps(value)[:40]}")
    return tuple(str(i) for i in value)


def number_pair(value: Any, what: str) -> tuple[float, float]:
    """Two finite numbers from a JSON array ``[a, b]``; MapencError naming ``what`` otherwise."""
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise MapencError(f"{what}: expected two finite numbers, got {json.dumps(value)[:40]}")
    return float(value[0]), float(value[1])


def polyline(points: Any, what: str) -> FloatArray:
    """(K, 2) float64 city-frame polyline from ``[[x, y(, z)], ...]``; K >= 2, finite values."""
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise MapencError(f"{what}: coordinates must be lists of numbers") from None
    return as_polyline(arr, what)


def ring_polygon(
    shell: FloatArray, what: str, holes: list[FloatArray] | None = None
) -> BaseGeometry:
    """Polygon from a (K, 2) ring, closed implicitly; self-intersections repaired with a warning.

    A ring needs at least 3 distinct points. ``repair_polygon`` (shapely ``make_valid``) fixes
    self-intersecting rings and warns rather than dropping area.
    """
    for ring in [shell, *(holes or [])]:
        if len(np.unique(ring, axis=0)) < 3:
            raise MapencError(f"{what}: a polygon ring needs at least 3 distinct points")
    return repair_polygon(Polygon(shell, holes), what)
