"""How layer values are stored: the float scale <-> uint8 codec of each layer, binary masks.

Float output holds binary layers in {0, 1}, heading layers in [-1, 1], distance and history in
[0, 1]; uint8 output holds ``round(offset + scale * value)``: 0/255 (binary), ``128 + 127 * value``
(heading, ``SIGNED``) and ``255 * value`` (distance, history, ``UNIT``). Each layer names its
codec (``Layer.codec``); this module is the only place the numbers live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray


@dataclass(frozen=True)
class Codec:
    """uint8 code = ``round(offset + scale * value)``; float value = ``(code - offset) / scale``."""

    offset: float
    scale: float

    def encode(self, values: NDArray[np.floating[Any]], dtype: np.dtype[Any]) -> NDArray[Any]:
        """Float layer values -> the output dtype (float dtypes keep the values)."""
        if dtype != np.uint8:
            return values.astype(dtype, copy=False)
        return np.rint(self.offset + self.scale * values).astype(np.uint8)

    def decode(self, values: NDArray[Any]) -> NDArray[np.float64]:
        """Layer values (float or uint8) -> float64 in the float scale."""
        x = values.astype(np.float64)
        return (x - self.offset) / self.scale if values.dtype == np.uint8 else x

    def encode_tensor(self, values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``encode`` for tensors (any device)."""
        if dtype != torch.uint8:
            return values.to(dtype)
        return torch.round(self.offset + self.scale * values).to(torch.uint8)


UNIT = Codec(0.0, 255.0)
SIGNED = Codec(128.0, 127.0)


def write_binary(target: NDArray[Any], on: NDArray[np.bool_]) -> None:
    """Write a mask into a binary layer: 1.0 (float) or 255 (uint8) where ``on``, else 0."""
    if target.dtype == np.uint8:
        np.negative(on.view(np.uint8), out=target)  # 1 -> 255 in uint8 arithmetic
    else:
        np.copyto(target, on)


def torch_dtype(dtype: np.dtype[Any]) -> torch.dtype:
    """The torch dtype of an output dtype (uint8, float32 or float64)."""
    return {np.uint8: torch.uint8, np.float32: torch.float32, np.float64: torch.float64}[
        np.dtype(dtype).type
    ]


def numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    """The numpy dtype of a torch dtype (uint8, int8, float32, float64: outputs and buffers)."""
    return np.dtype(str(dtype).removeprefix("torch."))


def empty_tensor(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, zeroed: bool = False
) -> torch.Tensor:
    """A new tensor (zeros when ``zeroed``) for rasters or their working buffers. On the CPU it
    lives in numpy's memory, which numpy asks the kernel to back with huge pages (2 MiB) from
    4 MiB on: a fresh torch tensor of a chunk's size (tens of MiB) costs a page fault per 4 KiB
    on its first write, more time than drawing into it."""
    count = int(np.prod(shape))
    if device.type != "cpu" or count == 0:
        make = torch.zeros if zeroed else torch.empty
        return make(shape, dtype=dtype, device=device)
    array = (np.zeros if zeroed else np.empty)(count, dtype=numpy_dtype(dtype))
    # Wraps the array's memory (no copy, and no host-to-device copy to count: CPU only).
    return torch.frombuffer(array, dtype=dtype).view(shape)
