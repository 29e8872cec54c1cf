"""The bookkeeping of a training run: CSV logs that survive resumption, running means, TensorBoard."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mapenc.errors import ConfigError, TrainingError
from mapenc.safeio import write_bytes_atomic

TRAIN_LOG_NAME = "train_log.csv"
EPOCH_LOG_NAME = "epochs.csv"


class CsvLog:
    """Append-only CSV whose columns are fixed by the first row.

    On resume, rows past the checkpoint's step are dropped so a killed run leaves no duplicates;
    the file is then rewritten atomically (a kill meanwhile leaves the old file, never an empty
    one). A last line without its newline (a write cut short by a kill) is dropped; any other
    row whose step is not a whole number is a TrainingError naming the line.
    """

    def __init__(self, path: Path, keep_until_step: int | None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if keep_until_step is None or not path.is_file():
            path.unlink(missing_ok=True)
            return
        fields, rows = read_log(path)
        self.fields = fields or None
        kept = [row for row in rows if int(row["step"]) <= keep_until_step]
        self._write_all(kept)

    def _write_all(self, rows: list[dict[str, Any]]) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.fields or [])
        writer.writeheader()
        writer.writerows(rows)
        write_bytes_atomic(self.path, text.getvalue().encode())

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one row; keys not in the header are ignored, missing ones left empty."""
        if self.fields is None:
            self.fields = list(row)
            self._write_all([])
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore").writerow(row)


def read_log(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and complete rows of a log written by CsvLog (a last line torn by a writer that is
    still running or was killed is left out); TrainingError for a damaged row."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TrainingError(f"{path}: unreadable training log ({err})") from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # torn by a kill in the middle of a write
    try:
        reader = csv.DictReader(lines)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    except csv.Error as err:
        raise TrainingError(f"{path}: damaged training log ({err})") from None
    if rows and "step" not in fields:
        raise TrainingError(f"{path}: training log without a 'step' column")
    for line, row in enumerate(rows, start=2):
        if not (row.get("step") or "").isdigit():
            raise TrainingError(
                f"{path}: line {line}: step {row.get('step')!r} is not a whole number "
                "(a damaged log: repair or delete that line)"
            )
    return fields, rows


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
