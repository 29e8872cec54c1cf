"""Seeded synthetic towns and traffic: the embedded default when no real data is at hand.

A town is a grid of junctions joined by two-way roads (right-hand traffic), some of them bent,
with a few grid roads left out so that T-junctions and bends appear inside the town as well as on
its border. Every road carries ``lanes_per_direction`` lanes each way; inside each junction,
connector lanes (``is_intersection=True``) turn left, right or go straight as smooth cubic
curves, or, at roundabouts, merge onto and leave a one-lane counter-clockwise ring; so every lane
has successors and agents can drive forever. Crosswalks lie across the approaches of junctions
with three or more roads.

Agents follow the lane graph: at every lane end they pick a successor at random, so that the map
decides where they go and futures are multimodal. Their speed follows a per-agent cruise speed,
slowed for curvature and junctions and limited in acceleration; positions carry a small smooth
lateral offset. All agents move in the same time steps, and road users keep a time gap behind
whoever is ahead of them going their way, and stop for pedestrians in their path (there is no
yielding to crossing traffic inside junctions). Pedestrians wait at a curb, walk over a
crosswalk and on along the sidewalk.

Everything is in one metric city frame (metres, float64) with the town's first junction at the
origin, and is deterministic per seed.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import shapely
from numpy.lib.stride_tricks import sliding_window_view
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from mapenc.errors import ConfigError
from mapenc.geometry import wrap_angle
from mapenc.maps.types import FloatArray, Lane, LaneType, MarkType, Scenario, Track, VectorMap

# Compass names of the four axis directions a road can leave a junction in (index q: angle q*90°).
ARM_NAMES = ("E", "N", "W", "S")
# Cubic Bezier handle length, as a fraction of the radius, that best approximates a quarter circle.
QUARTER_CIRCLE_HANDLE = 0.5523
# Angle (rad) before / after a road's axis at which its lanes join / leave a roundabout's ring.
ROUNDABOUT_ATTACH_RAD = np.deg2rad(40.0)
# Spacing (metres) of the dense path samples agents are driven along.
PATH_STEP_M = 0.5
# Car following: agents within this distance (metres) of a road user's heading line count as in
# its way; it keeps this time gap (seconds) plus this distance (metres) behind them, braking at
# most this hard (m/s^2).
FOLLOW_CORRIDOR_M = 1.8
FOLLOW_HEADWAY_S = 1.2
FOLLOW_MIN_GAP_M = 2.0
FOLLOW_BRAKE_MPS2 = 4.0


@dataclass(frozen=True)
class TownConfig:
    """Settings of a synthetic town.

    Attributes:
        blocks: number of blocks along x and y; the grid has (bx + 1) * (by + 1) junctions.
        block_length_m: distance between neighbouring junction centres (metres).
        lanes_per_direction: lanes each way on every road.
        lane_width_m: width of one lane (metres).
        curvature: peak curvature (1/m) of bent roads; 0 keeps every road straight.
        bent_road_fraction: share of roads that are bent (each by up to ``curvature``).
        removed_road_fraction: share of grid roads left out (never disconnecting the town and
            never leaving a junction with fewer than two roads), which makes T-junctions and bends.
        roundabouts: number of junctions (of three or more roads) built as one-lane roundabouts.
        crosswalks: put crosswalks on the approaches of junctions with three or more roads.
        seed: random seed; the same config always gives the same town.
    """

    blocks: tuple[int, int] = (3, 2)
    block_length_m: float = 80.0
    lanes_per_direction: int = 1
    lane_width_m: float = 3.5
    curvature: float = 0.04
    bent_road_fraction: float = 0.4
    removed_road_fraction: float = 0.1
    roundabouts: int = 1
    crosswalks: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.blocks) != 2 or min(self.blocks) < 1:
            raise ConfigError(f"TownConfig.blocks must be two counts >= 1, got {self.blocks}")
        if self.lanes_per_direction < 1 or self.lane_width_m <= 0:
            raise ConfigError("TownConfig needs lanes_per_direction >= 1 and lane_width_m > 0")
        half_size = self.roundabout_half_size_m if self.roundabouts else self.junction_half_size_m
        shortest = 2 * half_size + 20.0
        if self.block_length_m < shortest:
            raise ConfigError(
                f"TownConfig.block_length_m={self.block_length_m} is too short for "
                f"{self.lanes_per_direction} lanes per direction (need at least {shortest:.1f} m)"
            )
        if self.roundabouts < 0:
            raise ConfigError("TownConfig.roundabouts must be >= 0")
        road_half_width = self.lanes_per_direction * self.lane_width_m
        if self.curvature < 0 or self.curvature * 2 * road_half_width >= 1:
            raise ConfigError(
                f"TownConfig.curvature={self.curvature} must be >= 0 and below "
                f"{1 / (2 * road_half_width):.3f} 1/m so that lane boundaries stay smooth"
            )
        for name in ("bent_road_fraction", "removed_road_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"TownConfig.{name} must lie in [0, 1]")

    @property
    def junction_half_size_m(self) -> float:
        """Distance from a junction centre to where its roads begin (metres): room to turn."""
        return self.lanes_per_direction * self.lane_width_m + 5.0

    @property
    def roundabout_radius_m(self) -> float:
        """Radius of a roundabout's ring centerline (metres)."""
        return self.lanes_per_direction * self.lane_width_m + 4.0

    @property
    def roundabout_half_size_m(self) -> float:
        """Distance from a roundabout's centre to where its roads begin (metres)."""
        return self.roundabout_radius_m + 0.5 * self.lane_width_m + 8.0


