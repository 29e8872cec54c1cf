"""Shared fixtures: the real data folder (skipped with a reason when absent) and quiet torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"


def real_data_dir() -> Path | None:
    """The folder named by MAPENC_REAL_DATA, or None when unset or missing."""
    value = os.environ.get("MAPENC_REAL_DATA")
    if not value or not Path(value).is_dir():
        return None
    return Path(value)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Root of the real data (../shared/data layout); skips the test when it is not available."""
    root = real_data_dir()
    if root is None:
        pytest.skip("real data not available: set MAPENC_REAL_DATA to the shared data folder")
    return root


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch() -> None:
    """Tests share a small machine: keep torch to one thread when it is installed."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
