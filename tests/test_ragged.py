"""Index arithmetic of ragged arrays (``mapenc.geometry.ragged``) against plain numpy."""

from __future__ import annotations

import numpy as np

from mapenc.geometry.ragged import ramp, split_rows


def test_ramp_counts_up_within_each_owner() -> None:
    counts = np.array([2, 0, 3, 1], dtype=np.intp)
    owner, k = ramp(counts)
    np.testing.assert_array_equal(owner, [0, 0, 2, 2, 2, 3])
    np.testing.assert_array_equal(k, [0, 1, 0, 1, 2, 0])


def test_split_rows_gives_the_views_np_split_gives() -> None:
    rng = np.random.default_rng(0)
    sizes = [3, 0, 1, 5, 0, 2]
    array = rng.normal(size=(sum(sizes), 2))
    pieces = split_rows(array, sizes)
    expected = np.split(array, np.cumsum(sizes)[:-1])
    assert [len(p) for p in pieces] == sizes
    for piece, want in zip(pieces, expected, strict=True):
        np.testing.assert_array_equal(piece, want)
        assert piece.base is array or piece.size == 0  # views, no copies
    assert split_rows(array[:0], []) == []
