"""Tracks from tables with one row per (track, time step), shared by the AV2 and CSV readers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mapenc.errors import MapencError
from mapenc.maps.types import FloatArray, Track

# Box (length, width) in metres for sources that give no sizes (AV2 scenarios, CSVs without
# length/width): typical sizes of each kind. Kinds not listed get UNKNOWN_BOX_SIZE_M.
DEFAULT_BOX_SIZE_M: dict[str, tuple[float, float]] = {
    "vehicle": (4.5, 2.0),
    "car": (4.5, 2.0),
    "truck": (8.0, 2.5),
    "bus": (12.0, 2.5),
    "pedestrian": (0.7, 0.7),
    "cyclist": (2.0, 0.7),
    "bicycle": (2.0, 0.7),
    "motorcyclist": (2.2, 0.8),
    "motorcycle": (2.2, 0.8),
    "riderless_bicycle": (1.8, 0.6),
}
UNKNOWN_BOX_SIZE_M = (1.0, 1.0)

# Tracks are stored densely, one slot per (track, time step): 41 bytes (x, y, heading, vx, vy as
# float64 and the valid flag). A table needing more than MAX_TRACK_TABLE_BYTES is refused before
# anything is allocated (one row at step 1e10 once asked numpy for 149 GiB).
TRACK_SLOT_BYTES = 41
MAX_TRACK_TABLE_BYTES = 2 << 30
# Time steps must be exact integers in float64 and fit int64 after any arithmetic on them.
MAX_TIME_STEP = 2**53


def default_box_size(kind: str) -> tuple[float, float]:
    """(length, width) in metres assumed for an agent of this kind when the source gives none."""
    return DEFAULT_BOX_SIZE_M.get(kind, UNKNOWN_BOX_SIZE_M)


@dataclass(frozen=True)
class Factorized:
    """A column of N values held as its distinct values in order of first appearance and each
    row's index among them (what ``factorize`` returns), e.g. a string column that Arrow
    dictionary-encoded without making a Python string per row.

    Attributes:
        values: (D,) the distinct values.
        index: (N,) intp, row i holds ``values[index[i]]``.
    """

    values: NDArray[Any]
    index: NDArray[np.intp]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, row: int) -> Any:
        """The value of one row."""
        return self.values[self.index[row]]


@dataclass(frozen=True)
class TrackRows:
    """Columns of a track table, N rows, one per observed (track, step).

    Attributes:
        track_id: (N,) ids: str, or any values ``str`` turns into the track's id (e.g. the
            Python strings of a parquet column as read), as an array or ``Factorized``.
        step: (N,) int64 time-step index, >= 0.
        xy: (N, 2) float64 city-frame positions (metres).
        heading: (N,) float64 (rad).
        kind: (N,) str, lower case; the first row of a track names its kind.
        velocity: (N, 2) float64 (m/s), or None.
        size: (N, 2) float64 [length, width] (metres), or None for per-kind defaults.
        category: (N,) int64, or None.
    """

    track_id: NDArray[Any] | Factorized
    step: NDArray[np.int64]
    xy: FloatArray
    heading: FloatArray
    kind: NDArray[np.str_]
    velocity: FloatArray | None = None
    size: FloatArray | None = None
    category: NDArray[np.int64] | None = None


def as_time_steps(values: FloatArray, what: str) -> NDArray[np.int64]:
    """(N,) int64 time steps from float values; MapencError naming ``what`` and the first bad
    row for a value that is not a whole number from 0 to ``MAX_TIME_STEP`` (so a fractional
    step is never truncated and a huge one never wraps around to a negative integer)."""
    steps = np.asarray(values, dtype=np.float64)
    whole = np.isfinite(steps) & (steps == np.round(steps))
    bad = ~whole | (steps < 0) | (steps > MAX_TIME_STEP)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = float(steps[row])
        problem = (
            f"negative time step {value!r}"
            if value < 0
            else f"time step {value!r} is not a whole number from 0 to 2**53"
        )
        raise MapencError(f"{what} in data row {row + 1}: {problem}")
    return steps.astype(np.int64)


def check_track_table_size(num_tracks: int, num_steps: int) -> None:
    """MapencError, with the figure, when ``num_tracks`` x ``num_steps`` dense slots would take
    more than ``MAX_TRACK_TABLE_BYTES``."""
    needed = num_tracks * num_steps * TRACK_SLOT_BYTES
    if needed > MAX_TRACK_TABLE_BYTES:
        raise MapencError(
            f"{num_tracks} tracks over {num_steps} time steps would need {needed / 2**30:.3g} GiB "
            f"(limit {MAX_TRACK_TABLE_BYTES / 2**30:.3g} GiB); is the time step column right?"
        )


def build_tracks(rows: TrackRows, num_steps: int | None = None) -> list[Track]:
    """One Track per distinct id, in order of first appearance, over steps 0..T-1.

    T is ``num_steps`` or the largest step + 1. Steps with no row are invalid (NaN). A track's
    box size is the median of its rows' sizes. Raises MapencError for negative steps, steps
    beyond ``num_steps``, tracks x steps too many to hold (``check_track_table_size``),
    non-finite values or a repeated (track_id, step).
    """
    n = len(rows.track_id)
    if n == 0:
        raise MapencError("no track rows")
    _check_finite("position", rows.xy)
    _check_finite("heading", rows.heading)
    if rows.velocity is not None:
        _check_finite("velocity", rows.velocity)
    if rows.size is not None:
        _check_finite("length/width", rows.size)
    if rows.step.min() < 0:
        raise MapencError(f"negative time step {int(rows.step.min())}")
    steps = int(rows.step.max()) + 1 if num_steps is None else num_steps
    if rows.step.max() >= steps:
        raise MapencError(f"time step {int(rows.step.max())} beyond the {steps} steps expected")

    ids, track_index = factorize(rows.track_id)
    check_track_table_size(len(ids), steps)
    flat = track_index * steps + rows.step
    unique_flat, counts = np.unique(flat, return_counts=True)
    if (counts > 1).any():
        dup = unique_flat[counts > 1][0]
        raise MapencError(
            f"duplicate row for track {str(ids[dup // steps])!r} at time step {int(dup % steps)}"
        )

    xy = _dense(rows.xy, flat, len(ids) * steps).reshape(len(ids), steps, 2)
    heading = _dense(rows.heading, flat, len(ids) * steps).reshape(len(ids), steps)
    valid = np.zeros((len(ids), steps), dtype=bool)
    valid.reshape(-1)[flat] = True
    velocity = None
    if rows.velocity is not None:
        velocity = _dense(rows.velocity, flat, len(ids) * steps).reshape(len(ids), steps, 2)
    sizes = None if rows.size is None else _group_medians(rows.size, track_index, len(ids))
    # factorize numbers ids in order of first appearance: a row is its track's first where its
    # code exceeds every code before it.
    seen_before = np.maximum.accumulate(np.concatenate([[-1], track_index[:-1]]))
    first_row = np.flatnonzero(track_index > seen_before)
    tracks = []
    for k, first in enumerate(first_row):  # ids come in order of first appearance
        kind = str(rows.kind[first])
        length, width = default_box_size(kind) if sizes is None else map(float, sizes[k])
        tracks.append(
            Track(
                id=str(ids[k]),
                kind=kind,
                xy=xy[k],
                heading=heading[k],
                valid=valid[k],
                length=length,
                width=width,
                velocity=None if velocity is None else velocity[k],
                category=None if rows.category is None else int(rows.category[first]),
            )
        )
    return tracks


def factorize(values: NDArray[Any] | Factorized) -> tuple[NDArray[Any], NDArray[np.intp]]:
    """(distinct values in order of first appearance, (N,) index of each value among them) of
    ``values`` (N,) (strings, ints): one dict lookup per value, about twice as fast as
    ``np.unique`` on strings and without its sort; a ``Factorized`` column as it is."""
    if isinstance(values, Factorized):
        return values.values, values.index
    codes: dict[Any, int] = {}
    index = np.fromiter(
        (codes.setdefault(v, len(codes)) for v in values.tolist()), dtype=np.intp, count=len(values)
    )
    return np.array(list(codes), dtype=values.dtype), index


def _dense(values: FloatArray, slots: NDArray[np.int64], size: int) -> FloatArray:
    """(size, ...) float64, NaN but for ``values`` (N, ...) placed at their ``slots`` (N,)."""
    out = np.full((size, *values.shape[1:]), np.nan)
    out[slots] = values
    return out


def _group_medians(
    values: FloatArray, group: NDArray[np.intp], num_groups: int
) -> NDArray[np.float64]:
    """(G, D) median of each column of ``values`` (N, D) over the rows of each group (N,) in
    0..G-1 (every group has a row): ``np.median``'s value, the mean of the two middle values
    for an even count, for all groups at once."""
    counts = np.bincount(group, minlength=num_groups)
    starts = np.cumsum(counts) - counts
    medians = np.empty((num_groups, values.shape[1]))
    for column in range(values.shape[1]):
        ordered = values[np.lexsort((values[:, column], group)), column]
        low = ordered[starts + (counts - 1) // 2]
        high = ordered[starts + counts // 2]
        medians[:, column] = (low + high) / 2
    return medians


def _check_finite(what: str, values: FloatArray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[0])
        raise MapencError(f"NaN or inf {what} in data row {row + 1}")
