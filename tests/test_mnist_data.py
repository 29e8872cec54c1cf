"""MNIST readers (IDX, npz, embedded CSV) and the three binarisations."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from mapenc.data.mnist import (
    EMBEDDED_MNIST,
    MnistImages,
    load_mnist,
    mnist_datasets,
    read_idx,
    read_mnist_idx,
    write_idx,
)
from mapenc.errors import DataError


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_idx_round_trip(tmp_path: Path, suffix: str, dtype: type) -> None:
    array = np.random.default_rng(1).normal(size=(5, 3, 4)).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian_with_ubyte_magic(tmp_path: Path) -> None:
    write_idx(tmp_path / "x", np.zeros((2, 28, 28), dtype=np.uint8))
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:16] == (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    assert len(raw) == 16 + 2 * 28 * 28


def test_idx_truncated_and_bad_magic_raise(tmp_path: Path) -> None:
    write_idx(tmp_path / "x", _images(3))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-10])
    with pytest.raises(DataError, match=r"short.*holds"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\x00")
    with pytest.raises(DataError, match="holds"):
        read_idx(tmp_path / "long")
    (tmp_path / "magic").write_bytes(b"\x01\x00" + raw[2:])
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "magic")
    (tmp_path / "header").write_bytes(raw[:7])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(tmp_path / "header")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(DataError, match="gzip"):
        read_idx(tmp_path / "bad.gz")


def _write_idx_folder(root: Path, n_train: int, n_test: int) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte.gz", _images(n_train, 1))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(n_train, dtype=np.uint8) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", _images(n_test, 2))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(n_test, dtype=np.uint8) % 10)


def test_idx_folder_in_torchvision_layout(tmp_path: Path) -> None:
    _write_idx_folder(tmp_path, 12, 7)
    splits = load_mnist(tmp_path)
    assert splits.x_train.shape == (12, 28, 28) and splits.x_test.shape == (7, 28, 28)
    np.testing.assert_array_equal(splits.x_train, _images(12, 1))
    np.testing.assert_array_equal(splits.y_test, np.arange(7) % 10)
    assert splits.y_train.dtype == np.int64


def test_idx_folder_with_mismatched_counts_raises(tmp_path: Path) -> None:
    _write_idx_folder(tmp_path, 12, 7)
    write_idx(tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte.gz", np.zeros(6, dtype=np.uint8))
    with pytest.raises(DataError, match="y_test"):
        read_mnist_idx(tmp_path)
    (tmp_path / "MNIST/raw/t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        read_mnist_idx(tmp_path)


def test_npz_reading_and_errors(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "m.npz",
        x_train=_images(10),
        y_train=np.arange(10, dtype=np.uint8),
        x_test=_images(4),
        y_test=np.arange(4),
    )
    splits = load_mnist(tmp_path / "m.npz")
    assert splits.x_train.shape == (10, 28, 28) and splits.y_train.dtype == np.int64
    np.savez(tmp_path / "bad.npz", x_train=_images(10), y_train=np.arange(10))
    with pytest.raises(DataError, match="missing arrays"):
        load_mnist(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"junk\.npz"):
        load_mnist(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="no such"):
        load_mnist(tmp_path / "absent.npz")


def test_embedded_subset_is_stratified_4000_1000() -> None:
    assert EMBEDDED_MNIST.is_file()
    splits = load_mnist()
    assert splits.x_train.shape == (4000, 28, 28) and splits.x_test.shape == (1000, 28, 28)
    np.testing.assert_array_equal(np.bincount(splits.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(splits.y_test), [100] * 10)
    train_rows = {img.tobytes() for img in splits.x_train}
    assert not any(img.tobytes() in train_rows for img in splits.x_test)


def test_binarisation_modes() -> None:
    images = _images(64)
    labels = np.zeros(64, dtype=np.int64)
    grey = MnistImages(images, labels, "none")
    np.testing.assert_allclose(grey[3][0].numpy()[0], images[3] / 255.0, rtol=1e-6)
    static = MnistImages(images, labels, "static", seed=5)
    dynamic = MnistImages(images, labels, "dynamic", seed=5)
    for ds in (static, dynamic):
        values = torch.unique(ds.images)
        assert set(values.tolist()) <= {0.0, 1.0}
        # A Bernoulli sample has the grey level as its mean: 64*784 pixels, tolerance ~4 sigma.
        assert abs(float(ds.images.mean() - grey.images.mean())) < 0.01
    first = static.images.clone()
    static.set_epoch(1)
    assert torch.equal(static.images, first)
    assert torch.equal(MnistImages(images, labels, "static", seed=5).images, first)
    dynamic.set_epoch(1)
    epoch1 = dynamic.images.clone()
    dynamic.set_epoch(2)
    assert not torch.equal(dynamic.images, epoch1)
    dynamic.set_epoch(1)
    assert torch.equal(dynamic.images, epoch1)  # reproducible per epoch, so resume sees the same
    with pytest.raises(DataError, match="binarize"):
        MnistImages(images, labels, "threshold")  # type: ignore[arg-type]


def test_binarised_runs_test_on_one_static_sample() -> None:
    train, test = mnist_datasets(None, "dynamic", seed=3)
    assert train.binarize == "dynamic" and test.binarize == "static"
    grey_train, grey_test = mnist_datasets(None, "none")
    assert grey_test.binarize == "none" and len(grey_train) == 4000


@pytest.mark.real_data
def test_full_mnist_npz_matches_official_idx(real_data: Path) -> None:
    splits = load_mnist(real_data / "mnist" / "mnist.npz")
    assert splits.x_train.shape == (60000, 28, 28) and splits.x_test.shape == (10000, 28, 28)
    reference = real_data / "mnist" / "official_idx_reference"
    np.testing.assert_array_equal(read_idx(reference / "t10k-images-idx3-ubyte.gz"), splits.x_test)
    np.testing.assert_array_equal(read_idx(reference / "t10k-labels-idx1-ubyte.gz"), splits.y_test)
    np.testing.assert_array_equal(
        read_idx(reference / "train-labels-idx1-ubyte.gz"), splits.y_train
    )
    # The embedded subset is the first 500 training images of each digit.
    embedded = load_mnist()
    first_zeros = splits.x_train[splits.y_train == 0][:400]
    np.testing.assert_array_equal(embedded.x_train[:400], first_zeros)
