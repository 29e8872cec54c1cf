"""Helpers for the map-reader tests: broken copies of the tiny fixtures and the expected refusal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mapenc.errors import MapFormatError


def write_changed_json(source: Path, change: Callable[[Any], Any], path: Path) -> Path:
    """``source`` parsed as JSON, edited in place by ``change(doc)``, written to ``path``."""
    doc = json.loads(source.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def refusal(read: Callable[[Path], object], path: Path, match: str) -> MapFormatError:
    """The MapFormatError, matching ``match``, that ``read(path)`` must raise."""
    with pytest.raises(MapFormatError, match=match) as err:
        read(path)
    return err.value
