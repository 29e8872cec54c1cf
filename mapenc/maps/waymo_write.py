"""Writing Waymo ``Scenario`` records (the reader's inverse, up to ids): for tests and benchmarks
that need Waymo files made from other scenes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mapenc.maps.tfrecord import write_records
from mapenc.maps.types import (
    FloatArray,
    LaneType,
    MarkType,
    Scenario,
    VectorMap,
)
from mapenc.maps.waymo import KINDS, scenario_proto_module

_OBJECT_TYPES = {kind: code for code, kind in KINDS.items()}
_ROAD_LINE_TYPES = {
    MarkType.DASHED: 1,  # broken single white
    MarkType.SOLID: 2,  # solid single white
    MarkType.DOUBLE_SOLID: 7,  # solid double yellow
    MarkType.DOUBLE_DASHED: 5,  # broken double yellow
    MarkType.SOLID_DASHED: 8,  # passing double yellow
    MarkType.DASHED_SOLID: 8,
}


def scenario_to_proto(scenario: Scenario) -> Any:
    """A Waymo ``Scenario`` message holding ``scenario`` (the reader's inverse, up to ids).

    Waymo ids are integers: tracks get their index in ``scenario.tracks`` (kept when every id is
    an integer), map features consecutive numbers. Lane boundaries become road lines (road edges
    for curbs) named by boundary segments over the whole lane; kinds without a Waymo type are
    "other". Needs protobuf (``pip install mapenc[waymo]``).
    """
    proto = scenario_proto_module(Path(scenario.source or "scenario"))
    message = proto.Scenario(scenario_id=scenario.scenario_id or "")
    message.timestamps_seconds.extend(scenario.dt * np.arange(scenario.num_steps))
    if scenario.current_step is not None:
        message.current_time_index = scenario.current_step
    numeric = all(track.id.lstrip("-").isdigit() for track in scenario.tracks)
    for index, track in enumerate(scenario.tracks):
        out = message.tracks.add(
            id=int(track.id) if numeric else index,
            object_type=_OBJECT_TYPES.get(track.kind, 4),
        )
        velocity = track.velocity if track.velocity is not None else np.zeros_like(track.xy)
        for t, valid in enumerate(track.valid):
            state = out.states.add(length=track.length, width=track.width, valid=bool(valid))
            if valid:
                state.center_x, state.center_y = track.xy[t]
                state.heading = track.heading[t]
                state.velocity_x, state.velocity_y = velocity[t]
    track_index = {track.id: i for i, track in enumerate(scenario.tracks)}
    if scenario.ego_track_id is not None:
        message.sdc_track_index = track_index[scenario.ego_track_id]
    for track_id in scenario.tracks_to_predict:
        message.tracks_to_predict.add(track_index=track_index[track_id])
    _add_map_features(message, scenario.map)
    return message


def _add_map_features(message: Any, vector_map: VectorMap) -> None:
    """Append ``vector_map``'s elements to ``message.map_features`` (ids 0, 1, ...)."""
    lane_ids = {lane.id: i for i, lane in enumerate(vector_map.lanes)}
    next_id = len(lane_ids)

    def add_feature() -> Any:
        nonlocal next_id
        next_id += 1
        return message.map_features.add(id=next_id - 1)

    def add_points(points: Any, xy: FloatArray) -> None:
        for x, y in xy:
            points.add(x=x, y=y, z=0.0)

    lanes = [message.map_features.add(id=i) for i in range(len(lane_ids))]
    for feature, lane in zip(lanes, vector_map.lanes, strict=True):
        center = feature.lane
        add_points(center.polyline, lane.centerline)
        center.entry_lanes.extend(lane_ids[i] for i in lane.predecessors if i in lane_ids)
        center.exit_lanes.extend(lane_ids[i] for i in lane.successors if i in lane_ids)
        center.interpolating = lane.is_intersection
        center.type = 3 if lane.lane_type == LaneType.BIKE else 2
        for boundaries, line, mark in (
            (center.left_boundaries, lane.left_boundary, lane.left_mark),
            (center.right_boundaries, lane.right_boundary, lane.right_mark),
        ):
            boundary = add_feature()
            if mark == MarkType.CURB:
                add_points(boundary.road_edge.polyline, line)
            else:
                boundary.road_line.type = _ROAD_LINE_TYPES.get(mark, 0)
                add_points(boundary.road_line.polyline, line)
            boundaries.add(
                lane_start_index=0,
                lane_end_index=len(lane.centerline) - 1,
                boundary_feature_id=boundary.id,
                boundary_type=boundary.road_line.type,
            )
    for crosswalk in vector_map.crosswalks:
        add_points(add_feature().crosswalk.polygon, np.asarray(crosswalk.exterior.coords)[:-1])
    for edge in vector_map.road_edges:
        add_points(add_feature().road_edge.polyline, edge)


def write_waymo_shard(path: Path, scenarios: Iterable[Scenario]) -> Path:
    """Write ``scenarios`` as a TFRecord file of Waymo ``Scenario`` records; return the path."""
    return write_records(path, (scenario_to_proto(sc).SerializeToString() for sc in scenarios))
