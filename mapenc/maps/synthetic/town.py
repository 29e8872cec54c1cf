"""Seeded synthetic towns: the lane graph of a grid of junctions, crossings and roundabouts.

A town is a grid of junctions joined by two-way roads (right-hand traffic), some of them bent,
with a few grid roads left out so that T-junctions and bends appear inside the town as well as on
its border. Every road carries ``lanes_per_direction`` lanes each way; inside each junction,
connector lanes (``is_intersection=True``) turn left, right or go straight as smooth cubic
curves, or, at roundabouts, merge onto and leave a one-lane counter-clockwise ring; so every lane
has successors and agents can drive forever. Crosswalks lie across the approaches of junctions
with three or more roads.

Everything is in one metric city frame (metres, float64) with the town's first junction at the
origin, and is deterministic per seed.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from mapenc.maps.synthetic.config import TownConfig
from mapenc.maps.synthetic.junctions import (
    Links,
    _Approach,
    _axis,
    _crossing,
    _crosswalk,
    _Junction,
    _road_lanes,
    _roundabout,
)
from mapenc.maps.types import FloatArray, Lane, VectorMap


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
