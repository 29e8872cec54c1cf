"""Vector maps and scenes from Argoverse 2, Lanelet2, CommonRoad, Waymo Open Motion and
GeoJSON+CSV."""

from mapenc.maps.geojson import write_generic_scene
from mapenc.maps.io import iter_scenarios, load_map, load_scenario
from mapenc.maps.types import (
    Lane,
    LaneType,
    MapQuery,
    MarkType,
    Projection,
    Provenance,
    RoadLine,
    Scenario,
    StopSign,
    Track,
    VectorMap,
)

__all__ = [
    "Lane",
    "LaneType",
    "MapQuery",
    "MarkType",
    "Projection",
    "Provenance",
    "RoadLine",
    "Scenario",
    "StopSign",
    "Track",
    "VectorMap",
    "iter_scenarios",
    "load_map",
    "load_scenario",
    "write_generic_scene",
]
