"""Writes refused by a real file-size limit (``RLIMIT_FSIZE``, what ``ulimit -f`` sets): the
command ends with one line naming the file, exit 2, and leaves no broken or temporary file.

Python ignores SIGXFSZ, so a write past the limit fails with EFBIG ("File too large") as a
write to a full disk fails with ENOSPC, at the same calls.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")


def run_limited(max_file_bytes: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``mapenc *args`` in a process that may write no file beyond ``max_file_bytes``."""

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        [sys.executable, "-m", "mapenc", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=limit_file_size,
        timeout=300,
    )


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], path: Path) -> None:
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.endswith(f"{path}: File too large") or f"{path}: cannot write" in line, line
    assert "File too large" in line


def test_a_checkpoint_beyond_the_limit_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # config.json and the log (a few kB) fit; the checkpoint (MBs of weights) does not.
    done = run_limited(
        1 << 20, "train-mnist", "--max-steps", "2", "--no-progress", "--out", str(run)
    )
    assert_one_line_refusal(done, run / "checkpoint.pt")
    # The 2 steps' log and their scores (the last weights are scored) fit; no checkpoint.
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "epochs.csv", "train_log.csv"]


def test_a_json_file_beyond_the_limit_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_limited(256, "train-mnist", "--max-steps", "2", "--no-progress", "--out", str(run))
    assert_one_line_refusal(done, run / "config.json")
    assert list(run.iterdir()) == []


def test_a_raster_cache_beyond_the_limit_is_one_line(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    done = run_limited(
        16 << 10,
        "train-traj",
        "--data",
        "synthetic:4",
        "--max-steps",
        "2",
        "--no-progress",
        "--cache-dir",
        str(cache),
        "--out",
        str(tmp_path / "run"),
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert "cannot write the raster cache (File too large)" in line
    assert ".u8" in line
    assert list(cache.iterdir()) == []
