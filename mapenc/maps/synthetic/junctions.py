"""Lane geometry of the synthetic towns: road lanes, crossing and roundabout junctions, crosswalks.

Everything is in the town's metric city frame (metres, float64)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from mapenc.maps.synthetic.config import TownConfig
from mapenc.maps.types import FloatArray, Lane, MarkType

# Compass names of the four axis directions a road can leave a junction in (index q: angle q*90°).
ARM_NAMES = ("E", "N", "W", "S")

# Cubic Bezier handle length, as a fraction of the radius, that best approximates a quarter circle.
QUARTER_CIRCLE_HANDLE = 0.5523

# Angle (rad) before / after a road's axis at which its lanes join / leave a roundabout's ring.
ROUNDABOUT_ATTACH_RAD = np.deg2rad(40.0)


def _axis(q: int) -> FloatArray:
    """Unit vector of compass direction ``q`` (0 E, 1 N, 2 W, 3 S)."""
    return np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])[q % 4]


def _right_normals(tangents: FloatArray) -> FloatArray:
    """(K, 2) unit normals pointing to the right of (K, 2) tangents."""
    unit = tangents / np.linalg.norm(tangents, axis=1, keepdims=True)
    return np.stack([unit[:, 1], -unit[:, 0]], axis=1)


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
