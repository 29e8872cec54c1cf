"""Synthetic towns and scenarios: determinism, lane geometry and graph, agents that drive sanely."""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from mapenc.errors import ConfigError
from mapenc.maps import MarkType, Scenario, VectorMap, load_map, load_scenario
from mapenc.maps.synthetic import (
    ScenarioConfig,
    TownConfig,
    make_scenario,
    make_scenarios,
    make_town,
    write_scenarios,
)
from mapenc.maps.synthetic.driving import _drive, _Path, _Plan

ROAD_KINDS = ("vehicle", "cyclist")


@pytest.fixture(scope="module", params=[1, 2], ids=["1lane", "2lanes"])
def town(request: pytest.FixtureRequest) -> VectorMap:
    return make_town(TownConfig(lanes_per_direction=request.param, seed=7, curvature=0.05))


@pytest.fixture(scope="module")
def scenario(town: VectorMap) -> Scenario:
    return make_scenario(ScenarioConfig(num_agents=100, num_steps=110, seed=3), town)


def central_differences(xy: np.ndarray, dt: float) -> np.ndarray:
    """(T-2, 2) velocity estimates at steps 1..T-2 from (T, 2) positions."""
    return (xy[2:] - xy[:-2]) / (2 * dt)


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)


def test_same_seed_same_town_and_scenario() -> None:
    first, second = make_town(TownConfig(seed=11)), make_town(TownConfig(seed=11))
    assert [ln.id for ln in first.lanes] == [ln.id for ln in second.lanes]
    for a, b in zip(first.lanes, second.lanes, strict=True):
        np.testing.assert_array_equal(a.centerline, b.centerline)
        assert a.successors == b.successors
    sc_a = make_scenario(ScenarioConfig(num_agents=20, seed=5), first)
    sc_b = make_scenario(ScenarioConfig(num_agents=20, seed=5), second)
    for ta, tb in zip(sc_a.tracks, sc_b.tracks, strict=True):
        assert ta.kind == tb.kind
        np.testing.assert_array_equal(ta.xy, tb.xy)
        np.testing.assert_array_equal(ta.valid, tb.valid)


def test_other_seed_other_town_and_scenario() -> None:
    town_a, town_b = make_town(TownConfig(seed=1)), make_town(TownConfig(seed=2))
    assert not town_a.area.equals(town_b.area)
    sc_a = make_scenario(ScenarioConfig(num_agents=10, seed=1), town_a)
    sc_b = make_scenario(ScenarioConfig(num_agents=10, seed=2), town_a)
    assert not np.allclose(sc_a.tracks[0].xy, sc_b.tracks[0].xy)


def test_lane_polygons_valid_and_lanes_sized(town: VectorMap) -> None:
    for lane in town.lanes:
        ring = np.concatenate([lane.left_boundary, lane.right_boundary[::-1]])
        polygon = Polygon(ring)
        assert polygon.is_valid, lane.id
        width = polygon.area / lane.length_m
        assert 3.3 < width < 3.7, (lane.id, width)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no lane needed a repair
        assert all(lane.polygon.area > 0 for lane in town.lanes)


def test_successors_exist_and_connect(town: VectorMap) -> None:
    for lane in town.lanes:
        assert lane.successors and lane.predecessors, lane.id
        for succ_id in lane.successors:
            succ = town.lane(succ_id)
            assert lane.id in succ.predecessors
            gap = np.linalg.norm(lane.centerline[-1] - succ.centerline[0])
            assert gap < 0.1, (lane.id, succ_id, gap)
            # Lanes join with the same direction (no kinks at the joints).
            end_dir = lane.centerline[-1] - lane.centerline[-2]
            start_dir = succ.centerline[1] - succ.centerline[0]
            cos = end_dir @ start_dir / np.linalg.norm(end_dir) / np.linalg.norm(start_dir)
            assert cos > 0.99, (lane.id, succ_id)
        if not lane.is_intersection:  # roads join through junctions only
            assert all(town.lane(s).is_intersection for s in lane.successors)


