"""Where the INTERACTION maps land: per location, the share of vehicle positions inside lanelets
with the dataset's projection (Lanelet2's UTM projector, origin (0, 0)) and with a transverse
Mercator centred on the map, and the crosswalks made from pedestrian_marking pairs. Prints JSON.

    python docs/interaction/map_alignment.py ../shared/data/interaction
"""

from __future__ import annotations

import json
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import shapely

from mapenc.maps import iter_scenarios
from mapenc.maps.lanelet2 import read_lanelet2_map
from mapenc.maps.types import VectorMap


def lanelet_area(vector_map: VectorMap) -> shapely.Geometry:
    """The union of the map's lane polygons, prepared for point queries."""
    area = shapely.union_all([lane.polygon for lane in vector_map.lanes])
    shapely.prepare(area)
    return area


def main(release: Path) -> dict[str, dict[str, float | int]]:
    """Per location: vehicle positions, the share inside lanelets for both projections, and the
    number of crosswalks."""
    inside: defaultdict[str, np.ndarray] = defaultdict(lambda: np.zeros(3, dtype=np.int64))
    areas: dict[str, tuple[shapely.Geometry, shapely.Geometry]] = {}
    crosswalks: dict[str, int] = {}
    for scene in iter_scenarios(release):
        location = Path(scene.source).parent.name
        if location not in areas:
            centred = read_lanelet2_map(release / "maps" / f"{location}.osm")
            areas[location] = (lanelet_area(scene.map), lanelet_area(centred))
            crosswalks[location] = len(scene.map.crosswalks)
        xy = np.concatenate([t.xy[t.valid] for t in scene.tracks if t.kind == "vehicle"])
        dataset_frame, centred_frame = areas[location]
        inside[location] += [
            len(xy),
            shapely.contains_xy(dataset_frame, xy[:, 0], xy[:, 1]).sum(),
            shapely.contains_xy(centred_frame, xy[:, 0], xy[:, 1]).sum(),
        ]
    inside["all"] = sum(inside.values(), np.zeros(3, dtype=np.int64))
    crosswalks["all"] = sum(crosswalks.values())
    return {
        location: {
            "vehicle_positions": int(total),
            "inside_lanelets_utm_origin": round(float(utm) / total, 4),
            "inside_lanelets_map_centred": round(float(centred) / total, 4),
            "crosswalks": crosswalks[location],
        }
        for location, (total, utm, centred) in sorted(inside.items())
    }


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lanelet polygons repaired
        print(json.dumps(main(Path(sys.argv[1])), indent=1))
