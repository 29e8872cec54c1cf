"""The bookkeeping of a training run: CSV logs that survive resumption, running means, TensorBoard."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mapenc.errors import ConfigError

TRAIN_LOG_NAME = "train_log.csv"
EPOCH_LOG_NAME = "epochs.csv"


class CsvLog:
    """Append-only CSV whose columns are fixed by the first row; on resume, rows past the
    checkpoint's step are dropped so a killed run leaves no duplicates."""

    def __init__(self, path: Path, keep_until_step: int | None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if keep_until_step is None or not path.is_file():
            path.unlink(missing_ok=True)
            return
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            self.fields = list(reader.fieldnames or [])
            rows = [row for row in reader if int(row["step"]) <= keep_until_step]
        self._write_all(rows)

    def _write_all(self, rows: list[dict[str, Any]]) -> None:
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields or [])
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one row; keys not in the header are ignored, missing ones left empty."""
        if self.fields is None:
            self.fields = list(row)
            self._write_all([])
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore").writerow(row)


class RunningMeans:
    """Running means of named values between two log rows."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def pop(self) -> dict[str, float]:
        means = {key: total / max(self.count, 1) for key, total in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


class TensorBoardLog:
    """Scalars to TensorBoard when requested; ConfigError when the package is missing."""

    def __init__(self, enabled: bool, log_dir: Path) -> None:
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tensorboard=True but the tensorboard package is not installed"
            ) from None
        self.writer = SummaryWriter(log_dir=str(log_dir / "tensorboard"))

    def add(self, values: Mapping[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
