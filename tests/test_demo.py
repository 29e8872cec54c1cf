"""The demo's quick steps: map pictures, encoder tables and the index page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import shapely

from mapenc.experiments.demo import encoders_section, maps_section, pose_on_a_lane, write_index
from mapenc.maps.synthetic import TownConfig, make_town


def test_pose_on_a_lane_lies_on_the_drivable_area_facing_along_the_lane() -> None:
    town = make_town(TownConfig(seed=1))
    x, y, heading = pose_on_a_lane(town)
    lane = max(town.lanes, key=lambda lane: lane.length_m)
    assert town.area.buffer(1e-6).contains(shapely.Point(x, y))
    step = lane.centerline[-1] - lane.centerline[0]
    # A long lane may curve, but it cannot point backwards from its own middle.
    assert np.cos(heading - np.arctan2(step[1], step[0])) > 0


def test_map_and_encoder_sections_write_an_index(tmp_path: Path) -> None:
    sections = [maps_section(tmp_path, seed=0), encoders_section(tmp_path)]
    images = sections[0].images
    assert len(images) >= 2 and all(p.is_file() and p.stat().st_size > 1000 for p in images)
    assert any("synthetic_town" in p.name for p in images)
    assert set(sections[1].data) == {"seed_global", "seed_spatial"}
    assert "[N, 1, 14, 14]" in (tmp_path / "describe_seed_spatial.txt").read_text()
    index = write_index(tmp_path, sections).read_text()
    for path in images:
        assert str(path.relative_to(tmp_path)) in index
    summary = sections[0].data["synthetic_town"]
    assert json.loads(json.dumps(summary))["map"]["lanes"] > 0
