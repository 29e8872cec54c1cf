"""Index arithmetic of ragged arrays: many variable-length items (polylines, runs of segments,
spans of pixels) stored one after another in flat arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


def ramp(counts: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """For counts (M,): (owner, k) with owner repeated counts[m] times and k = 0..counts[m]-1."""
    owner = np.repeat(np.arange(len(counts)), counts)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, k


def split_rows(array: NDArray[Any], sizes: ArrayLike) -> list[NDArray[Any]]:
    """``array`` cut into consecutive views of ``sizes`` rows each (sizes summing to its
    length): ``np.split`` at the running totals, without its per-piece overhead (several times
    faster for thousands of small pieces)."""
    ends = np.cumsum(sizes, dtype=np.intp).tolist()
    return [array[a:b] for a, b in zip([0, *ends], ends, strict=False)]
