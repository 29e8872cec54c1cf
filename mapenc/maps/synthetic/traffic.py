"""Seeded synthetic traffic on a lane graph (a synthetic town or any map with successors).

Agents follow the lane graph: at every lane end they pick a successor at random, so that the map
decides where they go and futures are multimodal. Their speed follows a per-agent cruise speed,
slowed for curvature and junctions and limited in acceleration; positions carry a small smooth
lateral offset. All agents move in the same time steps, and road users keep a time gap behind
whoever is ahead of them going their way, and stop for pedestrians in their path (there is no
yielding to crossing traffic inside junctions). Pedestrians wait at a curb, walk over a
crosswalk and on along the sidewalk.

Everything is in the map's city frame (metres, float64) and deterministic per seed.
"""

from __future__ import annotations

import dataclasses
from os import PathLike
from pathlib import Path

import numpy as np
from shapely.geometry import Point, Polygon

from mapenc.errors import ConfigError
from mapenc.geometry import wrap_angle
from mapenc.maps.synthetic.config import AGENT_PROFILES, ScenarioConfig, TownConfig
from mapenc.maps.synthetic.driving import (
    _drive,
    _drive_route,
    _Plan,
    _resample_path,
    _smooth_noise,
    _speed_profile,
)
from mapenc.maps.synthetic.junctions import _bezier_lane
from mapenc.maps.synthetic.town import make_town
from mapenc.maps.types import FloatArray, Lane, LaneType, Scenario, Track, VectorMap

# A generated scenario's ``source`` names its seeds, not a file.
GENERATED_SOURCE_PREFIX = "synthetic scenario "


def is_generated(scenario: Scenario) -> bool:
    """True for a scenario made by ``make_scenario`` (or one with no source at all)."""
    return not scenario.source or scenario.source.startswith(GENERATED_SOURCE_PREFIX)


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
        source=f"{GENERATED_SOURCE_PREFIX}(seed {config.seed}) on {town.source or 'a map'}",
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