@dataclass(frozen=True)
class ScenarioConfig:
    """Settings of a synthetic scenario on a town.

    Attributes:
        num_agents: number of tracks.
        num_steps: T, time steps per track (110 = 11 s at 10 Hz, as in AV2).
        dt: seconds between steps.
        cyclist_fraction, pedestrian_fraction: shares of cyclists and of pedestrians (the rest are
            vehicles); pedestrians need crosswalks and become vehicles on a town without any.
        partial_track_fraction: share of agents observed during only part of the scenario.
        lateral_noise_m: standard deviation of the smooth sideways offset from the centerline.
        seed: random seed; the same config and town always give the same scenario.
    """

    num_agents: int = 32
    num_steps: int = 110
    dt: float = 0.1
    cyclist_fraction: float = 0.08
    pedestrian_fraction: float = 0.08
    partial_track_fraction: float = 0.2
    lateral_noise_m: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_agents < 1 or self.num_steps < 2 or self.dt <= 0:
            raise ConfigError("ScenarioConfig needs num_agents >= 1, num_steps >= 2 and dt > 0")
        fractions = (self.cyclist_fraction, self.pedestrian_fraction, self.partial_track_fraction)
        if min(fractions) < 0 or self.cyclist_fraction + self.pedestrian_fraction > 1:
            raise ConfigError("ScenarioConfig fractions must be >= 0, cyclists + pedestrians <= 1")
        if self.partial_track_fraction > 1 or self.lateral_noise_m < 0:
            raise ConfigError(
                "ScenarioConfig needs partial_track_fraction <= 1, lateral_noise_m >= 0"
            )


@dataclass(frozen=True)
class AgentProfile:
    """How one kind of agent moves and how big it is.

    Attributes:
        cruise_speed_mps: range of the per-agent cruise speed (m/s).
        lateral_accel_mps2: largest sideways acceleration in curves (m/s^2).
        accel_mps2, decel_mps2: largest speed-up and braking (m/s^2).
        junction_speed_factor: speed cap inside junctions, as a fraction of the cruise speed.
        lateral_offset_m: mean sideways offset from the centerline, + to the left (metres).
        length_m, width_m: ranges of the box size (metres).
    """

    cruise_speed_mps: tuple[float, float]
    lateral_accel_mps2: float
    accel_mps2: float
    decel_mps2: float
    junction_speed_factor: float
    lateral_offset_m: float
    length_m: tuple[float, float]
    width_m: tuple[float, float]


AGENT_PROFILES: dict[str, AgentProfile] = {
    "vehicle": AgentProfile((8.0, 14.0), 2.5, 2.0, 3.0, 0.7, 0.0, (4.0, 5.2), (1.8, 2.1)),
    "cyclist": AgentProfile((4.0, 6.5), 1.5, 1.0, 2.0, 0.8, -0.9, (1.7, 2.0), (0.6, 0.8)),
    "pedestrian": AgentProfile((1.0, 1.6), 1.0, 0.5, 0.5, 1.0, 0.0, (0.5, 0.8), (0.5, 0.8)),
}


# ----------------------------------------------------------------------------------------------
# Town
# ----------------------------------------------------------------------------------------------


def _axis(q: int) -> FloatArray:
    """Unit vector of compass direction ``q`` (0 E, 1 N, 2 W, 3 S)."""
    return np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])[q % 4]


def _right_normals(tangents: FloatArray) -> FloatArray:
    """(K, 2) unit normals pointing to the right of (K, 2) tangents."""
    unit = tangents / np.linalg.norm(tangents, axis=1, keepdims=True)
    return np.stack([unit[:, 1], -unit[:, 0]], axis=1)


def _grid_roads(
    config: TownConfig, rng: np.random.Generator
) -> tuple[FloatArray, list[tuple[int, int]]]:
    """Junction centres (J, 2) and roads as (start, end) junction indices, start west/south of end.

    Grid roads are removed at random (``removed_road_fraction``) while every junction keeps two
    roads and the town stays connected.
    """
    nx, ny = config.blocks[0] + 1, config.blocks[1] + 1
    centres = np.array(
        [
            [i * config.block_length_m, j * config.block_length_m]
            for j in range(ny)
            for i in range(nx)
        ]
    )
    roads = [(j * nx + i, j * nx + i + 1) for j in range(ny) for i in range(nx - 1)]
    roads += [(j * nx + i, (j + 1) * nx + i) for j in range(ny - 1) for i in range(nx)]
    to_remove = round(config.removed_road_fraction * len(roads))
    for candidate in [roads[i] for i in rng.permutation(len(roads))]:
        if to_remove == 0:
            break
        kept = [r for r in roads if r != candidate]
        if _min_degree(kept, len(centres)) >= 2 and _is_connected(kept, len(centres)):
            roads = kept
            to_remove -= 1
    return centres, sorted(roads)


def _min_degree(roads: list[tuple[int, int]], num_junctions: int) -> int:
    degree = np.zeros(num_junctions, dtype=int)
    for a, b in roads:
        degree[a] += 1
        degree[b] += 1
    return int(degree.min())


def _is_connected(roads: list[tuple[int, int]], num_junctions: int) -> bool:
    neighbours: dict[int, set[int]] = defaultdict(set)
    for a, b in roads:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, stack = {0}, [0]
    while stack:
        for nxt in neighbours[stack.pop()] - seen:
            seen.add(nxt)
            stack.append(nxt)
    return len(seen) == num_junctions


def _road_reference(
    start: FloatArray, end: FloatArray, bulge_m: float
) -> tuple[FloatArray, FloatArray]:
    """Points and tangents (both (K, 2), metres) of a road's dividing line from ``start`` to ``end``.

    The line bows ``bulge_m`` to the left of the chord (negative: right) as ``bulge * sin^2(pi u)``,
    so it leaves and enters its junctions straight along the chord.
    """
    chord = end - start
    length = float(np.linalg.norm(chord))
    left = np.array([-chord[1], chord[0]]) / length
    u = np.linspace(0.0, 1.0, max(int(length), 2) + 1)[:, None]
    points = start + u * chord + bulge_m * np.sin(np.pi * u) ** 2 * left
    tangents = chord + bulge_m * np.pi * np.sin(2 * np.pi * u) * left
    return points, tangents