def test_junctions_offer_left_right_and_straight(town: VectorMap) -> None:
    turns: set[str] = set()
    for lane in town.lanes:
        if lane.is_intersection:
            start = lane.centerline[1] - lane.centerline[0]
            end = lane.centerline[-1] - lane.centerline[-2]
            cross = (
                (start[0] * end[1] - start[1] * end[0])
                / np.linalg.norm(start)
                / np.linalg.norm(end)
            )
            turns.add("left" if cross > 0.9 else "right" if cross < -0.9 else "straight")
    assert turns == {"left", "right", "straight"}


def test_marks_follow_the_road_layout() -> None:
    town = make_town(TownConfig(lanes_per_direction=2, seed=4))
    road_lanes = [ln for ln in town.lanes if not ln.is_intersection]
    counts: dict[MarkType, int] = defaultdict(int)
    for lane in road_lanes:
        counts[lane.left_mark] += 1
        counts[lane.right_mark] += 1
        if lane.left_mark == MarkType.DOUBLE_SOLID:
            opposite = town.lane(str(lane.left_neighbor))
            assert opposite.left_mark == MarkType.DOUBLE_SOLID
            # Opposing lanes share the dividing line, running the other way.
            np.testing.assert_allclose(opposite.left_boundary[::-1], lane.left_boundary, atol=1e-9)
        if lane.right_mark == MarkType.DASHED:
            neighbour = town.lane(str(lane.right_neighbor))
            assert neighbour.left_mark == MarkType.DASHED
            np.testing.assert_allclose(neighbour.left_boundary, lane.right_boundary, atol=1e-9)
        else:
            assert lane.right_mark == MarkType.CURB and lane.right_neighbor is None
    assert counts[MarkType.DOUBLE_SOLID] == counts[MarkType.CURB] == counts[MarkType.DASHED] // 2


def test_crosswalks_lie_on_the_roads(town: VectorMap) -> None:
    assert town.crosswalks
    for crosswalk in town.crosswalks:
        assert crosswalk.intersection(town.area).area > 0.95 * crosswalk.area
    assert not make_town(TownConfig(crosswalks=False)).crosswalks


def test_drivable_area_covers_lanes_and_bounds(town: VectorMap) -> None:
    assert town.area.is_valid
    lanes_union = shapely.union_all([lane.polygon for lane in town.lanes])
    assert lanes_union.difference(town.area.buffer(1e-6)).area < 1e-6
    xmin, ymin, xmax, ymax = town.bounds
    assert xmax - xmin > 150 and ymax - ymin > 100


def test_road_users_stay_on_the_drivable_area(scenario: Scenario) -> None:
    area = scenario.map.area.buffer(0.5)
    inside = total = 0
    for track in scenario.tracks:
        if track.kind in ROAD_KINDS:
            xy = track.xy[track.valid]
            inside += int(shapely.contains_xy(area, xy[:, 0], xy[:, 1]).sum())
            total += len(xy)
    assert total > 1000
    assert inside >= 0.99 * total


def test_headings_and_velocities_agree_with_motion(scenario: Scenario) -> None:
    checked = 0
    for track in scenario.tracks:
        both = track.valid[2:] & track.valid[:-2]
        motion = central_differences(track.xy, scenario.dt)[both]
        moving = np.linalg.norm(motion, axis=1) > 0.5
        heading = track.heading[1:-1][both][moving]
        direction = np.arctan2(motion[moving, 1], motion[moving, 0])
        assert np.all(angle_between(heading, direction) < 0.1), track.id
        assert track.velocity is not None
        error = np.linalg.norm(track.velocity[1:-1][both] - motion, axis=1)
        assert np.all(error < 0.5), track.id
        checked += int(moving.sum())
    assert checked > 1000


def test_kinematics_are_sane(scenario: Scenario) -> None:
    for track in scenario.tracks:
        valid = np.flatnonzero(track.valid)
        assert np.all(np.diff(valid) == 1), "valid steps form one window"
        assert np.isnan(track.xy[~track.valid]).all() and np.isfinite(track.xy[valid]).all()
        xy = track.xy[valid]
        speed = np.linalg.norm(np.diff(xy, axis=0), axis=1) / scenario.dt
        accel = np.linalg.norm(np.diff(xy, 2, axis=0), axis=1) / scenario.dt**2
        top_speed = {"vehicle": 20.0, "cyclist": 9.0, "pedestrian": 2.5}[track.kind]
        assert speed.max() < top_speed, (track.id, track.kind, speed.max())
        # Braking at up to 4 m/s^2 combined with turning: below emergency braking (~8 m/s^2).
        assert accel.max() < 7.0, (track.id, track.kind, accel.max())
    kinds = {track.kind for track in scenario.tracks}
    assert kinds == {"vehicle", "cyclist", "pedestrian"}
    focal = scenario.track(str(scenario.focal_track_id))
    assert focal.kind == "vehicle" and focal.valid.all()


