"""The leak-free split: recordings found by content, whole recordings per split, the fixed file."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
from traj_scenes import scenario_of

from mapenc.cli import main
from mapenc.data import recordings
from mapenc.data.split import assign_recordings, plan_split
from mapenc.data.traj_sources import load_scenarios, plan_for, scene_names, split_scenarios
from mapenc.errors import ConfigError
from mapenc.maps.types import Scenario, Track


def wandering_track(track_id: str, seed: int, steps: int = 80) -> Track:
    """A car with a random smooth speed and turn-rate profile (no two seeds alike)."""
    rng = np.random.default_rng(seed)
    speed = np.clip(8.0 + np.cumsum(rng.normal(0.0, 0.3, steps)), 2.0, None)
    heading = np.cumsum(rng.normal(0.0, 0.02, steps))
    xy = np.cumsum(0.1 * speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1), axis=0)
    return Track(track_id, "vehicle", xy, heading, np.ones(steps, dtype=bool))


def moved(
    scene: Scenario, angle: float, offset: tuple[float, float], delay: int, source: str
) -> Scenario:
    """``scene`` in another frame (rotated, shifted) and starting ``delay`` steps later."""
    c, s = np.cos(angle), np.sin(angle)
    tracks = []
    for tr in scene.tracks:
        xy = tr.xy @ np.array([[c, s], [-s, c]]) + offset
        pad = np.full((delay, 2), np.nan)
        tracks.append(
            dataclasses.replace(
                tr,
                xy=np.concatenate([pad, xy]),
                heading=np.concatenate([np.full(delay, np.nan), tr.heading + angle]),
                valid=np.concatenate([np.zeros(delay, dtype=bool), tr.valid]),
            )
        )
    return dataclasses.replace(scene, tracks=tracks, source=source)


def test_recordings_are_found_up_to_a_rigid_transform_and_a_time_shift() -> None:
    first = scenario_of(*[wandering_track(f"a{i}", i) for i in range(4)], source="a.xml")
    other = scenario_of(*[wandering_track(f"b{i}", 100 + i) for i in range(4)], source="b.xml")
    # Shares two of first's vehicles, in another frame and 13 steps later, plus one of its own.
    partial = moved(first, 0.7, (350.0, -120.0), 13, "c.xml")
    partial = dataclasses.replace(partial, tracks=[*partial.tracks[:2], wandering_track("c9", 999)])
    copy = moved(first, -1.2, (-40.0, 75.0), 5, "d.xml")
    found = recordings.group_recordings([first, other, partial, copy], ["a", "b", "c", "d"])
    assert found.component.tolist() == [0, 1, 0, 0]
    assert found.duplicate_of == {3: 0}  # the whole copy goes, the partial overlap stays
    assert found.shared[(0, 2)] == (2, 2)


def test_vehicles_that_only_drove_alike_for_a_while_are_not_one_recording() -> None:
    # Two cars with the same speed profile over 4 s, but different before and after.
    base = wandering_track("x", 5, steps=60)
    later = wandering_track("y", 6, steps=60)
    joined_xy = np.concatenate([later.xy[:30] - later.xy[29] + base.xy[10], base.xy[10:50]])
    heading = np.concatenate([later.heading[:30], base.heading[10:50]])
    alike = Track("z", "vehicle", joined_xy, heading, np.ones(len(joined_xy), dtype=bool))
    scenes = [scenario_of(base, source="p.xml"), scenario_of(alike, source="q.xml")]
    windows = recordings.scene_windows(scenes)
    assert len(recordings.matching_windows(windows).pairs) > 0  # 3 s windows do match ...
    assert recordings.group_recordings(scenes, ["p", "q"]).count == 2  # ... the vehicles do not


def test_assignment_keeps_targets_and_puts_every_location_in_test() -> None:
    samples = [500, 40, 30, 60, 50, 45, 80, 70, 20, 90]
    locations = [{"A"}, {"B"}, {"B"}, {"A"}, {"A"}, {"B"}, {"A"}, {"B"}, {"C"}, {"C"}]
    parts = assign_recordings(samples, locations)
    assert parts == assign_recordings(samples, locations)  # deterministic
    shares = {
        p: sum(n for n, q in zip(samples, parts, strict=True) if q == p) / sum(samples)
        for p in ("train", "val", "test")
    }
    assert abs(shares["train"] - 0.6) < 0.1 and abs(shares["test"] - 0.25) < 0.1
    in_test = set().union(*(loc for loc, q in zip(locations, parts, strict=True) if q == "test"))
    assert in_test == {"A", "B", "C"}


def test_split_keeps_recordings_whole_and_drops_duplicates() -> None:
    originals = [
        scenario_of(
            *[wandering_track(f"s{k}t{i}", 10 * k + i) for i in range(3)], source=f"s{k}.xml"
        )
        for k in range(8)
    ]
    copies = [moved(originals[0], 0.3, (10.0, 5.0), 4, "s0_copy.xml")]
    overlap = moved(originals[1], 0.0, (3.0, 3.0), 7, "s1_overlap.xml")
    overlap = dataclasses.replace(overlap, tracks=overlap.tracks[:2])
    scenes = [*originals, *copies, overlap]
    plan = plan_split(scenes, scene_names(scenes, []))
    assert set(plan.dropped) == {"s0_copy.xml"}
    assert plan.split["s1.xml"] == plan.split["s1_overlap.xml"]
    listing = plan.listing()
    assert sum(len(listing[p]) for p in ("train", "val", "test")) == 9
    assert all(listing[p] for p in ("train", "val", "test"))
    assert [sc.source for sc in split_scenarios(scenes, "all")] == [
        sc.source for sc in scenes if sc.source != "s0_copy.xml"
    ]
    with pytest.raises(ConfigError):
        split_scenarios(scenes, "holdout")


def test_generated_scenes_are_split_like_independent_recordings() -> None:
    # Synthetic towns drive ideal kinematics: cars of different scenes match by chance, which
    # chained all 16 demo scenes into one recording with nothing left to train on.
    scenes = load_scenarios(("synthetic:16",))
    plan = plan_split(scenes, scene_names(scenes, ("synthetic:16",)))
    assert len(set(plan.recording.values())) == 16 and not plan.dropped
    listing = plan.listing()
    assert all(listing[part] for part in ("train", "val", "test"))
    assert split_scenarios(scenes, "train", ("synthetic:16",))


def _windows_shared_across(
    scenes: list[Scenario], parts: list[str]
) -> dict[tuple[int, int], tuple[int, int]]:
    """Test/val scene pairs with train that share a vehicle (3 s windows, rigid fit < 5 cm over
    everything both observe)."""
    windows = recordings.scene_windows(scenes)
    part = np.array(parts)[windows.scene]
    matches = recordings.matching_windows(windows, query=part != "train", target=part == "train")
    return recordings.shared_tracks(scenes, windows, matches)


@pytest.mark.real_data
@pytest.mark.slow
def test_ngsim_fixed_split_shares_no_vehicle_with_train(real_data, capsys) -> None:  # type: ignore[no-untyped-def]
    paths = [str(real_data / "commonroad_ngsim")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scenarios = load_scenarios(paths)
    names = scene_names(scenarios, paths)
    plan = plan_for(scenarios, paths)
    assert plan.source == "fixed:commonroad_ngsim.json"
    kept = [i for i, n in enumerate(names) if n in plan.split]
    scenes = [scenarios[i] for i in kept]
    parts = [plan.split[names[i]] for i in kept]
    assert not _windows_shared_across(scenes, parts)
    # The check does fail on a leaky split: the old one put Lanker-2_13 in test, 2_14 in train.
    leaky = {
        "Lankershim/USA_Lanker-2_13_T-1.xml.gz": "test",
        "Lankershim/USA_Lanker-2_14_T-1.xml.gz": "train",
    }
    pair = [scenarios[names.index(n)] for n in leaky]
    shared = _windows_shared_across(pair, list(leaky.values()))
    assert max(max(v) for v in shared.values()) >= 25  # moving vehicles shared
    for location in ("US101", "Lankershim", "Peachtree"):
        assert any(plan.location[n] == location for n, p in plan.split.items() if p == "test")
    summary = plan.summary()
    assert abs(summary["train"]["share"] - 0.60) < 0.05
    assert abs(summary["test"]["share"] - 0.25) < 0.05
    assert main(["split", "--data", *paths, "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["test"] == sorted(n for n, p in plan.split.items() if p == "test")
    assert "Lankershim/USA_Lanker-2_22_T-1.xml.gz" in listing["dropped"]


def test_interaction_track_files_are_recordings_of_their_own() -> None:
    first = scenario_of(
        *[wandering_track(f"t{i}", 50 + i) for i in range(3)], source="LOC/vehicle_tracks_000.csv"
    )
    # Every vehicle again, 5 steps later: content grouping would make the two one recording.
    later = moved(first, 0.0, (0.0, 0.0), 5, "LOC/vehicle_tracks_001.csv")
    copy = dataclasses.replace(first, source="LOC/vehicle_tracks_002.csv.gz")
    others = [
        scenario_of(wandering_track(f"u{k}", 70 + k), source=f"LOC/vehicle_tracks_00{k}.csv")
        for k in range(3, 6)
    ]
    scenes = [first, later, copy, *others]
    plan = plan_split(scenes, scene_names(scenes, []))
    assert plan.dropped.keys() == {"vehicle_tracks_002.csv.gz"}
    assert "vehicle_tracks_000.csv" in plan.dropped["vehicle_tracks_002.csv.gz"]
    assert len(set(plan.recording.values())) == len(scenes)
    # The same traffic as CommonRoad files: one recording, the copy dropped as a duplicate.
    as_commonroad = [dataclasses.replace(sc, source=f"s{k:03d}.xml") for k, sc in enumerate(scenes)]
    plan = plan_split(as_commonroad, scene_names(as_commonroad, []))
    assert plan.recording["s000.xml"] == plan.recording["s001.xml"]
    assert "s002.xml" in plan.dropped
