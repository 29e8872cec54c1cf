"""Train/val/test splits that share no traffic: whole recordings per split, fixed or computed.

``plan_split`` groups scenes into recordings (``mapenc.data.recordings``: files that share a
vehicle up to a rigid frame change and a time shift; an INTERACTION track file or a generated scene
is a recording of its own), drops exact duplicates, and gives every
recording whole to one split, as close to ``TARGET_SHARES`` (60/15/25 % of the samples) as whole
recordings allow, with every location in test (and in train and val where it has enough
recordings). The search is deterministic (seeded restarts of a local search).

A *fixed* split is a JSON file under ``mapenc/data/splits/`` that lists every file of a data set
by content (SHA-256) with its split, its recording and why it was dropped, plus how it was made
(``provenance``). ``resolve_split`` uses a fixed split when every loaded scene file is listed in
one (wherever the files sit and whatever the folder is called, or read back from a scenario
store prepared from them), and otherwise plans one at load time with the same grouping.
``mapenc split --data PATH... --json`` prints the result.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mapenc.data.recordings import content_fingerprint, file_digest, group_recordings
from mapenc.errors import ConfigError, DataError
from mapenc.maps.io import INTERACTION_TRACKS_FOLDER, INTERACTION_VEHICLE_FILE
from mapenc.maps.synthetic.traffic import is_generated
from mapenc.maps.types import Scenario
from mapenc.safeio import write_bytes_atomic

SPLITS: tuple[str, ...] = ("train", "val", "test")
TARGET_SHARES: dict[str, float] = {"train": 0.60, "val": 0.15, "test": 0.25}
FIXED_SPLITS_DIR = Path(__file__).resolve().parent / "splits"
SEARCH_SEED = 0
SEARCH_RESTARTS = 200
# Seconds of history and future a sample spans, and between two samples of an agent: how samples
# are counted when balancing the split (the NGSIM task).
COUNT_HISTORY_S, COUNT_FUTURE_S, COUNT_STRIDE_S = 1.0, 3.0, 1.0


@dataclass(frozen=True)
class SplitPlan:
    """Where every scene goes.

    Attributes:
        names: scene names (paths relative to the data folder given).
        split: name -> "train", "val" or "test" (kept scenes only).
        dropped: name -> why it is left out.
        recording: name -> recording (connected component) number.
        location: name -> location (first folder of the name, "" when none).
        samples: name -> samples the scene gives (``count_samples``).
        source: "fixed:<file>" or "computed".
    """

    names: tuple[str, ...]
    split: dict[str, str]
    dropped: dict[str, str]
    recording: dict[str, int]
    location: dict[str, str]
    samples: dict[str, int]
    source: str = "computed"
    provenance: dict[str, Any] = field(default_factory=dict)

    def listing(self) -> dict[str, Any]:
        """``{"train": [...], "val": [...], "test": [...], "dropped": {name: why}}`` (sorted)."""
        out: dict[str, Any] = {
            name: sorted(n for n, s in self.split.items() if s == name) for name in SPLITS
        }
        out["dropped"] = dict(sorted(self.dropped.items()))
        return out

    def summary(self) -> dict[str, Any]:
        """Samples, scenes and recordings per split, and samples per location and split."""
        out: dict[str, Any] = {}
        total = sum(self.samples[n] for n in self.split) or 1
        for part in SPLITS:
            names = [n for n, s in self.split.items() if s == part]
            samples = sum(self.samples[n] for n in names)
            by_location: dict[str, int] = {}
            for n in names:
                by_location[self.location[n]] = (
                    by_location.get(self.location[n], 0) + self.samples[n]
                )
            out[part] = {
                "scenes": len(names),
                "recordings": len({self.recording[n] for n in names}),
                "samples": samples,
                "share": round(samples / total, 3),
                "samples_by_location": dict(sorted(by_location.items())),
            }
        return out


def count_samples(scene: Scenario) -> int:
    """Samples of 1 s history + 3 s future, one per second per agent, at the scene's own rate."""
    steps = round((COUNT_HISTORY_S + COUNT_FUTURE_S) / scene.dt) + 1
    stride = max(1, round(COUNT_STRIDE_S / scene.dt))
    total = 0
    for track in scene.tracks:
        padded = np.concatenate([[0], track.valid.astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(padded))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            if stop - start >= steps:
                total += (int(stop - start) - steps) // stride + 1
    return total


def location_of(name: str) -> str:
    """First folder of a relative scene name ("" for a name without one); for an INTERACTION
    recording named inside a release folder (``.../recorded_trackfiles/<LOCATION>/<file>``), its
    location."""
    parts = Path(name).parts
    if INTERACTION_TRACKS_FOLDER in parts[:-2]:
        return parts[parts.index(INTERACTION_TRACKS_FOLDER) + 1]
    return parts[0] if len(parts) > 1 else ""


def is_own_recording(scene: Scenario) -> bool:
    """Whether ``scene`` is a recording of its own by construction, whatever its content.

    Generated scenes come from independent seeds, and their ideal kinematics make vehicles of
    different scenes match by chance. Every INTERACTION track file is a separate recording (its
    track ids and frames restart), and a content search over their million 3 s windows would cost
    many minutes to find only chance look-alikes. Known by the file name of the scene's source
    (for a scene read back from the scenario store, of the source it was prepared from).
    """
    source = scene.source if scene.provenance is None else scene.provenance.name
    return is_generated(scene) or INTERACTION_VEHICLE_FILE.match(Path(source).name) is not None


def _cost(
    assignment: np.ndarray,
    samples: np.ndarray,
    locations: list[set[str]],
    wanted: dict[str, set[str]],
) -> float:
    """Squared distance of the split shares to the targets, plus penalties for locations
    missing from a split (test weighs most)."""
    total = samples.sum() or 1
    cost = 0.0
    for index, part in enumerate(SPLITS):
        chosen = assignment == index
        cost += (samples[chosen].sum() / total - TARGET_SHARES[part]) ** 2
        present = set().union(*(locations[i] for i in np.flatnonzero(chosen)))
        missing = len(wanted[part] - present)
        cost += missing * (10.0 if part == "test" else 1.0)
    return float(cost)


def assign_recordings(samples: Sequence[int], locations: Sequence[set[str]]) -> list[str]:
    """Split of each recording: shares near ``TARGET_SHARES``, each location in test.

    A location is also wanted in train and val when it has at least three recordings. Seeded
    restarts of a local search that moves one recording at a time, or swaps two.
    """
    counts = np.asarray(samples, dtype=np.float64)
    locs = [set(loc) for loc in locations]
    n = len(counts)
    if n == 0:
        return []
    per_location: dict[str, int] = {}
    for loc in locs:
        for name in loc:
            per_location[name] = per_location.get(name, 0) + 1
    everywhere = {name for name, k in per_location.items() if k >= 3}
    wanted = {"train": everywhere, "val": everywhere, "test": set(per_location)}
    pairs = np.array([(a, b) for a in range(n) for b in range(a + 1, n)], dtype=np.int64)
    rng = np.random.default_rng(SEARCH_SEED)
    best, best_cost = np.zeros(n, dtype=np.int64), np.inf
    for _ in range(SEARCH_RESTARTS):
        current = rng.choice(3, size=n, p=[TARGET_SHARES[s] for s in SPLITS])
        cost = _cost(current, counts, locs, wanted)
        improved = True
        while improved:
            improved = False
            for i in rng.permutation(n):
                for part in range(3):
                    if part == current[i]:
                        continue
                    trial = current.copy()
                    trial[i] = part
                    trial_cost = _cost(trial, counts, locs, wanted)
                    if trial_cost < cost - 1e-12:
                        current, cost, improved = trial, trial_cost, True
            for i, j in rng.permutation(pairs)[:200] if len(pairs) else []:
                if current[i] == current[j]:
                    continue
                trial = current.copy()
                trial[i], trial[j] = current[j], current[i]
                trial_cost = _cost(trial, counts, locs, wanted)
                if trial_cost < cost - 1e-12:
                    current, cost, improved = trial, trial_cost, True
        if cost < best_cost:
            best, best_cost = current, cost
    return [SPLITS[int(i)] for i in best]


def plan_split(scenes: Sequence[Scenario], names: Sequence[str]) -> SplitPlan:
    """Group ``scenes`` (named by ``names``, paths relative to their data folder) into
    recordings, drop exact duplicates and assign whole recordings (see the module docstring)."""
    if len(scenes) != len(names):
        raise ConfigError("plan_split needs one name per scene")
    if len(set(names)) != len(names):
        (twice, _), *_ = Counter(names).most_common(1)
        raise DataError(
            f"two scenes are named {twice!r}: give each data folder once (a scenario store names "
            "its scenes as their sources were named when prepared: it must not hold a source "
            "prepared twice, such as the old shard of a changed file)"
        )
    recorded = [i for i, sc in enumerate(scenes) if not is_own_recording(sc)]
    recordings = group_recordings([scenes[i] for i in recorded], [names[i] for i in recorded])
    component = {names[i]: int(c) for i, c in zip(recorded, recordings.component, strict=True)}
    own = [i for i, sc in enumerate(scenes) if is_own_recording(sc)]
    component |= {names[i]: len(recorded) + k for k, i in enumerate(own)}
    dropped: dict[str, str] = {}
    for index, kept in recordings.duplicate_of.items():
        dropped[names[recorded[index]]] = (
            f"exact duplicate of {names[recorded[kept]]}: every track is the same up to a rigid "
            "transform and a time shift"
        )
    dropped |= _same_content(
        [names[i] for i in own if not is_generated(scenes[i])],
        [scenes[i] for i in own if not is_generated(scenes[i])],
    )
    samples = {name: count_samples(sc) for name, sc in zip(names, scenes, strict=True)}
    for name in names:
        if name not in dropped and samples[name] == 0:
            dropped[name] = "no agent observed long enough for one sample (1 s past + 3 s future)"
    kept_components = sorted({component[n] for n in names if n not in dropped})
    parts = assign_recordings(
        [
            sum(samples[n] for n in names if component[n] == c and n not in dropped)
            for c in kept_components
        ],
        [
            {location_of(n) for n in names if component[n] == c and n not in dropped}
            for c in kept_components
        ],
    )
    part_of = dict(zip(kept_components, parts, strict=True))
    return SplitPlan(
        names=tuple(names),
        split={n: part_of[component[n]] for n in names if n not in dropped},
        dropped=dropped,
        recording=component,
        location={n: location_of(n) for n in names},
        samples=samples,
        source="computed",
    )


def _same_content(names: Sequence[str], scenes: Sequence[Scenario]) -> dict[str, str]:
    """Name -> why it is dropped, for every scene whose traffic (``content_fingerprint``) equals
    that of a scene earlier by name: the same recording given twice."""
    first_with: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for name, scene in sorted(zip(names, scenes, strict=True), key=lambda pair: pair[0]):
        kept = first_with.setdefault(content_fingerprint(scene), name)
        if kept != name:
            dropped[name] = f"exact duplicate of {kept}: every track is the same, in the same frame"
    return dropped


def scene_digest(source: str) -> str:
    """SHA-256 of a scene file, or of a scene folder's files (names and bytes, sorted)."""
    path = Path(source)
    if path.is_file():
        return file_digest(str(path))
    h = hashlib.sha256()
    for child in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(child.name.encode())
        h.update(file_digest(str(child)).encode())
    return h.hexdigest()


def source_sha256(scene: Scenario) -> str | None:
    """SHA-256 by which fixed split files list the file (or scene folder) ``scene`` was read from:
    ``scene_digest`` of its source, or for a scene read back from the scenario store the digest
    of the source it was prepared from; None for a scene without a file of its own (generated,
    or a record of a file of many)."""
    if scene.provenance is not None:
        return scene.provenance.sha256
    if not scene.source or not Path(scene.source).exists():
        return None
    return scene_digest(scene.source)


def write_fixed_split(
    plan: SplitPlan, scenes: Sequence[Scenario], path: Path, **provenance: Any
) -> None:
    """Save ``plan`` as a fixed split file (files keyed by content; see the module docstring);
    DataError for a scene without a file of its own (``source_sha256``)."""
    files = []
    for name, scene in zip(plan.names, scenes, strict=True):
        sha256 = source_sha256(scene)
        if sha256 is None:
            raise DataError(
                f"{name}: not a file of its own (generated, or a record of a file of many); "
                "a fixed split lists whole files"
            )
        entry: dict[str, Any] = {
            "name": name,
            "sha256": sha256,
            "recording": plan.recording[name],
            "location": plan.location[name],
            "samples": plan.samples[name],
        }
        if name in plan.dropped:
            entry["dropped"] = plan.dropped[name]
        else:
            entry["split"] = plan.split[name]
        files.append(entry)
    document = {"provenance": provenance, "summary": plan.summary(), "files": files}
    write_bytes_atomic(path, (json.dumps(document, indent=1) + "\n").encode())


def _fixed_split_files() -> list[Path]:
    return sorted(FIXED_SPLITS_DIR.glob("*.json"))


def fixed_plan(scenes: Sequence[Scenario], names: Sequence[str]) -> SplitPlan | None:
    """The plan of the fixed split file that lists every one of ``scenes`` by content
    (``source_sha256``), or None."""
    digests = []
    for scene in scenes:
        digest = source_sha256(scene)
        if digest is None:
            return None
        digests.append(digest)
    if not digests:
        return None
    for path in _fixed_split_files():
        document = json.loads(path.read_text())
        entries = {entry["sha256"]: entry for entry in document["files"]}
        if not all(d in entries for d in digests):
            continue
        chosen = [entries[d] for d in digests]
        return SplitPlan(
            names=tuple(names),
            split={n: e["split"] for n, e in zip(names, chosen, strict=True) if "split" in e},
            dropped={n: e["dropped"] for n, e in zip(names, chosen, strict=True) if "dropped" in e},
            recording={n: int(e["recording"]) for n, e in zip(names, chosen, strict=True)},
            location={n: str(e["location"]) for n, e in zip(names, chosen, strict=True)},
            samples={n: int(e["samples"]) for n, e in zip(names, chosen, strict=True)},
            source=f"fixed:{path.name}",
            provenance=dict(document.get("provenance", {})),
        )
    return None


def merge_plans(plans: Sequence[SplitPlan]) -> SplitPlan:
    """One plan of several data sets' own plans (their scene names must differ); recording
    numbers are renumbered so no two data sets share one."""
    merged = SplitPlan(names=(), split={}, dropped={}, recording={}, location={}, samples={})
    offset = 0
    for plan in plans:
        clash = set(plan.names) & set(merged.names)
        if clash:
            raise DataError(f"two data paths hold scenes of the same name: {sorted(clash)[:3]}")
        merged = SplitPlan(
            names=merged.names + plan.names,
            split={**merged.split, **plan.split},
            dropped={**merged.dropped, **plan.dropped},
            recording={**merged.recording, **{n: r + offset for n, r in plan.recording.items()}},
            location={**merged.location, **plan.location},
            samples={**merged.samples, **plan.samples},
            source=" + ".join(p.source for p in (merged, plan) if p.names),
            provenance={**merged.provenance, **plan.provenance},
        )
        offset = max(merged.recording.values(), default=-1) + 1
    return merged


def resolve_split(scenes: Sequence[Scenario], names: Sequence[str]) -> SplitPlan:
    """A fixed split when one lists every scene, else a split planned now (``plan_split``)."""
    return fixed_plan(scenes, names) or plan_split(scenes, names)
