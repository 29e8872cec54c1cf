"""CommonRoad 2020a reader: lanelet maps and scenarios (``.xml`` / ``.xml.gz``).

How CommonRoad maps onto mapenc's types (coordinates stay in the file's metric frame):

- Each lanelet becomes a ``Lane`` with the lanelet id; ``leftBound``/``rightBound`` points are its
  boundaries (both run in the driving direction) and the centerline lies midway between them.
- ``laneletType``: ``busLane``/``busStop`` -> BUS, ``bicycleLane`` -> BIKE, every other road type
  (``urban``, ``highway``, ``country``, ``unknown``, ...) -> VEHICLE. ``crosswalk`` lanelets become
  crosswalk polygons, not lanes. ``sidewalk`` lanelets are pedestrian space: they become neither
  lanes nor drivable area. References (predecessor, successor, neighbours) to lanelets that are not
  lanes are dropped.
- ``lineMarking``: ``solid``/``broad_solid`` -> SOLID, ``dashed``/``broad_dashed`` -> DASHED,
  ``no_marking`` -> NONE, ``curb``/``lowered_curb`` -> CURB, absent or unrecognised -> UNKNOWN.
- ``adjacentLeft``/``adjacentRight`` become ``left_neighbor``/``right_neighbor`` whatever their
  ``drivingDir`` (``Lane`` records no direction for neighbours).
- Lanelets named as successors (left, right, straight) of an ``intersection`` incoming are
  ``is_intersection`` lanes.
- Drivable area: union of the lane and crosswalk lanelet polygons (left bound + reversed right
  bound). Self-intersecting lanelet polygons are repaired with ``make_valid`` and one warning per
  file naming the lanelets (``repair_polygons``), never dropped.

Scenarios: ``timeStepSize`` is ``dt``; each ``dynamicObstacle`` becomes a ``Track`` over the steps
0..T-1 common to the scenario (T = last ``time/exact`` of any obstacle + 1), ``valid`` where the
obstacle has a state. Positions are the raw ``position/point`` values, headings the
``orientation/exact`` values wrapped to [-pi, pi), velocity the ``velocity/exact`` speed along the
heading. Static obstacles and planning problems are not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple
from xml.etree.ElementTree import Element

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from mapenc.errors import MapencError, MapFormatError, ScenarioFormatError
from mapenc.geometry import wrap_angle
from mapenc.maps.tracks import as_time_steps, check_track_table_size
from mapenc.maps.types import (
    FloatArray,
    Lane,
    LaneType,
    MarkType,
    Scenario,
    Track,
    VectorMap,
    as_polyline,
    centerline_from_boundaries,
    repair_polygons,
)
from mapenc.maps.xmlparse import parse_floats, parse_xml

ROOT_TAG = "commonRoad"

MARK_TYPES: dict[str, MarkType] = {
    "solid": MarkType.SOLID,
    "broad_solid": MarkType.SOLID,
    "dashed": MarkType.DASHED,
    "broad_dashed": MarkType.DASHED,
    "solid_solid": MarkType.DOUBLE_SOLID,
    "dashed_dashed": MarkType.DOUBLE_DASHED,
    "solid_dashed": MarkType.SOLID_DASHED,
    "dashed_solid": MarkType.DASHED_SOLID,
    "curb": MarkType.CURB,
    "lowered_curb": MarkType.CURB,
    "no_marking": MarkType.NONE,
    "unknown": MarkType.UNKNOWN,
}

# laneletType values that make a lanelet something other than a vehicle lane, in priority order.
CROSSWALK_TYPES = frozenset({"crosswalk"})
PEDESTRIAN_ONLY_TYPES = frozenset({"sidewalk"})
LANE_TYPES: dict[str, LaneType] = {
    "busLane": LaneType.BUS,
    "busStop": LaneType.BUS,
    "bicycleLane": LaneType.BIKE,
}

# CommonRoad obstacle type -> Track.kind (the AV2 vocabulary where one exists).
TRACK_KINDS: dict[str, str] = {
    "car": "vehicle",
    "taxi": "vehicle",
    "priorityVehicle": "vehicle",
    "parkedVehicle": "vehicle",
    "truck": "truck",
    "bus": "bus",
    "motorcycle": "motorcyclist",
    "bicycle": "cyclist",
    "pedestrian": "pedestrian",
}

INTERSECTION_SUCCESSORS = (
    "intersection/incoming/successorsLeft",
    "intersection/incoming/successorsRight",
    "intersection/incoming/successorsStraight",
)


class _Lanelet(NamedTuple):
    """One lanelet as read, before it is sorted into lanes, crosswalks and pedestrian space."""

    id: str
    left: FloatArray
    right: FloatArray
    left_mark: MarkType
    right_mark: MarkType
    types: tuple[str, ...]
    predecessors: tuple[str, ...]
    successors: tuple[str, ...]
    left_neighbor: str | None
    right_neighbor: str | None


class _Trajectory(NamedTuple):
    """One dynamic obstacle's states as read: (S,) steps, (S, 2) xy, (S,) heading and speed."""

    id: str
    kind: str
    steps: np.ndarray
    xy: FloatArray
    heading: FloatArray
    speed: FloatArray | None
    length: float
    width: float


