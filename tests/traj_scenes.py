"""Hand-made scenes for the trajectory tests: a straight road and constant-speed tracks, and
store shards of synthetic scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mapenc.maps.store import write_store_shard
from mapenc.maps.synthetic import make_scenarios
from mapenc.maps.types import Lane, Scenario, Track, VectorMap

DT = 0.1


def straight_road_map() -> VectorMap:
    """One 200 m lane along +x, 4 m wide."""
    x = np.linspace(-100.0, 100.0, 21)
    center = np.stack([x, np.zeros_like(x)], axis=1)
    return VectorMap(
        lanes=[Lane("0", center, center + np.array([0.0, 2.0]), center - np.array([0.0, 2.0]))]
    )


def moving_track(
    track_id: str,
    start: tuple[float, float],
    heading: float,
    speed: float,
    steps: int,
    first: int = 0,
) -> Track:
    """A track at constant speed along ``heading``, valid from step ``first`` to the end."""
    n = first + steps
    xy = np.full((n, 2), np.nan)
    t = np.arange(steps) * DT
    xy[first:] = np.array(start) + speed * t[:, None] * [np.cos(heading), np.sin(heading)]
    head = np.full(n, np.nan)
    head[first:] = heading
    valid = np.zeros(n, dtype=bool)
    valid[first:] = True
    return Track(track_id, "vehicle", xy, head, valid)


def curved_track(track_id: str, radius_m: float, speed_mps: float, steps: int, dt: float) -> Track:
    """A track turning left at constant speed on a circle about the origin, starting at
    (radius, 0) heading +y; headings keep growing past pi (not wrapped)."""
    angle = speed_mps / radius_m * np.arange(steps, dtype=np.float64) * dt
    xy = radius_m * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return Track(track_id, "vehicle", xy, angle + np.pi / 2, np.ones(steps, dtype=bool))


def scenario_of(*tracks: Track, source: str = "") -> Scenario:
    steps = max(len(tr.valid) for tr in tracks)
    padded = []
    for tr in tracks:
        pad = steps - len(tr.valid)
        padded.append(
            Track(
                tr.id,
                tr.kind,
                np.concatenate([tr.xy, np.full((pad, 2), np.nan)]),
                np.concatenate([tr.heading, np.full(pad, np.nan)]),
                np.concatenate([tr.valid, np.zeros(pad, dtype=bool)]),
            )
        )
    return Scenario(map=straight_road_map(), dt=DT, tracks=padded, source=source)


def store_shards(folder: Path, shards: int, per_shard: int, seed: int = 5) -> list[Path]:
    """``shards`` store shards of ``per_shard`` synthetic scenes each."""
    folder.mkdir(parents=True, exist_ok=True)
    scenes = list(make_scenarios(shards * per_shard, seed=seed))
    paths = []
    for k in range(shards):
        path = folder / f"s{k}.scenarios"
        write_store_shard(scenes[k * per_shard : (k + 1) * per_shard], path, f"s{k}")
        paths.append(path)
    return paths
