"""Tracks from tables with one row per (track, time step), shared by the AV2 and CSV readers."""

from __future__ import annotations

from dataclasses import dataclass

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
class TrackRows:
    """Columns of a track table, N rows, one per observed (track, step).

    Attributes:
        track_id: (N,) str.
        step: (N,) int64 time-step index, >= 0.
        xy: (N, 2) float64 city-frame positions (metres).
        heading: (N,) float64 (rad).
        kind: (N,) str, lower case; the first row of a track names its kind.
        velocity: (N, 2) float64 (m/s), or None.
        size: (N, 2) float64 [length, width] (metres), or None for per-kind defaults.
        category: (N,) int64, or None.
    """

    track_id: NDArray[np.str_]
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

    ids, first_row, track_index = np.unique(rows.track_id, return_index=True, return_inverse=True)
    check_track_table_size(len(ids), steps)
    flat = track_index * steps + rows.step
    unique_flat, counts = np.unique(flat, return_counts=True)
    if (counts > 1).any():
        dup = unique_flat[counts > 1][0]
        raise MapencError(
            f"duplicate row for track {str(ids[dup // steps])!r} at time step {int(dup % steps)}"
        )

    tracks = []
    for k in np.argsort(first_row):
        mine = track_index == k
        tracks.append(_one_track(rows, mine, str(ids[k]), steps))
    return tracks


def _one_track(rows: TrackRows, mine: NDArray[np.bool_], track_id: str, steps: int) -> Track:
    """The Track made of the rows selected by ``mine``."""
    at = rows.step[mine]
    xy = np.full((steps, 2), np.nan)
    xy[at] = rows.xy[mine]
    heading = np.full(steps, np.nan)
    heading[at] = rows.heading[mine]
    valid = np.zeros(steps, dtype=bool)
    valid[at] = True
    velocity = None
    if rows.velocity is not None:
        velocity = np.full((steps, 2), np.nan)
        velocity[at] = rows.velocity[mine]
    first = int(np.flatnonzero(mine)[0])
    kind = str(rows.kind[first])
    if rows.size is None:
        length, width = default_box_size(kind)
    else:
        length, width = (float(v) for v in np.median(rows.size[mine], axis=0))
    return Track(
        id=track_id,
        kind=kind,
        xy=xy,
        heading=heading,
        valid=valid,
        length=length,
        width=width,
        velocity=velocity,
        category=None if rows.category is None else int(rows.category[first]),
    )


def _check_finite(what: str, values: FloatArray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[0])
        raise MapencError(f"NaN or inf {what} in data row {row + 1}")