def test_route_choices_differ_at_a_junction(scenario: Scenario) -> None:
    """Agents coming in on the same lane leave a junction by different connectors."""
    town = scenario.map
    probes = {
        lane.id: np.array([lane.centerline[i * (len(lane.centerline) - 1) // 4] for i in (1, 2, 3)])
        for lane in town.lanes
        if lane.is_intersection
    }
    taken: dict[str, set[str]] = defaultdict(set)  # incoming lane -> connectors driven
    for track in scenario.tracks:
        if track.kind not in ROAD_KINDS:
            continue
        xy = track.xy[track.valid]
        for lane_id, points in probes.items():
            distance = np.linalg.norm(points[:, None, :] - xy[None, :, :], axis=2).min(axis=1)
            if distance.max() < 1.2:
                taken[town.lane(lane_id).predecessors[0]].add(lane_id)
    assert taken, "no agent drove through a junction"
    assert max(len(connectors) for connectors in taken.values()) >= 2


def test_pedestrians_cross_at_crosswalks() -> None:
    town = make_town(TownConfig(seed=2))
    config = ScenarioConfig(num_agents=40, pedestrian_fraction=0.5, partial_track_fraction=0.0)
    scenario = make_scenario(config, town)
    crosswalks = shapely.union_all(town.crosswalks)
    pedestrians = [tr for tr in scenario.tracks if tr.kind == "pedestrian"]
    assert len(pedestrians) >= 10
    for track in pedestrians:
        walked = shapely.LineString(track.xy)
        assert walked.intersects(crosswalks)
        assert np.linalg.norm(track.xy[-1] - track.xy[0]) > 3.0


def test_make_scenarios_vary_towns_and_allow_4s_windows() -> None:
    scenarios = make_scenarios(
        3, seed=9, scenario_config=ScenarioConfig(num_agents=8, num_steps=60)
    )
    assert len(scenarios) == 3
    assert all(sc.num_steps == 60 and sc.dt == pytest.approx(0.1) for sc in scenarios)
    sources = {sc.map.source for sc in scenarios}
    assert len(sources) == 3
    again = make_scenarios(3, seed=9, scenario_config=ScenarioConfig(num_agents=8, num_steps=60))
    np.testing.assert_array_equal(scenarios[2].tracks[1].xy, again[2].tracks[1].xy)
    shared = make_scenarios(4, seed=9, scenario_config=ScenarioConfig(num_agents=4), num_towns=2)
    assert shared[0].map is shared[2].map and shared[0].map is not shared[1].map


def test_default_scenario_builds_its_own_town() -> None:
    scenario = make_scenario(ScenarioConfig(num_agents=5, num_steps=20))
    assert scenario.map.lanes and len(scenario.tracks) == 5 and scenario.num_steps == 20


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda: TownConfig(blocks=(0, 2)),
        lambda: TownConfig(lanes_per_direction=0),
        lambda: TownConfig(block_length_m=20.0),
        lambda: TownConfig(curvature=0.5),
        lambda: TownConfig(removed_road_fraction=1.5),
        lambda: ScenarioConfig(num_agents=0),
        lambda: ScenarioConfig(dt=0.0),
        lambda: ScenarioConfig(cyclist_fraction=0.7, pedestrian_fraction=0.5),
        lambda: make_scenarios(0),
    ],
)
def test_bad_settings_raise_config_error(make_bad: object) -> None:
    with pytest.raises(ConfigError):
        make_bad()  # type: ignore[operator]


def test_agents_drive_on_a_real_map(real_data: Path) -> None:
    """Any map with successors works: agents follow the lanes of the AV2 forecasting map."""
    folder = next((real_data / "av2" / "forecasting").iterdir())
    town = load_map(folder)
    scenario = make_scenario(ScenarioConfig(num_agents=30, pedestrian_fraction=0.0), town)
    area = town.area.buffer(0.5)
    xy = np.concatenate([tr.xy[tr.valid] for tr in scenario.tracks])
    assert shapely.contains_xy(area, xy[:, 0], xy[:, 1]).mean() >= 0.95


def test_written_scenes_read_back(tmp_path: Path) -> None:
    config = ScenarioConfig(num_agents=6, num_steps=30)
    folders = write_scenarios(tmp_path, 2, seed=4, scenario_config=config)
    assert [f.name for f in folders] == ["scene_000", "scene_001"]
    expected = make_scenarios(2, seed=4, scenario_config=config)[1]
    loaded = load_scenario(folders[1])
    assert loaded.dt == pytest.approx(expected.dt)
    assert [ln.successors for ln in loaded.map.lanes] == [
        ln.successors for ln in expected.map.lanes
    ]
    for want in expected.tracks:
        got = loaded.track(want.id)
        assert got.kind == want.kind
        np.testing.assert_array_equal(got.valid, want.valid)
        np.testing.assert_allclose(got.xy[got.valid], want.xy[want.valid])


def test_roundabout_ring_loops_around_an_island() -> None:
    town = make_town(TownConfig(seed=3, roundabouts=1))
    ring = {ln.id: ln for ln in town.lanes if ln.is_intersection and ln.left_mark == MarkType.CURB}
    assert len(ring) >= 6  # an entry and an exit for each of three or four roads
    lane, visited = next(iter(ring.values())), []
    while lane.id not in visited:
        visited.append(lane.id)
        lane = next(ring[s] for s in lane.successors if s in ring)
    assert sorted(visited) == sorted(ring)
    points = np.concatenate([ln.centerline for ln in ring.values()])
    # Least-squares circle: x^2 + y^2 = 2 cx x + 2 cy y + c.
    design = np.column_stack([2 * points, np.ones(len(points))])
    centre = np.linalg.lstsq(design, (points**2).sum(axis=1), rcond=None)[0][:2]
    radii = np.linalg.norm(points - centre, axis=1)
    assert radii.max() - radii.min() < 0.1
    assert not town.area.contains(shapely.Point(centre))  # the island is not drivable
    scenario = make_scenario(ScenarioConfig(num_agents=60, seed=1), town)
    on_ring = [
        tr.id
        for tr in scenario.tracks
        if np.any(np.abs(np.linalg.norm(tr.xy[tr.valid] - centre, axis=1) - radii.mean()) < 0.5)
    ]
    assert on_ring
    plain = make_town(TownConfig(seed=3, roundabouts=0))
    assert all(ln.left_mark != MarkType.CURB for ln in plain.lanes if ln.is_intersection)


def _straight_plan(kind: str, start_x: float, speed_mps: float, length_m: float) -> _Plan:
    """A plan along the x axis from ``start_x``, 300 m long, at a constant wanted speed."""
    xy = np.stack([np.linspace(start_x, start_x + 300.0, 601), np.zeros(601)], axis=1)
    path = _Path(xy, np.linspace(0.0, 300.0, 601), np.zeros(601), np.zeros(601, dtype=bool))
    return _Plan(kind, path, np.full(601, speed_mps), 2.0, 0.0, length_m, 1.0)


def test_followers_keep_their_distance() -> None:
    config = ScenarioConfig(num_agents=3, num_steps=150)
    leader = _straight_plan("vehicle", 30.0, 6.0, 4.5)
    follower = _straight_plan("vehicle", 0.0, 14.0, 4.5)
    pedestrian = _straight_plan("pedestrian", 80.0, 0.0, 0.6)  # standing on the road
    (lead_xy, _, _), (follow_xy, _, follow_v), (ped_xy, _, _) = _drive(
        [leader, follower, pedestrian], config
    )
    gap = lead_xy[:, 0] - follow_xy[:, 0] - 4.5
    assert gap.min() > 1.0  # never drives into the slower car ahead
    assert np.linalg.norm(follow_v[-1]) < 1.0  # queued behind the leader, who stopped for ...
    assert ped_xy[-1, 0] - lead_xy[-1, 0] > 2.5  # ... the pedestrian, without touching them
    alone = _drive([follower], config)[0][0]
    assert alone[-1, 0] > follow_xy[-1, 0] + 50  # without traffic the follower goes on
