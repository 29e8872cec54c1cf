"""The tracks CSV of the generic scene format (``mapenc.maps.geojson``): reading its rows into
``TrackRows`` and writing a scenario's tracks.

Columns ``track_id,timestep,x,y,heading,kind``, optionally ``vx,vy``, ``length,width`` (each pair
both or neither) and ``category``; headings in radians or, when asked, degrees.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mapenc.errors import MapencError
from mapenc.maps.io import read_bytes
from mapenc.maps.tracks import MAX_TIME_STEP, TrackRows
from mapenc.maps.types import (
    FloatArray,
    Scenario,
)

REQUIRED_TRACK_COLUMNS = ("track_id", "timestep", "x", "y", "heading", "kind")
HEADING_UNITS = ("rad", "deg")
# Largest |heading| accepted in each unit (a full turn, plus rounding).
_HEADING_LIMIT = {"rad": 2 * math.pi + 1e-6, "deg": 360.0 + 1e-6}
OPTIONAL_TRACK_COLUMNS = ("vx", "vy", "length", "width", "category")


def _csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each CSV record in ``text``; MapencError naming the line for a
    malformed record (e.g. a field beyond the csv module's 128 KiB limit)."""
    reader = csv.reader(io.StringIO(text))
    try:
        for record in reader:
            yield reader.line_num, record
    except csv.Error as err:
        raise MapencError(f"line {reader.line_num}: malformed CSV ({err})") from None


@dataclass(frozen=True)
class CsvColumns:
    """The data rows of a CSV file with a header, N rows (blank lines skipped).

    Attributes:
        columns: column name -> its N fields, stripped, in file order.
        lines: (N,) line number of each row in the file (for messages).
    """

    columns: dict[str, list[str]]
    lines: list[int]

    def numbers(self, *names: str) -> FloatArray:
        """(N, len(names)) float64 of these columns; MapencError naming the line and column of
        a field that is not a number."""
        return np.stack([_numeric(self.columns[n], n, self.lines) for n in names], axis=1)

    def integers(self, name: str) -> NDArray[np.int64]:
        """(N,) int64 of this column; MapencError naming the line of a field that is not an
        integer within +-2**53."""
        return _integers(self.columns[name], name, self.lines)


def read_csv_columns(path: Path, required: Sequence[str]) -> CsvColumns:
    """The rows of a track table CSV (UTF-8, optionally gzipped) with at least the ``required``
    columns, one of them ``track_id``; MapencError for text that is not UTF-8, malformed CSV,
    missing or repeated column names, a row of the wrong length or an empty ``track_id``."""
    try:
        text = read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MapencError("not UTF-8 text") from None
    reader = _csv_records(text)
    header = [name.strip() for name in next(reader, (0, []))[1]]
    missing = [c for c in required if c not in header]
    if missing:
        raise MapencError(f"missing columns {missing} (header: {header})")
    if len(set(header)) != len(header):
        raise MapencError(f"repeated column names in header {header}")
    records, lines = [], []
    for line, record in reader:
        if not record:
            continue
        if len(record) != len(header):
            raise MapencError(f"line {line}: {len(record)} fields, header has {len(header)}")
        records.append(record)
        lines.append(line)
    columns = {name: [r[i].strip() for r in records] for i, name in enumerate(header)}
    if "" in columns["track_id"]:
        raise MapencError(f"line {lines[columns['track_id'].index('')]}: empty track_id")
    return CsvColumns(columns, lines)