def read_commonroad_map(path: Path) -> VectorMap:
    """The lanelet map of a CommonRoad 2020a file (``.xml`` or ``.xml.gz``), metres.

    Raises MapFormatError naming the file for unreadable, unsafe or malformed XML, a file with no
    lanelets, bounds with fewer than 2 points or NaN/inf coordinates, and dangling references.
    """
    path = Path(path)
    return _map_from_root(path, parse_xml(path, ROOT_TAG))


def read_commonroad_scenario(path: Path) -> Scenario:
    """Map and dynamic-obstacle tracks of a CommonRoad 2020a scenario file.

    ``dt`` is ``timeStepSize`` (s); every Track spans the same steps 0..T-1 (see module docstring).
    Raises ScenarioFormatError for a missing/invalid ``timeStepSize``, a file without dynamic
    obstacles (a map-only file: use ``read_commonroad_map``) or malformed obstacle states.
    """
    path = Path(path)
    root = parse_xml(path, ROOT_TAG)
    vector_map = _map_from_root(path, root)
    dt = _time_step_size(path, root)
    trajectories = [_read_obstacle(path, el) for el in root.iterfind("dynamicObstacle")]
    if not trajectories:
        raise ScenarioFormatError(path, "no <dynamicObstacle>: a map-only file, use load_map")
    num_steps = int(max(int(tr.steps.max()) for tr in trajectories)) + 1
    try:
        check_track_table_size(len(trajectories), num_steps)
    except MapencError as err:
        raise ScenarioFormatError(path, str(err)) from None
    tracks = [_track(tr, num_steps) for tr in trajectories]
    if len({tr.id for tr in tracks}) != len(tracks):
        raise ScenarioFormatError(path, "duplicate dynamicObstacle ids")
    return Scenario(map=vector_map, dt=dt, tracks=tracks, source=str(path))


def _map_from_root(path: Path, root: Element) -> VectorMap:
    lanelets = [_read_lanelet(path, el) for el in root.iterfind("lanelet")]
    if not lanelets:
        raise MapFormatError(path, "no <lanelet> elements: not a CommonRoad lanelet map")
    ids = {ll.id for ll in lanelets}
    if len(ids) != len(lanelets):
        raise MapFormatError(path, "duplicate lanelet ids")
    _check_references(path, lanelets, ids)

    polygons = _lanelet_polygons(path, lanelets)
    is_crosswalk = [not CROSSWALK_TYPES.isdisjoint(ll.types) for ll in lanelets]
    is_lane = [
        not cw and PEDESTRIAN_ONLY_TYPES.isdisjoint(ll.types)
        for ll, cw in zip(lanelets, is_crosswalk, strict=True)
    ]
    lane_ids = {ll.id for ll, keep in zip(lanelets, is_lane, strict=True) if keep}
    in_intersection = {el.get("ref") for p in INTERSECTION_SUCCESSORS for el in root.iterfind(p)}
    lanes = [
        _lane(ll, lane_ids, in_intersection)
        for ll, keep in zip(lanelets, is_lane, strict=True)
        if keep
    ]
    if not lanes:
        raise MapFormatError(path, "no drivable lanelets (only crosswalks or sidewalks)")
    crosswalks = [p for p, cw in zip(polygons, is_crosswalk, strict=True) if cw and not p.is_empty]
    drivable = [
        p for p, lane, cw in zip(polygons, is_lane, is_crosswalk, strict=True) if lane or cw
    ]
    return VectorMap(
        lanes=lanes,
        crosswalks=crosswalks,
        drivable_area=shapely.union_all(drivable),
        source=str(path),
    )


