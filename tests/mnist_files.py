"""Helper for tests that train on MNIST: a small slice of the embedded subset as an ``.npz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mapenc.data.mnist import load_mnist


def tiny_mnist_file(path: Path, train_images: int, test_images: int) -> Path:
    """The first ``train_images`` training and ``test_images`` test images of the embedded
    MNIST subset, written to ``path`` (``.npz`` with ``x_train``, ``y_train``, ``x_test``,
    ``y_test``)."""
    splits = load_mnist()
    np.savez(
        path,
        x_train=splits.x_train[:train_images],
        y_train=splits.y_train[:train_images],
        x_test=splits.x_test[:test_images],
        y_test=splits.y_test[:test_images],
    )
    return path
