"""Messages that echo a file name: one line each, whatever control characters the name holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mapenc.cli import main

COMMONROAD_TINY = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "commonroad_tiny.xml"
EVIL_NAME = "map\nerror: forged\r\x1b[2J\x07.json"


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_error_naming_a_file_with_a_newline_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(tmp_path / EVIL_NAME)]) == 2
    (line,) = stderr_lines(capsys)
    assert line.startswith("mapenc info: error: ")
    assert "map\\nerror: forged\\r\\x1b[2J\\x07.json" in line


def test_unknown_argument_with_a_newline_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["info", "a.json", "b\nc"])
    assert exit_.value.code == 2
    (line,) = stderr_lines(capsys)
    assert "b\\nc" in line


def test_warning_naming_a_file_with_a_newline_is_one_line(tmp_path: Path) -> None:
    # Lanelet 3's right-bound end moved to the left side: a bow tie, repaired with a warning
    # that names the file.
    bow_tie = re.sub(
        r"<x>40\.0</x>\s*<y>0\.0</y>", "<x>40.0</x><y>9.0</y>", COMMONROAD_TINY.read_text()
    )
    path = tmp_path / "a\nwarning: forged.xml"
    path.write_text(bow_tie)
    done = subprocess.run(
        [sys.executable, "-m", "mapenc", "info", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("UserWarning: ") and "a\\nwarning: forged.xml: 1 invalid polygon" in line
