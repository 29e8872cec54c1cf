"""Vector maps and scenes from Argoverse 2, Lanelet2, CommonRoad and GeoJSON+CSV."""

from mapenc.maps.geojson import write_generic_scene
from mapenc.maps.io import load_map, load_scenario
from mapenc.maps.types import (
    Lane,
    LaneType,
    MapQuery,
    MarkType,
    Projection,
    Scenario,
    Track,
    VectorMap,
)

__all__ = [
    "Lane",
    "LaneType",
    "MapQuery",
    "MarkType",
    "Projection",
    "Scenario",
    "Track",
    "VectorMap",
    "load_map",
    "load_scenario",
    "write_generic_scene",
]
