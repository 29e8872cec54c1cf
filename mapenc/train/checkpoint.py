"""Atomic checkpoints: ``state_dict``s and plain values in a ``.pt`` file, configs in JSON beside.

A checkpoint is written to a temporary file in the same folder and moved over the old one with
``os.replace``, so a crash leaves either the previous checkpoint or the new one, never half a file.
It is read back with ``torch.load(weights_only=True)``: no pickled code, only tensors and plain
containers. RNG states are stored as tensors and lists for the same reason. Before that, every
CRC-32 of the file (a ``.pt`` file is a zip archive; torch itself does not check them) is
verified, so a damaged checkpoint is refused instead of loading wrong weights.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import zipfile
from os import PathLike
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from mapenc.errors import TrainingError
from mapenc.safeio import write_atomic, write_bytes_atomic

PathType = str | PathLike[str]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"


def save_checkpoint(path: PathType, state: dict[str, Any]) -> None:
    """Write ``state`` (state_dicts, numbers, strings, lists of those) atomically to ``path``.

    Raises TrainingError when the file system refuses (a full disk, a file-size limit, no
    permission); the previous checkpoint is then left as it was.
    """
    # Serialized in memory first: torch's archive writer turns a refused write into a
    # RuntimeError that no longer says why, while a plain write keeps the OSError and its errno.
    serialized = io.BytesIO()
    try:
        torch.save(state, serialized)
        write_bytes_atomic(path, serialized.getbuffer())
    except OSError as err:
        raise TrainingError(
            f"{path}: cannot write the checkpoint ({err.strerror or err})"
        ) from None


def load_checkpoint(path: PathType, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """State written by ``save_checkpoint``.

    Raises TrainingError (one line, naming the file) when the file is missing, damaged (a CRC
    mismatch: one flipped byte is enough), not a checkpoint, or holds pickled objects beyond
    tensors and plain containers (refused, never unpickled).
    """
    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"{p}: no checkpoint here")
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise TrainingError(f"{p}: unreadable checkpoint ({err.strerror})") from None
    _verify_crcs(p, raw)
    try:
        state = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise TrainingError(
            f"{p}: holds pickled objects other than tensors and plain values; refused "
            "(a mapenc checkpoint never needs them)"
        ) from None
    except Exception as err:  # torch raises many types for a damaged file
        raise TrainingError(f"{p}: unreadable checkpoint ({_first_line(err)})") from None
    if not isinstance(state, dict):
        raise TrainingError(f"{p}: checkpoint holds a {type(state).__name__}, not a dict")
    return state


def load_model_weights(
    model: torch.nn.Module, path: PathType, map_location: str | torch.device = "cpu"
) -> None:
    """Load the ``"model"`` weights of the checkpoint at ``path`` into ``model``.

    Raises TrainingError (one line) when the checkpoint is unreadable (see ``load_checkpoint``),
    holds no model weights, or its weights do not fit ``model`` (another encoder, other sizes).
    """
    state = load_checkpoint(path, map_location)
    weights = state.get("model")
    if not isinstance(weights, dict):
        raise TrainingError(f"{path}: holds no model weights ('model'); not a mapenc checkpoint")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise TrainingError(
            f"{path}: its weights do not fit this model (another encoder or other settings?): "
            f"{_first_line(err)}"
        ) from None


def _verify_crcs(path: Path, raw: bytes) -> None:
    """TrainingError unless ``raw`` is a zip archive whose every member matches its CRC-32."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            damaged = archive.testzip()
    except Exception as err:  # zipfile raises several types for damaged headers
        raise TrainingError(f"{path}: damaged or not a checkpoint ({_first_line(err)})") from None
    if damaged is not None:
        raise TrainingError(f"{path}: damaged checkpoint (CRC mismatch in {damaged})")


def _first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (some libraries add paragraphs of advice)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def write_json(path: PathType, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically; ValueError for NaN or infinity (not JSON)."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"

    def write(handle: IO[bytes]) -> None:
        handle.write(text.encode())

    write_atomic(path, write)


def read_json(path: PathType) -> Any:
    """JSON content of ``path``; TrainingError naming the file when it is missing, not a file,
    not UTF-8, malformed, or holds NaN/Infinity (not JSON)."""
    p = Path(path)

    def refuse_constant(name: str) -> float:
        raise TrainingError(f"{p}: {name} is not JSON")

    try:
        return json.loads(p.read_bytes().decode("utf-8"), parse_constant=refuse_constant)
    except FileNotFoundError:
        raise TrainingError(f"{p}: no such file") from None
    except OSError as err:  # a folder in its place, no permission, ...
        raise TrainingError(f"{p}: cannot be read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise TrainingError(f"{p}: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise TrainingError(f"{p}: malformed JSON ({err})") from None
    except RecursionError:
        raise TrainingError(f"{p}: JSON nested too deeply") from None


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