def _read_lanelet(path: Path, el: Element) -> _Lanelet:
    lanelet_id = el.get("id")
    if lanelet_id is None:
        raise MapFormatError(path, "a <lanelet> has no id")
    left, left_mark = _read_bound(path, el, lanelet_id, "leftBound")
    right, right_mark = _read_bound(path, el, lanelet_id, "rightBound")
    adjacent_left = el.find("adjacentLeft")
    adjacent_right = el.find("adjacentRight")
    return _Lanelet(
        id=lanelet_id,
        left=left,
        right=right,
        left_mark=left_mark,
        right_mark=right_mark,
        types=tuple((t.text or "").strip() for t in el.iterfind("laneletType")),
        predecessors=_refs(path, el, "predecessor", lanelet_id),
        successors=_refs(path, el, "successor", lanelet_id),
        left_neighbor=None if adjacent_left is None else adjacent_left.get("ref"),
        right_neighbor=None if adjacent_right is None else adjacent_right.get("ref"),
    )


def _read_bound(path: Path, el: Element, lanelet_id: str, tag: str) -> tuple[FloatArray, MarkType]:
    """(K, 2) points and mark of a lanelet's ``leftBound`` or ``rightBound``."""
    what = f"lanelet {lanelet_id} {tag}"
    bound = el.find(tag)
    if bound is None:
        raise MapFormatError(path, f"{what}: missing")
    # Element.iter runs in C; in a bound only points hold <x>/<y> (the counts are checked below).
    xs = parse_floats(path, [e.text for e in bound.iter("x")], what)
    ys = parse_floats(path, [e.text for e in bound.iter("y")], what)
    if xs.shape != ys.shape:
        raise MapFormatError(path, f"{what}: every point needs one x and one y")
    try:
        points = as_polyline(np.stack([xs, ys], axis=1), what)
    except MapencError as err:
        raise MapFormatError(path, str(err)) from None
    mark = MARK_TYPES.get((bound.findtext("lineMarking") or "unknown").strip(), MarkType.UNKNOWN)
    return points, mark


def _refs(path: Path, el: Element, tag: str, lanelet_id: str) -> tuple[str, ...]:
    refs = tuple(r.get("ref") for r in el.iterfind(tag))
    if None in refs:
        raise MapFormatError(path, f"lanelet {lanelet_id}: a <{tag}> has no ref")
    return tuple(r for r in refs if r is not None)


def _check_references(path: Path, lanelets: list[_Lanelet], ids: set[str]) -> None:
    """MapFormatError when a lanelet refers to a lanelet that the file does not define."""
    for ll in lanelets:
        refs = [*ll.predecessors, *ll.successors, ll.left_neighbor, ll.right_neighbor]
        missing = sorted({r for r in refs if r is not None and r not in ids})
        if missing:
            raise MapFormatError(path, f"lanelet {ll.id} refers to missing lanelet(s) {missing}")


def _lanelet_polygons(path: Path, lanelets: list[_Lanelet]) -> list[BaseGeometry]:
    """Polygon (left bound + reversed right bound) of every lanelet, built in one vectorised call;
    invalid ones are repaired with one warning for the file."""
    rings = [np.concatenate([ll.left, ll.right[::-1]]) for ll in lanelets]
    ring_index = np.repeat(np.arange(len(rings)), [len(r) for r in rings])
    polygons = shapely.polygons(shapely.linearrings(np.concatenate(rings), indices=ring_index))
    return repair_polygons(list(polygons), [f"lanelet {ll.id}" for ll in lanelets], str(path))


def _lane(ll: _Lanelet, lane_ids: set[str], in_intersection: set[str | None]) -> Lane:
    lane_type = next(
        (LANE_TYPES[t] for t in ll.types if t in LANE_TYPES),
        LaneType.VEHICLE,
    )
    return Lane(
        id=ll.id,
        centerline=centerline_from_boundaries(ll.left, ll.right),
        left_boundary=ll.left,
        right_boundary=ll.right,
        left_mark=ll.left_mark,
        right_mark=ll.right_mark,
        lane_type=lane_type,
        predecessors=tuple(r for r in ll.predecessors if r in lane_ids),
        successors=tuple(r for r in ll.successors if r in lane_ids),
        left_neighbor=ll.left_neighbor if ll.left_neighbor in lane_ids else None,
        right_neighbor=ll.right_neighbor if ll.right_neighbor in lane_ids else None,
        is_intersection=ll.id in in_intersection,
    )


def _time_step_size(path: Path, root: Element) -> float:
    text = root.get("timeStepSize")
    try:
        dt = float(text) if text is not None else float("nan")
    except ValueError:
        dt = float("nan")
    if not (np.isfinite(dt) and dt > 0):
        raise ScenarioFormatError(path, f"timeStepSize must be a positive number, got {text!r}")
    return dt


