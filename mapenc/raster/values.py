"""How layer values are stored: float scale <-> uint8 codes, and binary masks into layers.

Float output holds binary layers in {0, 1}, heading layers in [-1, 1], distance and history in
[0, 1]; uint8 output holds 0/255 (binary), ``round(128 + 127 * value)`` (heading) and
``round(255 * value)`` (distance, history).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def encode(values: NDArray[np.floating[Any]], kind: str, dtype: np.dtype[Any]) -> NDArray[Any]:
    """Float layer values -> the output dtype (see the module docstring for the uint8 scale)."""
    if dtype != np.uint8:
        return values.astype(dtype, copy=False)
    scaled = 128.0 + 127.0 * values if kind == "heading" else 255.0 * values
    return np.rint(scaled).astype(np.uint8)


def write_binary(target: NDArray[Any], on: NDArray[np.bool_]) -> None:
    """Write a mask into a binary layer: 1.0 (float) or 255 (uint8) where ``on``, else 0."""
    if target.dtype == np.uint8:
        np.negative(on.view(np.uint8), out=target)  # 1 -> 255 in uint8 arithmetic
    else:
        np.copyto(target, on)


def decode(values: NDArray[Any], kind: str) -> NDArray[np.float64]:
    """Inverse of ``encode``: layer values (float or uint8) -> float64 in the float scale."""
    x = values.astype(np.float64)
    if values.dtype != np.uint8:
        return x
    return (x - 128.0) / 127.0 if kind == "heading" else x / 255.0
