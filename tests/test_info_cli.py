"""`mapenc info`: JSON summary of maps and scenarios, PNG drawing, errors as exit status 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mapenc.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
GENERIC = DATA / "fixtures" / "generic_tiny"
SAMPLE = DATA / "av2_sample"


def info(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["info", *args]) == 0
    out = capsys.readouterr().out
    return json.loads(out[: out.rindex("}") + 1])


def test_map_file_has_no_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    summary = info(capsys, str(GENERIC / "map.geojson"))
    assert "scenario" not in summary
    assert summary["map"]["lanes"] == 3


def test_generic_scene_folder(capsys: pytest.CaptureFixture[str]) -> None:
    summary = info(capsys, str(GENERIC), "--dt", "0.2")
    scenario = summary["scenario"]
    assert scenario == {  # counts from the fixture's CSV
        "source": str(GENERIC / "tracks.csv"),
        "tracks": 3,
        "kinds": {"vehicle": 1, "pedestrian": 1, "cyclist": 1},
        "dt_s": 0.2,
        "steps": 8,
        "duration_s": 1.4,
        "valid_positions": 8 + 6 + 3,
        "focal_track_id": None,
    }


def test_av2_sample_with_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    pytest.importorskip("matplotlib")
    png = tmp_path / "out" / "scene.png"
    summary = info(capsys, str(SAMPLE), "--png", str(png))
    assert summary["map"]["lanes"] == 71
    assert summary["scenario"]["tracks"] == 58
    from matplotlib.image import imread

    image = imread(png)
    assert image.shape[0] > 200 and image.shape[1] > 200
    # Something was drawn: more than a blank canvas of one colour.
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20


def test_real_sensor_log_folder(capsys: pytest.CaptureFixture[str], real_data: Path) -> None:
    pytest.importorskip("pyarrow")
    log = sorted((real_data / "av2" / "sensor_logs").iterdir())[0]
    summary = info(capsys, str(log))
    assert summary["scenario"]["tracks"] > 100
    assert summary["map"]["lanes"] > 100


def test_bad_input_exits_2_with_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "map.geojson"
    bad.write_text('{"type": "FeatureCollection"')
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "truncated" in err
