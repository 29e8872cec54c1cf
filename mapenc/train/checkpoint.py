"""Atomic checkpoints: ``state_dict``s and plain values in a ``.pt`` file, configs in JSON beside.

A checkpoint is written to a temporary file in the same folder and moved over the old one with
``os.replace``, so a crash leaves either the previous checkpoint or the new one, never half a file.
It is read back with ``torch.load(weights_only=True)``: no pickled code, only tensors and plain
containers. RNG states are stored as tensors and lists for the same reason.
"""

from __future__ import annotations

import json
import random
from os import PathLike
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from mapenc.errors import TrainingError
from mapenc.safeio import write_atomic

PathType = str | PathLike[str]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"


def save_checkpoint(path: PathType, state: dict[str, Any]) -> None:
    """Write ``state`` (state_dicts, numbers, strings, lists of those) atomically to ``path``."""
    write_atomic(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: PathType, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """State written by ``save_checkpoint``; TrainingError when missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"{p}: no checkpoint here")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        raise TrainingError(f"{p}: unreadable checkpoint ({err})") from None
    if not isinstance(state, dict):
        raise TrainingError(f"{p}: checkpoint holds a {type(state).__name__}, not a dict")
    return state


def write_json(path: PathType, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(handle: IO[bytes]) -> None:
        handle.write(text.encode())

    write_atomic(path, write)


def read_json(path: PathType) -> Any:
    """JSON content of ``path``; TrainingError naming the file when missing or malformed."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise TrainingError(f"{p}: no such file") from None
    except json.JSONDecodeError as err:
        raise TrainingError(f"{p}: malformed JSON ({err})") from None


def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python RNG states as tensors and plain lists."""
    # numpy's legacy global state is what users' datasets draw from, so it is the one to keep.
    legacy_state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]  # noqa: NPY002
    name, key, pos, has_gauss, cached = legacy_state
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, cached],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(state["torch"].cpu())
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