def _read_obstacle(path: Path, el: Element) -> _Trajectory:
    """States of one ``dynamicObstacle``: ``initialState`` followed by ``trajectory/state*``."""
    obstacle_id = el.get("id")
    what = f"dynamicObstacle {obstacle_id}"
    if obstacle_id is None:
        raise ScenarioFormatError(path, "a <dynamicObstacle> has no id")
    containers = [c for c in (el.find("initialState"), el.find("trajectory")) if c is not None]
    num_states = len(el.findall("initialState")) + len(el.findall("trajectory/state"))
    if num_states == 0:
        raise ScenarioFormatError(path, f"{what}: no initialState")

    def optional_values(tag: str, leaf: str | None = "exact") -> FloatArray | None:
        """Every state's ``tag/leaf`` value in state order (Element.iter: no per-state lookups);
        None when no state has ``tag``."""
        texts = [e.findtext(leaf) if leaf else e.text for c in containers for e in c.iter(tag)]
        if not texts:
            return None
        if len(texts) != num_states:
            raise ScenarioFormatError(path, f"{what}: {tag} missing in some states")
        return parse_floats(path, texts, f"{what} {tag}")

    def values(tag: str, leaf: str | None = "exact") -> FloatArray:
        found = optional_values(tag, leaf)
        if found is None:
            raise ScenarioFormatError(path, f"{what}: its states have no {tag}")
        return found

    steps_f, heading = values("time"), values("orientation")
    xs, ys = values("x", leaf=None), values("y", leaf=None)  # position/point/x and /y
    speed = optional_values("velocity")
    xy = np.stack([xs, ys], axis=1)
    finite = [np.isfinite(a).all() for a in (steps_f, xy, heading)]
    if not all(finite) or (speed is not None and not np.isfinite(speed).all()):
        raise ScenarioFormatError(path, f"{what}: NaN or inf in its states")
    try:
        steps = as_time_steps(steps_f, f"{what}: time")
    except MapencError as err:
        raise ScenarioFormatError(path, str(err)) from None
    if len(np.unique(steps)) != len(steps):
        raise ScenarioFormatError(path, f"{what}: time steps must be distinct integers >= 0")
    length, width = _obstacle_size(path, el, what)
    obstacle_type = (el.findtext("type") or "unknown").strip()
    return _Trajectory(
        id=obstacle_id,
        kind=TRACK_KINDS.get(obstacle_type, obstacle_type.lower()),
        steps=steps,
        xy=xy,
        heading=wrap_angle(heading),
        speed=speed,
        length=length,
        width=width,
    )


def _obstacle_size(path: Path, el: Element, what: str) -> tuple[float, float]:
    """(length, width) in metres from ``shape/rectangle``, or the diameter of ``shape/circle``."""
    if el.find("shape/rectangle") is not None:
        texts, scale = (
            [el.findtext("shape/rectangle/length"), el.findtext("shape/rectangle/width")],
            1.0,
        )
    elif el.find("shape/circle") is not None:
        texts, scale = [el.findtext("shape/circle/radius")] * 2, 2.0
    else:
        raise ScenarioFormatError(path, f"{what}: shape is neither a rectangle nor a circle")
    size = scale * parse_floats(path, texts, f"{what} shape")
    if not (np.isfinite(size).all() and (size > 0).all()):
        raise ScenarioFormatError(path, f"{what}: shape size must be positive")
    return float(size[0]), float(size[1])


def _track(tr: _Trajectory, num_steps: int) -> Track:
    """The obstacle's states placed on the scenario's steps 0..num_steps-1 (NaN where invalid)."""
    valid = np.zeros(num_steps, dtype=bool)
    valid[tr.steps] = True
    xy = np.full((num_steps, 2), np.nan)
    xy[tr.steps] = tr.xy
    heading = np.full(num_steps, np.nan)
    heading[tr.steps] = tr.heading
    velocity = None
    if tr.speed is not None:
        velocity = np.full((num_steps, 2), np.nan)
        velocity[tr.steps] = tr.speed[:, None] * np.stack(
            [np.cos(tr.heading), np.sin(tr.heading)], axis=1
        )
    return Track(
        id=tr.id,
        kind=tr.kind,
        xy=xy,
        heading=heading,
        valid=valid,
        length=tr.length,
        width=tr.width,
        velocity=velocity,
    )