def read_tracks_csv(path: Path, heading_units: str = "rad") -> TrackRows:
    """TrackRows of a tracks CSV, headings in radians, grouped by track (in order of first
    appearance) and sorted by time step within each track; MapencError naming the line (both lines
    for a repeated (track, step)) and column for bad rows."""
    table = read_csv_columns(path, REQUIRED_TRACK_COLUMNS)
    columns, lines, numbers = table.columns, table.lines, table.numbers
    has = set(columns)
    for pair in (("vx", "vy"), ("length", "width")):
        if (pair[0] in has) != (pair[1] in has):
            raise MapencError(f"give both columns {list(pair)} or neither")
    if not lines:
        raise MapencError("no track rows")
    track_id = np.array(columns["track_id"], dtype=str)
    rows = TrackRows(
        track_id=track_id,
        step=table.integers("timestep"),
        xy=numbers("x", "y"),
        heading=_radians(numbers("heading")[:, 0], heading_units, lines),
        kind=np.char.lower(np.array(columns["kind"], dtype=str)),
        velocity=numbers("vx", "vy") if "vx" in has else None,
        size=numbers("length", "width") if "length" in has else None,
        category=table.integers("category") if "category" in has else None,
    )
    _, first_row, track_index = np.unique(track_id, return_index=True, return_inverse=True)
    order = np.lexsort((np.arange(len(lines)), rows.step, first_row[track_index]))
    line_of = np.asarray(lines)[order]
    columns_in_order: dict[str, Any] = {
        f.name: None if getattr(rows, f.name) is None else getattr(rows, f.name)[order]
        for f in fields(rows)
    }
    rows = TrackRows(**columns_in_order)
    _check_repeated_steps(track_id[order], rows.step, line_of)
    return rows


def _radians(heading: FloatArray, units: str, lines: list[int]) -> FloatArray:
    """(N,) headings in radians from ``units`` ("rad" or "deg"); MapencError naming the first line
    whose value is beyond a full turn (degrees given as radians, or garbage)."""
    beyond = np.flatnonzero(np.abs(heading) > _HEADING_LIMIT[units])
    if beyond.size:
        i = int(beyond[0])
        if units == "rad":
            raise MapencError(
                f"line {lines[i]}: column 'heading' value {heading[i]:g} is beyond ±2π: headings "
                "are radians; for degrees give --heading-units deg (or the GeoJSON's "
                'properties.heading_units = "deg")'
            )
        raise MapencError(
            f"line {lines[i]}: column 'heading' value {heading[i]:g} is beyond ±360 degrees"
        )
    return np.deg2rad(heading) if units == "deg" else heading


def _check_repeated_steps(
    track_id: NDArray[np.str_], step: NDArray[np.int64], lines: NDArray[np.int_]
) -> None:
    """MapencError naming both lines when two rows (N,) give the same (track_id, timestep)."""
    order = np.lexsort((lines, step, track_id))
    ids, steps = track_id[order], step[order]
    same = np.flatnonzero((ids[1:] == ids[:-1]) & (steps[1:] == steps[:-1]))
    if same.size:
        first, second = order[same[0]], order[same[0] + 1]
        raise MapencError(
            f"lines {lines[first]} and {lines[second]}: two rows for track {str(ids[same[0]])!r} "
            f"at time step {int(steps[same[0]])}"
        )


def _numeric(values: list[str], name: str, lines: list[int]) -> FloatArray:
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        line, value = next(
            (ln, v) for ln, v in zip(lines, values, strict=True) if not _is_number(v)
        )
        raise MapencError(f"line {line}: column {name!r} value {value!r} is not a number") from None


def _integers(
    values: list[str], name: str, lines: list[int]
) -> np.ndarray[Any, np.dtype[np.int64]]:
    numbers = _numeric(values, name, lines)
    # Beyond 2**53 a float64 no longer holds every integer, and the cast to int64 would wrap.
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers)) | (np.abs(numbers) > MAX_TIME_STEP)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MapencError(
            f"line {lines[i]}: column {name!r} value {values[i]!r} is not an integer within +-2**53"
        )
    return numbers.astype(np.int64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_tracks_csv(scenario: Scenario, path: Path) -> None:
    """One row per valid (track, step); vx,vy / category only when every track has them."""
    with_velocity = all(t.velocity is not None for t in scenario.tracks)
    with_category = all(t.category is not None for t in scenario.tracks)
    header = [*REQUIRED_TRACK_COLUMNS, "length", "width"]
    header += ["vx", "vy"] if with_velocity else []
    header += ["category"] if with_category else []
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for track in scenario.tracks:
            for t in np.flatnonzero(track.valid):
                row: list[Any] = [track.id, int(t), *track.xy[t].tolist(), float(track.heading[t])]
                row += [track.kind, track.length, track.width]
                if with_velocity:
                    assert track.velocity is not None
                    row += track.velocity[t].tolist()
                if with_category:
                    row.append(track.category)
                writer.writerow(row)
