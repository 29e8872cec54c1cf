"""De-duplication compares whole recordings: a shared track start alone does not make a duplicate."""

from __future__ import annotations

import numpy as np

from mapenc.data.traj_sources import split_scenarios
from mapenc.maps import Scenario, Track, VectorMap

STEPS = 60
DT = 0.1


def track(
    track_id: str, start: tuple[float, float], heading: float, speed: float, turn: float
) -> Track:
    """A vehicle from ``start`` at ``speed`` (m/s), heading ``heading`` (rad) turning at ``turn``
    (rad/s), observed at every step."""
    angle = heading + turn * np.arange(STEPS) * DT
    steps = speed * DT * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    xy = np.asarray(start) + np.concatenate([[[0.0, 0.0]], np.cumsum(steps[:-1], axis=0)])
    return Track(track_id, "vehicle", xy, angle, np.ones(STEPS, dtype=bool))


def scene(source: str, tracks: list[Track]) -> Scenario:
    return Scenario(VectorMap(lanes=[]), DT, tracks, source=source)


def test_scenes_sharing_one_track_start_are_both_kept() -> None:
    # Both scenes have a vehicle starting at step 0 at (0, 0); it drives east in one and north in
    # the other, and the rest of the traffic differs: two recordings, not one.
    east = scene(
        "data/east",
        [track("1", (0.0, 0.0), 0.0, 8.0, 0.1), track("2", (50.0, 20.0), np.pi, 12.0, -0.2)],
    )
    north = scene(
        "data/north",
        [track("7", (0.0, 0.0), np.pi / 2, 5.0, 0.3), track("8", (-40.0, 5.0), 0.3, 10.0, 0.0)],
    )
    kept = split_scenarios([east, north], "all", ["data"])
    assert sorted(sc.source for sc in kept) == ["data/east", "data/north"]


def test_an_exact_copy_is_still_dropped() -> None:
    tracks = [track("1", (0.0, 0.0), 0.0, 8.0, 0.1), track("2", (50.0, 20.0), np.pi, 12.0, -0.2)]
    kept = split_scenarios(
        [scene("data/east", tracks), scene("data/north", tracks)], "all", ["data"]
    )
    assert [sc.source for sc in kept] == ["data/east"]
