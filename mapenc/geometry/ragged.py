"""Index arithmetic of ragged arrays: many variable-length items (polylines, runs of segments,
spans of pixels) stored one after another in flat arrays."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def ramp(counts: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """For counts (M,): (owner, k) with owner repeated counts[m] times and k = 0..counts[m]-1."""
    owner = np.repeat(np.arange(len(counts)), counts)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, k
