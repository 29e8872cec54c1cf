"""Lane ids that a file leaves out or sets to null: one rule for the AV2 and GeoJSON readers.

A null or missing id is no id. The lane then takes the id its container files it under (the AV2
``lane_segments`` key, the GeoJSON feature's ``id``), else (GeoJSON only) its index among the lanes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from map_files import write_changed_json

from mapenc.maps import load_map

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"


@pytest.mark.parametrize("drop", ["null", "missing"])
def test_av2_lane_without_id_takes_its_key(tmp_path: Path, drop: str) -> None:
    def drop_id(doc: dict[str, Any]) -> None:
        segment = doc["lane_segments"]["1"]
        if drop == "null":
            segment["id"] = None
        else:
            del segment["id"]

    path = write_changed_json(
        FIXTURES / "av2_tiny" / "log_map_archive_tiny.json",
        drop_id,
        tmp_path / "log_map_archive_no_id.json",
    )
    lanes = {lane.id: lane for lane in load_map(path).lanes}
    assert sorted(lanes) == ["1", "2", "3"]
    assert lanes["3"].predecessors == ("1",)  # still names an existing lane


def test_geojson_lane_with_null_id_takes_the_feature_id(tmp_path: Path) -> None:
    def null_id(doc: dict[str, Any]) -> None:
        lane = doc["features"][0]
        lane["properties"]["id"] = None
        lane["id"] = "from-feature"

    path = write_changed_json(
        FIXTURES / "generic_tiny" / "map.geojson", null_id, tmp_path / "map.geojson"
    )
    assert load_map(path).lanes[0].id == "from-feature"
