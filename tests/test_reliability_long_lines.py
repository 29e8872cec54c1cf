"""Very long lines: a lane of 10^5 points is simplified within a stated tolerance and loads; a
lane that no simplification brings under the (configurable) vertex limit is refused, naming the
file, the lane and the setting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from mapenc.cli import main
from mapenc.errors import ConfigError, MapFormatError
from mapenc.maps import load_map
from mapenc.maps.types import MAX_POLYGON_VERTICES_ENV, SIMPLIFY_TOLERANCE_M

LANE_WIDTH_M = 3.5  # the generic format's default width


def lane_file(path: Path, centerline: np.ndarray) -> Path:
    lane = {
        "type": "Feature",
        "properties": {"type": "lane", "id": "long"},
        "geometry": {"type": "LineString", "coordinates": centerline.tolist()},
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [lane]}))
    return path


def straight(points: int, step_m: float = 0.1) -> np.ndarray:
    return np.stack([np.arange(points) * step_m, np.zeros(points)], axis=1)


def zigzag(points: int) -> np.ndarray:
    """A centerline that turns by a metre at every point: nothing to simplify at 1 cm."""
    return np.stack([np.arange(points) * 2.0, np.arange(points) % 2 * 1.0], axis=1)


def test_a_straight_lane_of_100k_points_is_simplified_and_loads(tmp_path: Path) -> None:
    centerline = straight(100_000)  # its polygon has 200,001 vertices, over the default limit
    vector_map = load_map(lane_file(tmp_path / "long.geojson", centerline))
    (lane,) = vector_map.lanes
    assert len(lane.centerline) == 100_000  # the lane itself is kept as given
    area = vector_map.area
    assert area.area == pytest.approx(centerline[-1, 0] * LANE_WIDTH_M, rel=1e-9)
    assert len(area.exterior.coords) < 100
    # Every boundary point is within the stated tolerance of the simplified outline.
    left = lane.left_boundary[::997]
    distances = [area.exterior.distance(shapely.Point(p)) for p in left]
    assert max(distances) <= SIMPLIFY_TOLERANCE_M


def test_a_lane_over_the_limit_even_simplified_names_file_lane_and_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = lane_file(tmp_path / "wiggly.geojson", zigzag(3_000))
    monkeypatch.setenv(MAX_POLYGON_VERTICES_ENV, "1000")
    with pytest.raises(MapFormatError) as refusal:
        load_map(path).area  # noqa: B018 (the lane polygons are built on first use)
    message = str(refusal.value)
    assert message.startswith(f"{path}: lane long: polygon with 6,001 vertices")
    assert "over the limit of 1,000" in message and MAX_POLYGON_VERTICES_ENV in message
    assert main(["info", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert str(path) in line and "lane long" in line
    # The setting raises the limit.
    monkeypatch.setenv(MAX_POLYGON_VERTICES_ENV, "10000")
    assert load_map(path).area.area > 0


@pytest.mark.parametrize("value", ["0", "-5", "many", "1e6"])
def test_a_bad_vertex_limit_is_a_config_error(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_POLYGON_VERTICES_ENV, value)
    path = lane_file(tmp_path / "lane.geojson", straight(10))
    with pytest.raises(ConfigError, match=MAX_POLYGON_VERTICES_ENV):
        load_map(path).area  # noqa: B018