def _bezier_lane(
    start: FloatArray, start_dir: FloatArray, end: FloatArray, end_dir: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Points and tangents ((K, 2) each) of a junction connector: a cubic from ``start`` heading
    ``start_dir`` to ``end`` heading ``end_dir`` (unit vectors); quarter circles for turns."""
    gap = end - start
    if abs(start_dir[0] * end_dir[1] - start_dir[1] * end_dir[0]) < 1e-9:
        handle_in = handle_out = float(np.linalg.norm(gap)) / 3.0
    else:
        handle_in = QUARTER_CIRCLE_HANDLE * abs(float(gap @ start_dir))
        handle_out = QUARTER_CIRCLE_HANDLE * abs(float(gap @ end_dir))
    ctrl = np.stack([start, start + handle_in * start_dir, end - handle_out * end_dir, end])
    u = np.linspace(0.0, 1.0, 21)[:, None]
    basis = np.hstack([(1 - u) ** 3, 3 * u * (1 - u) ** 2, 3 * u**2 * (1 - u), u**3])
    d_basis = np.hstack(
        [-3 * (1 - u) ** 2, 3 * (1 - u) * (1 - 3 * u), 3 * u * (2 - 3 * u), 3 * u**2]
    )
    return basis @ ctrl, d_basis @ ctrl


def _lane_lines(
    points: FloatArray, tangents: FloatArray, left_offset_m: float, right_offset_m: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Centerline, left and right boundary ((K, 2) each) of a lane whose boundaries lie
    ``left_offset_m`` and ``right_offset_m`` to the right of a reference line (points, tangents
    (K, 2)); the centerline lies midway."""
    normal = _right_normals(tangents)
    left = points + left_offset_m * normal
    right = points + right_offset_m * normal
    return 0.5 * (left + right), left, right


@dataclass(frozen=True)
class _Approach:
    """A road's end at a junction: which arm it is and the lanes leaving / entering there."""

    arm: int
    incoming: tuple[str, ...]
    outgoing: tuple[str, ...]


def _road_lanes(
    config: TownConfig, road_index: int, start: FloatArray, end: FloatArray, bulge_m: float
) -> tuple[list[Lane], list[str], list[str]]:
    """Lanes of one road between two junction edges; also the ids of the forward (start -> end)
    and backward lanes, innermost (next to the double solid line) first."""
    n, w = config.lanes_per_direction, config.lane_width_m
    points, tangents = _road_reference(start, end, bulge_m)
    lanes: list[Lane] = []
    ids: dict[str, list[str]] = {"fwd": [], "bwd": []}
    for direction, pts, tans in (("fwd", points, tangents), ("bwd", points[::-1], -tangents[::-1])):
        ids[direction] = [f"r{road_index}_{direction}_l{k}" for k in range(n)]
        other = "bwd" if direction == "fwd" else "fwd"
        for k in range(n):
            lanes.append(
                Lane(
                    ids[direction][k],
                    *_lane_lines(pts, tans, k * w, (k + 1) * w),
                    left_mark=MarkType.DOUBLE_SOLID if k == 0 else MarkType.DASHED,
                    right_mark=MarkType.CURB if k == n - 1 else MarkType.DASHED,
                    left_neighbor=f"r{road_index}_{other}_l0" if k == 0 else ids[direction][k - 1],
                    right_neighbor=ids[direction][k + 1] if k + 1 < n else None,
                )
            )
    return lanes, ids["fwd"], ids["bwd"]


@dataclass(frozen=True)
class _Junction:
    """A junction being built: where it is, how far its roads stay away, which roads meet there.

    Attributes:
        index: junction number, used in lane ids.
        centre: (2,) city-frame position (metres).
        half_size_m: distance from the centre to where the roads begin (metres).
        approaches: one per road meeting here.
    """

    index: int
    centre: FloatArray
    half_size_m: float
    approaches: tuple[_Approach, ...]

    def mouth(self, arm: int, lateral_m: float) -> FloatArray:
        """(2,) point where road ``arm`` begins, ``lateral_m`` to the right of the way out."""
        return self.centre + self.half_size_m * _axis(arm) + lateral_m * _axis(arm - 1)

    def outline(self, road_half_width_m: float) -> BaseGeometry:
        """Convex hull of the road mouths: the paved square with its corners cut."""
        mouths = [
            self.mouth(a.arm, side * road_half_width_m)
            for a in self.approaches
            for side in (-1.0, 1.0)
        ]
        return shapely.convex_hull(shapely.multipoints(np.array(mouths)))


# Links between lanes as (before, after) lane ids.
Links = list[tuple[str, str]]


def _junction_lane(
    lane_id: str,
    points: FloatArray,
    tangents: FloatArray,
    w: float,
    left_mark: MarkType = MarkType.NONE,
) -> Lane:
    """A lane ``w`` metres wide inside a junction, centred on (K, 2) ``points``; its right
    boundary is unpainted."""
    return Lane(
        lane_id,
        *_lane_lines(points, tangents, -0.5 * w, 0.5 * w),
        left_mark=left_mark,
        right_mark=MarkType.NONE,
        is_intersection=True,
    )


def _turn_lane_pairs(turn: int, n: int) -> list[tuple[int, int]]:
    """(incoming, outgoing) lane indices joined for a turn (0 straight, 1 left, 3 right)."""
    if turn == 0:
        return [(k, k) for k in range(n)]
    return [(0, 0)] if turn == 1 else [(n - 1, n - 1)]


def _crossing(config: TownConfig, junction: _Junction) -> tuple[list[Lane], Links, BaseGeometry]:
    """Connector lanes, their links and the paved area of an ordinary junction.

    Left turns leave from the innermost lane, right turns from the outermost, straight lanes keep
    their index; a lane that would get no connector (e.g. at a bend) is joined to the same-index
    lane of every other road of the junction.
    """
    n, w = config.lanes_per_direction, config.lane_width_m
    pairs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for a in junction.approaches:
        for b in junction.approaches:
            if a.arm != b.arm:
                pairs[a.arm, b.arm] = _turn_lane_pairs((b.arm - a.arm - 2) % 4, n)
    for arm in (a.arm for a in junction.approaches):
        for role in (0, 1):  # 0: lanes entering from this arm, 1: lanes leaving on it
            arm_pairs = [lp for arms, lp in pairs.items() if arms[role] == arm]
            for k in range(n):
                if not any(p[role] == k for lane_pairs in arm_pairs for p in lane_pairs):
                    for lane_pairs in arm_pairs:
                        lane_pairs.append((k, k))
    by_arm = {a.arm: a for a in junction.approaches}
    lanes: list[Lane] = []
    links: Links = []
    for (arm_in, arm_out), lane_pairs in sorted(pairs.items()):
        for k_in, k_out in sorted(set(lane_pairs)):
            points, tangents = _bezier_lane(
                junction.mouth(arm_in, -(k_in + 0.5) * w),
                -_axis(arm_in),
                junction.mouth(arm_out, (k_out + 0.5) * w),
                _axis(arm_out),
            )
            lane_id = f"j{junction.index}_{ARM_NAMES[arm_in]}{ARM_NAMES[arm_out]}_l{k_in}{k_out}"
            lanes.append(_junction_lane(lane_id, points, tangents, w))
            links += [(by_arm[arm_in].incoming[k_in], lane_id)]
            links += [(lane_id, by_arm[arm_out].outgoing[k_out])]
    return lanes, links, junction.outline(n * w)


def _roundabout(config: TownConfig, junction: _Junction) -> tuple[list[Lane], Links, BaseGeometry]:
    """Lanes, links and paved ring of a one-lane roundabout (counter-clockwise, right-hand
    traffic) of centerline radius ``config.roundabout_radius_m``.

    Each road's lanes merge onto the ring ROUNDABOUT_ATTACH_RAD before the road's axis and leave
    it as far after; ring segments run between these points, and each segment ending at an exit
    continues both round the ring and out.
    """
    n, w, radius = config.lanes_per_direction, config.lane_width_m, config.roundabout_radius_m
    attachments = sorted(
        ((a.arm * np.pi / 2 + side * ROUNDABOUT_ATTACH_RAD) % (2 * np.pi), side, a)
        for a in junction.approaches
        for side in (-1.0, 1.0)
    )
    ring_ids = [f"j{junction.index}_ring{i}" for i in range(len(attachments))]
    lanes: list[Lane] = []
    links: Links = []
    for i, (angle, side, approach) in enumerate(attachments):
        next_angle = attachments[(i + 1) % len(attachments)][0]
        sweep = (next_angle - angle) % (2 * np.pi) or 2 * np.pi
        theta = angle + np.linspace(0.0, sweep, max(int(sweep * radius), 4))[:, None]
        on_ring = np.hstack([np.cos(theta), np.sin(theta)])
        tangents = np.hstack([-np.sin(theta), np.cos(theta)])
        ring_points = junction.centre + radius * on_ring
        lanes.append(_junction_lane(ring_ids[i], ring_points, tangents, w, MarkType.CURB))
        links.append((ring_ids[i], ring_ids[(i + 1) % len(ring_ids)]))
        point, heading = ring_points[0], tangents[0]
        for k in range(n):
            if side > 0:  # enter: from incoming lane k onto the ring
                start = junction.mouth(approach.arm, -(k + 0.5) * w)
                points, bezier_tangents = _bezier_lane(start, -_axis(approach.arm), point, heading)
                lane_id = f"j{junction.index}_{ARM_NAMES[approach.arm]}in_l{k}"
                links += [(approach.incoming[k], lane_id), (lane_id, ring_ids[i])]
            else:  # exit: from the ring onto outgoing lane k
                end = junction.mouth(approach.arm, (k + 0.5) * w)
                points, bezier_tangents = _bezier_lane(point, heading, end, _axis(approach.arm))
                lane_id = f"j{junction.index}_{ARM_NAMES[approach.arm]}out_l{k}"
                links += [(ring_ids[i - 1], lane_id), (lane_id, approach.outgoing[k])]
            lanes.append(_junction_lane(lane_id, points, bezier_tangents, w))
    centre = Point(junction.centre)
    ring = centre.buffer(radius + 0.5 * w).difference(centre.buffer(radius - 0.5 * w))
    return lanes, links, ring


def _crosswalk(config: TownConfig, junction: _Junction, arm: int) -> Polygon:
    """A 3 m wide crossing over the whole road, 1 m out from the junction edge on arm ``arm``."""
    along, across = _axis(arm), _axis(arm + 1)
    half_width = config.lanes_per_direction * config.lane_width_m
    near, far = junction.half_size_m + 1.0, junction.half_size_m + 4.0
    corners = [
        junction.centre + near * along - half_width * across,
        junction.centre + far * along - half_width * across,
        junction.centre + far * along + half_width * across,
        junction.centre + near * along + half_width * across,
    ]
    return Polygon(corners)


def _arm_of(centre: FloatArray, other: FloatArray) -> int:
    """Compass index of the axis direction from ``centre`` towards ``other``."""
    d = other - centre
    return int(np.argmax([d[0], d[1], -d[0], -d[1]]))


def _pick_roundabouts(
    config: TownConfig, roads: list[tuple[int, int]], rng: np.random.Generator
) -> set[int]:
    """Up to ``config.roundabouts`` junctions with three or more roads, chosen at random."""
    degree: dict[int, int] = defaultdict(int)
    for a, b in roads:
        degree[a] += 1
        degree[b] += 1
    candidates = sorted(j for j, d in degree.items() if d >= 3)
    count = min(config.roundabouts, len(candidates))
    return {int(j) for j in rng.choice(candidates, size=count, replace=False)} if count else set()


def make_town(config: TownConfig | None = None) -> VectorMap:
    """A seeded synthetic town (see the module docstring); deterministic per ``config``.

    Returns a VectorMap in a metric city frame with junction 0 at the origin; lanes carry
    centerlines, boundaries, mark types, neighbours and successors/predecessors; the drivable
    area is the union of lanes and of each junction's outline (less roundabout islands).
    """
    config = config or TownConfig()
    rng = np.random.default_rng(config.seed)
    centres, roads = _grid_roads(config, rng)
    roundabouts = _pick_roundabouts(config, roads, rng)
    half_size = [
        config.roundabout_half_size_m if j in roundabouts else config.junction_half_size_m
        for j in range(len(centres))
    ]
    lanes: list[Lane] = []
    approaches: dict[int, list[_Approach]] = defaultdict(list)
    for index, (a, b) in enumerate(roads):
        arm_a, arm_b = _arm_of(centres[a], centres[b]), _arm_of(centres[b], centres[a])
        start = centres[a] + half_size[a] * _axis(arm_a)
        end = centres[b] + half_size[b] * _axis(arm_b)
        bulge = 0.0
        if rng.random() < config.bent_road_fraction:
            # Peak curvature of bulge * sin^2(pi u) over a chord of length L is 2 pi^2 bulge / L^2.
            length = float(np.linalg.norm(end - start))
            peak = config.curvature * rng.uniform(0.5, 1.0)
            bulge = rng.choice([-1.0, 1.0]) * peak * length**2 / (2 * np.pi**2)
        road, fwd, bwd = _road_lanes(config, index, start, end, bulge)
        lanes += road
        approaches[a].append(_Approach(arm_a, incoming=tuple(bwd), outgoing=tuple(fwd)))
        approaches[b].append(_Approach(arm_b, incoming=tuple(fwd), outgoing=tuple(bwd)))
    links: Links = []
    junction_areas: list[BaseGeometry] = []
    crosswalks: list[Polygon] = []
    for index in sorted(approaches):
        junction = _Junction(index, centres[index], half_size[index], tuple(approaches[index]))
        build = _roundabout if index in roundabouts else _crossing
        junction_lanes, junction_links, area = build(config, junction)
        lanes += junction_lanes
        links += junction_links
        junction_areas.append(area)
        if config.crosswalks and len(junction.approaches) >= 3:
            crosswalks += [_crosswalk(config, junction, a.arm) for a in junction.approaches]
    lanes = _link_lanes(lanes, links)
    drivable = shapely.union_all([lane.polygon for lane in lanes] + junction_areas)
    return VectorMap(
        lanes=lanes,
        crosswalks=crosswalks,
        drivable_area=drivable,
        source=f"synthetic town (seed {config.seed})",
    )


def _link_lanes(lanes: list[Lane], links: Links) -> list[Lane]:
    """Lanes with successors/predecessors filled in from (before, after) links."""
    successors: dict[str, list[str]] = defaultdict(list)
    predecessors: dict[str, list[str]] = defaultdict(list)
    for before, after in links:
        successors[before].append(after)
        predecessors[after].append(before)
    return [
        dataclasses.replace(
            lane,
            successors=tuple(successors[lane.id]),
            predecessors=tuple(predecessors[lane.id]),
        )
        for lane in lanes
    ]


# ----------------------------------------------------------------------------------------------
# Agents
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Path:
    """A polyline resampled every PATH_STEP_M metres.

    Attributes:
        xy: (M, 2) city-frame points (metres).
        s: (M,) arc length from the first point (metres).
        heading: (M,) unwrapped direction of travel (rad).
        in_junction: (M,) bool, the point lies on an intersection lane.
    """

    xy: FloatArray
    s: FloatArray
    heading: FloatArray
    in_junction: np.ndarray

    @property
    def turn_curvature(self) -> FloatArray:
        """(M,) largest |curvature| (1/m) within 2.5 m of each point: the peak a driver slows for,
        and robust to the kinks where lanes join."""
        raw = np.abs(np.gradient(self.heading, self.s)) if len(self.s) > 1 else np.zeros(1)
        return sliding_window_view(np.pad(raw, 5, mode="edge"), 11).max(axis=1)

    def offset(self, lateral_m: FloatArray) -> _Path:
        """The path shifted sideways by ``lateral_m`` (M,, metres, + left), resampled by its own
        arc length (on a curve the inner side is shorter)."""
        left_normals = np.stack([-np.sin(self.heading), np.cos(self.heading)], axis=1)
        return _resample_path(self.xy + lateral_m[:, None] * left_normals, self.in_junction)

    def tail(self, start_m: float) -> _Path:
        """The part of the path from arc length ``start_m`` on, with s starting again at 0."""
        first = min(int(start_m / PATH_STEP_M), len(self.s) - 1)
        return _Path(
            self.xy[first:],
            self.s[first:] - self.s[first],
            self.heading[first:],
            self.in_junction[first:],
        )


def _resample_path(xy: FloatArray, in_junction: np.ndarray) -> _Path:
    """A _Path through the (K, 2) points ``xy``; ``in_junction`` (K,) bool marks junction points."""
    keep = np.concatenate([[True], np.linalg.norm(np.diff(xy, axis=0), axis=1) > 1e-9])
    xy, in_junction = xy[keep], in_junction[keep]
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    s = np.arange(0.0, cum[-1] + 1e-9, PATH_STEP_M)
    dense = np.stack([np.interp(s, cum, xy[:, 0]), np.interp(s, cum, xy[:, 1])], axis=1)
    step = np.gradient(dense, axis=0) if len(s) > 1 else np.diff(xy[:2], axis=0)
    heading = np.unwrap(np.arctan2(step[:, 1], step[:, 0]))
    return _Path(dense, s, heading, np.interp(s, cum, in_junction.astype(float)) > 0.5)


def _drive_route(
    lanes_by_id: dict[str, Lane],
    start: Lane,
    start_offset_m: float,
    length_m: float,
    rng: np.random.Generator,
) -> _Path:
    """The centerline path from ``start_offset_m`` along ``start`` on through random successors,
    about ``length_m`` long (shorter where no successor is in the map)."""
    lane = start
    points = [lane.centerline]
    flags = [np.full(len(lane.centerline), lane.is_intersection)]
    covered = lane.length_m - start_offset_m
    while covered < length_m:
        options = [lane_id for lane_id in lane.successors if lane_id in lanes_by_id]
        if not options:
            break
        lane = lanes_by_id[options[rng.integers(len(options))]]
        points.append(lane.centerline[1:])
        flags.append(np.full(len(lane.centerline) - 1, lane.is_intersection))
        covered += lane.length_m
    return _resample_path(np.concatenate(points), np.concatenate(flags)).tail(start_offset_m)


def _speed_profile(path: _Path, cruise_mps: float, profile: AgentProfile) -> FloatArray:
    """(M,) speed (m/s) along ``path``: cruise, capped by curvature and in junctions, with
    acceleration and braking limits, coming to rest at the end of the path (reached only where a
    route runs into a lane without successors: routes are planned longer than agents drive)."""
    limit = np.full(len(path.s), cruise_mps)
    limit = np.minimum(
        limit, np.sqrt(profile.lateral_accel_mps2 / np.maximum(path.turn_curvature, 1e-6))
    )
    limit[path.in_junction] = np.minimum(
        limit[path.in_junction], profile.junction_speed_factor * cruise_mps
    )
    limit[-1] = 0.0
    # In v^2 the limits are linear in s: v_i^2 <= v_j^2 + 2 a |s_i - s_j|; running minima apply
    # them over every j at once.
    v2 = limit**2
    reach_up = 2 * profile.accel_mps2 * path.s
    v2 = np.minimum(v2, np.minimum.accumulate(v2 - reach_up) + reach_up)
    reach_down = 2 * profile.decel_mps2 * (path.s[-1] - path.s)
    v2 = np.minimum(v2, np.minimum.accumulate((v2 - reach_down)[::-1])[::-1] + reach_down)
    return np.sqrt(np.maximum(v2, 0.0))


def _smooth_noise(
    rng: np.random.Generator, x: FloatArray, scale: float, periods: tuple[float, float]
) -> FloatArray:
    """Smooth zero-mean noise of standard deviation about ``scale`` over ``x``: three sinusoids
    with random periods in ``periods`` (same unit as ``x``) and random phases."""
    period = rng.uniform(*periods, size=3)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    waves = np.sin(2 * np.pi * x[:, None] / period + phase)
    return scale * np.sqrt(2.0 / 3.0) * waves.sum(axis=1)


@dataclass(frozen=True)
class _Plan:
    """What one agent means to do before it meets the others.

    Attributes:
        kind: "vehicle", "cyclist" or "pedestrian".
        path: where it goes.
        speed: (M,) the speed it wants along ``path`` (m/s).
        accel_mps2: how fast it speeds up.
        start_delay_s: how long it stands still first; 0 means it starts at ``speed[0]``.
        length_m, width_m: box size (metres).
    """

    kind: str
    path: _Path
    speed: FloatArray
    accel_mps2: float
    start_delay_s: float
    length_m: float
    width_m: float


def _gaps_ahead(
    xy: FloatArray, heading: FloatArray, road: np.ndarray, half_length: FloatArray
) -> FloatArray:
    """(N,) free distance (metres, box to box) from each road user to the nearest agent in its
    corridor ahead: a road user going roughly its way or a pedestrian; inf where there is none.

    Args: xy (N, 2) and heading (N,) now, city frame; road (N,) bool, the agent is a road user
    (else a pedestrian); half_length (N,) metres. When two agents each see the other ahead, only
    the later one yields.
    """
    forward = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    offset = xy[None, :, :] - xy[:, None, :]  # [i, j]: from agent i to agent j
    ahead = np.einsum("ijk,ik->ij", offset, forward)
    side = offset[..., 1] * forward[:, None, 0] - offset[..., 0] * forward[:, None, 1]
    same_way = np.cos(heading[None, :] - heading[:, None]) > 0.5
    in_corridor = (ahead > 0) & (np.abs(side) < FOLLOW_CORRIDOR_M) & ~np.eye(len(xy), dtype=bool)
    leads = in_corridor & road[:, None] & ((road[None, :] & same_way) | ~road[None, :])
    leads &= ~(leads & leads.T & np.tri(len(xy), k=-1, dtype=bool).T)
    gap = ahead - half_length[:, None] - half_length[None, :]
    return np.where(leads, gap, np.inf).min(axis=1, initial=np.inf)


def _padded(rows: list[FloatArray], width: int) -> FloatArray:
    """(N, width, ...) stack of arrays (M_i, ...), each padded with its last row."""
    return np.stack([np.concatenate([r, np.repeat(r[-1:], width - len(r), axis=0)]) for r in rows])


def _drive(
    plans: list[_Plan], config: ScenarioConfig
) -> list[tuple[FloatArray, FloatArray, FloatArray]]:
    """Move every agent along its plan, all in the same time steps: each goes at the speed it
    wants, no faster than its acceleration allows and, for road users, no faster than keeps
    FOLLOW_HEADWAY_S behind the agent ahead (braking at most FOLLOW_BRAKE_MPS2).
    Returns per agent xy (T, 2), heading (T,) and velocity (T, 2), city frame."""
    num, steps, dt = len(plans), config.num_steps, config.dt
    # Paths are sampled every PATH_STEP_M from s = 0, so sample k sits at s = k * PATH_STEP_M.
    width = max(max(len(p.path.s) for p in plans), 2)
    path_xy = _padded([p.path.xy for p in plans], width)
    path_heading = _padded([p.path.heading for p in plans], width)
    path_speed = _padded([p.speed for p in plans], width)
    path_end = np.array([p.path.s[-1] for p in plans])
    delay = np.array([p.start_delay_s for p in plans])
    accel = np.array([p.accel_mps2 for p in plans])
    road = np.array([p.kind != "pedestrian" for p in plans])
    half_length = np.array([p.length_m / 2 for p in plans])
    rows = np.arange(num)
    s = np.zeros(num)
    v = np.zeros(num)
    xy = np.zeros((steps, num, 2))
    heading = np.zeros((steps, num))
    speed = np.zeros((steps, num))
    for t in range(steps):
        k = np.minimum((s / PATH_STEP_M).astype(int), width - 2)
        frac = s / PATH_STEP_M - k
        xy[t] = path_xy[rows, k] + frac[:, None] * (path_xy[rows, k + 1] - path_xy[rows, k])
        heading[t] = path_heading[rows, k] + frac * (
            path_heading[rows, k + 1] - path_heading[rows, k]
        )
        wanted = path_speed[rows, k] + frac * (path_speed[rows, k + 1] - path_speed[rows, k])
        wanted[t * dt < delay] = 0.0
        gap = _gaps_ahead(xy[t], heading[t], road, half_length)
        target = np.minimum(wanted, np.maximum(gap - FOLLOW_MIN_GAP_M, 0.0) / FOLLOW_HEADWAY_S)
        if t == 0:
            v = np.where(delay == 0, target, 0.0)
        else:
            v = np.clip(target, np.maximum(v - FOLLOW_BRAKE_MPS2 * dt, 0.0), v + accel * dt)
        speed[t] = v
        s = np.minimum(s + v * dt, path_end)
    velocity = speed[..., None] * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
    return [(xy[:, i], heading[:, i], velocity[:, i]) for i in range(num)]


def _road_agent(
    lanes_by_id: dict[str, Lane],
    kind: str,
    start: Lane,
    start_offset_m: float,
    config: ScenarioConfig,
    rng: np.random.Generator,
) -> _Plan:
    """Plan of a vehicle or cyclist starting on ``start``: a random route, its wanted speed."""
    profile = AGENT_PROFILES[kind]
    cruise = rng.uniform(*profile.cruise_speed_mps)
    top_speed = 1.15 * cruise
    horizon_m = top_speed * config.num_steps * config.dt + top_speed**2 / profile.decel_mps2 + 10.0
    centerline = _drive_route(lanes_by_id, start, start_offset_m, horizon_m, rng)
    lateral = profile.lateral_offset_m + _smooth_noise(
        rng, centerline.s, config.lateral_noise_m, (40.0, 100.0)
    )
    path = centerline.offset(lateral)
    speed = _speed_profile(path, cruise, profile)
    speed = speed * (1.0 + _smooth_noise(rng, path.s, 0.04, (40.0, 120.0)))
    return _Plan(kind, path, speed, profile.accel_mps2, 0.0, *_box_size(kind, rng))


def _box_size(kind: str, rng: np.random.Generator) -> tuple[float, float]:
    """(length, width) in metres of an agent of this kind, drawn from its profile's ranges."""
    profile = AGENT_PROFILES[kind]
    return float(rng.uniform(*profile.length_m)), float(rng.uniform(*profile.width_m))


def _pedestrian(
    town: VectorMap, crosswalk: Polygon, config: ScenarioConfig, rng: np.random.Generator
) -> _Plan:
    """Plan of a pedestrian who waits at a curb, crosses ``crosswalk`` along its long axis and
    turns onto the sidewalk, away from the drivable area."""
    rect = np.asarray(crosswalk.minimum_rotated_rectangle.exterior.coords)[:4]
    edges = np.diff(np.vstack([rect, rect[:1]]), axis=0)
    lengths = np.linalg.norm(edges, axis=1)
    long_edge = int(np.argmax(lengths))
    across = edges[long_edge] / lengths[long_edge] * rng.choice([-1.0, 1.0])
    along = np.array([-across[1], across[0]])
    centre = rect.mean(axis=0)
    reach = lengths[long_edge] / 2 + 1.5
    start, end = centre - reach * across, centre + reach * across
    # Walk on along the sidewalk in the direction that stays off the road.
    onward = next(
        (d for d in (along, -along) if not town.area.contains(Point(end + 6.0 * d))), along
    )
    corner_m = 2.0
    turn, _ = _bezier_lane(end - corner_m * across, across, end + corner_m * onward, onward)
    route = np.vstack([start, turn, end + 30.0 * onward])
    path = _resample_path(route, np.zeros(len(route), dtype=bool))
    profile = AGENT_PROFILES["pedestrian"]
    speed = np.full(len(path.s), rng.uniform(*profile.cruise_speed_mps))
    delay = rng.uniform(config.dt, 0.4 * config.num_steps * config.dt)
    return _Plan(
        "pedestrian", path, speed, profile.accel_mps2, delay, *_box_size("pedestrian", rng)
    )


def _agent_kinds(
    config: ScenarioConfig, rng: np.random.Generator, has_crosswalks: bool
) -> list[str]:
    """Kind of each agent: vehicles, cyclists and (where there are crosswalks) pedestrians."""
    weights = np.array(
        [
            1.0 - config.cyclist_fraction - config.pedestrian_fraction,
            config.cyclist_fraction,
            config.pedestrian_fraction if has_crosswalks else 0.0,
        ]
    )
    kinds = rng.choice(
        ["vehicle", "cyclist", "pedestrian"], size=config.num_agents, p=weights / weights.sum()
    )
    kinds[0] = "vehicle"  # the focal agent
    return [str(k) for k in kinds]


def _start_lanes(town: VectorMap, kind: str) -> tuple[list[Lane], FloatArray]:
    """Lanes where road agents of ``kind`` may start and the probability of each, proportional to
    its length: vehicle lanes outside junctions (for cyclists the rightmost ones), else any lane."""
    lanes = [ln for ln in town.lanes if not ln.is_intersection and ln.lane_type == LaneType.VEHICLE]
    if kind == "cyclist":
        lanes = [ln for ln in lanes if ln.right_neighbor is None] or lanes
    lanes = lanes or list(town.lanes)
    if not lanes:
        raise ConfigError(f"{town.source or 'map'}: has no lanes to place agents on")
    lengths = np.array([ln.length_m for ln in lanes])
    return lanes, lengths / lengths.sum()


def _valid_window(config: ScenarioConfig, rng: np.random.Generator) -> np.ndarray:
    """(T,) bool: all True, or for a ``partial_track_fraction`` share a window of at least a
    quarter of the steps, entering late or leaving early."""
    valid = np.ones(config.num_steps, dtype=bool)
    if rng.random() < config.partial_track_fraction:
        span = rng.integers(max(config.num_steps // 4, 2), config.num_steps + 1)
        first = rng.integers(0, config.num_steps - span + 1)
        valid[:] = False
        valid[first : first + span] = True
    return valid


def make_scenario(config: ScenarioConfig | None = None, town: VectorMap | None = None) -> Scenario:
    """A seeded synthetic scenario: ``config.num_agents`` tracks over ``config.num_steps`` steps.

    Args:
        config: scenario settings (defaults: 32 agents, 110 steps at 10 Hz).
        town: the map to drive on; by default ``make_town(TownConfig(seed=config.seed))``. Any
            VectorMap with successors works; routes that reach a lane without successors stop there.
    Returns: a Scenario whose track 0 (a vehicle observed throughout) is the focal track; rows
        where a track is not valid are NaN.
    """
    config = config or ScenarioConfig()
    town = town if town is not None else make_town(TownConfig(seed=config.seed))
    rng = np.random.default_rng([config.seed, 1])
    start_lanes = {kind: _start_lanes(town, kind) for kind in ("vehicle", "cyclist")}
    lanes_by_id = {lane.id: lane for lane in town.lanes}
    kinds = _agent_kinds(config, rng, bool(town.crosswalks))
    starts: list[tuple[str, float]] = []
    plans: list[_Plan] = []
    for kind in kinds:
        if kind == "pedestrian":
            crosswalk = town.crosswalks[rng.integers(len(town.crosswalks))]
            plans.append(_pedestrian(town, crosswalk, config, rng))
        else:
            lane, offset = _free_start(*start_lanes[kind], starts, rng)
            starts.append((lane.id, offset))
            plans.append(_road_agent(lanes_by_id, kind, lane, offset, config, rng))
    tracks: list[Track] = []
    for index, (plan, (xy, heading, velocity)) in enumerate(
        zip(plans, _drive(plans, config), strict=True)
    ):
        valid = np.ones(config.num_steps, dtype=bool) if index == 0 else _valid_window(config, rng)
        xy[~valid], velocity[~valid] = np.nan, np.nan
        tracks.append(
            Track(
                id=str(index),
                kind=plan.kind,
                xy=xy,
                heading=np.where(valid, wrap_angle(heading), np.nan),
                valid=valid,
                length=plan.length_m,
                width=plan.width_m,
                velocity=velocity,
            )
        )
    return Scenario(
        map=town,
        dt=config.dt,
        tracks=tracks,
        focal_track_id="0",
        source=f"synthetic scenario (seed {config.seed}) on {town.source or 'a map'}",
    )


def _free_start(
    lanes: list[Lane],
    weights: FloatArray,
    taken: list[tuple[str, float]],
    rng: np.random.Generator,
    gap_m: float = 12.0,
    tries: int = 20,
) -> tuple[Lane, float]:
    """A start lane and offset along it (metres) at least ``gap_m`` from the starts ``taken`` on
    the same lane; after ``tries`` draws the last one is kept even if crowded."""
    for _ in range(tries):
        lane = lanes[rng.choice(len(lanes), p=weights)]
        offset = float(rng.uniform(0.0, lane.length_m))
        if all(lid != lane.id or abs(off - offset) >= gap_m for lid, off in taken):
            break
    return lane, offset


def make_scenarios(
    n: int,
    seed: int = 0,
    scenario_config: ScenarioConfig | None = None,
    town_config: TownConfig | None = None,
    num_towns: int | None = None,
) -> list[Scenario]:
    """``n`` scenarios for a data set, on ``num_towns`` different towns (default: one per
    scenario), all derived from ``seed``.

    Town ``i`` uses ``town_config`` with its own seed; without ``town_config`` the towns also vary
    in grid size (2-3 blocks each way) and lanes per direction (1-2). Scenario settings other than
    the seed come from ``scenario_config``.
    """
    if n < 1:
        raise ConfigError(f"make_scenarios needs n >= 1, got {n}")
    num_towns = min(num_towns or n, n)
    if num_towns < 1:
        raise ConfigError(f"make_scenarios needs num_towns >= 1, got {num_towns}")
    seeds = np.random.SeedSequence(seed).generate_state(num_towns + n + 1)
    rng = np.random.default_rng(seeds[-1])
    towns = []
    for i in range(num_towns):
        if town_config is None:
            blocks = (int(rng.integers(2, 4)), int(rng.integers(2, 4)))
            config = TownConfig(blocks=blocks, lanes_per_direction=int(rng.integers(1, 3)))
        else:
            config = town_config
        towns.append(make_town(dataclasses.replace(config, seed=int(seeds[i]))))
    base = scenario_config or ScenarioConfig()
    return [
        make_scenario(
            dataclasses.replace(base, seed=int(seeds[num_towns + i])), towns[i % num_towns]
        )
        for i in range(n)
    ]


def write_scenarios(
    folder: str | PathLike[str],
    n: int,
    seed: int = 0,
    scenario_config: ScenarioConfig | None = None,
    town_config: TownConfig | None = None,
    num_towns: int | None = None,
) -> list[Path]:
    """Write ``make_scenarios(n, seed, ...)`` in the generic format, one folder per scenario
    (``folder/scene_000``, ...; each with ``map.geojson`` + ``tracks.csv``) that
    ``load_scenario`` reads back. Returns the scene folders."""
    from mapenc.maps.geojson import write_generic_scene

    scenarios = make_scenarios(n, seed, scenario_config, town_config, num_towns)
    width = max(3, len(str(n - 1)))
    return [
        write_generic_scene(scenario, Path(folder) / f"scene_{index:0{width}d}")
        for index, scenario in enumerate(scenarios)
    ]
