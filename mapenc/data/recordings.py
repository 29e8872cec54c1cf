"""Which scene files hold the same recorded traffic, up to a rigid frame change and a time shift.

Files cut from one recording (NGSIM CommonRoad: overlapping windows of the same road section,
re-framed and re-timed under other names and map ids) share vehicles. A split that keeps them
apart leaks those vehicles from train into test. ``group_recordings`` finds them by content:

1. **Windows.** Every ``WINDOW_S`` (3 s) stretch of every track that is observed without a gap and
   moves at least ``MIN_TRAVEL_M`` (a parked or queued car is the same under any frame, so its
   windows identify nothing) gives a window of ``steps + 1`` points.
2. **Signature.** Seven equally spaced points of the window give 11 numbers that a rigid motion
   and a time shift leave unchanged: the six distances between consecutive points (the speed
   profile) and the five chords from the first point to points 2..6 (the turning). Windows whose
   signatures agree within ``SIGNATURE_TOL_M`` (every number, metres) are candidates; a KD tree
   finds them.
3. **Confirmation.** A candidate pair from two files is a match when the best rigid fit of one
   window's points onto the other's (Kabsch, no reflection) leaves every point within
   ``FIT_TOL_M`` (5 cm), *and* that transform, with the pair's time shift, also fits every step
   that both tracks observe within ``FIT_TOL_M``. The second test matters: NGSIM tracks are
   smoothed, and two different cars that drove alike for 3 s (even at two locations) pass the
   first; the same car cut from one recording passes both.
4. **Components.** Files that share at least one track form a recording (connected components).
   A file all of whose moving tracks are shared with another file, and vice versa, with the same
   observed-step counts, is an exact duplicate (up to frame and time): the later one by name is
   dropped.

Sources whose files are separate recordings by construction (INTERACTION track files, generated
scenes) skip the search (``mapenc.data.split``); among them ``content_fingerprint`` finds the same
recording given twice (a file and its gzipped copy).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from mapenc.geometry import rotate_vectors, transform_points
from mapenc.maps.types import Scenario, Track

FloatArray = NDArray[np.float64]

WINDOW_S = 3.0
SIGNATURE_POINTS = 7
MIN_TRAVEL_M = 2.0
SIGNATURE_TOL_M = 0.1
FIT_TOL_M = 0.05


@dataclass(frozen=True)
class Windows:
    """The moving windows of a set of scenes.

    Attributes:
        points: (W, S + 1, 2) float64 positions (each scene's own frame, metres).
        signature: (W, 11) rigid- and time-invariant signature (metres).
        scene: (W,) int64 index of the scene.
        track: (W,) int64 index of the track within its scene.
        start: (W,) int64 first step of the window in its scene.
    """

    points: FloatArray
    signature: FloatArray
    scene: NDArray[np.int64]
    track: NDArray[np.int64]
    start: NDArray[np.int64]


def window_steps(dt: float) -> int:
    """Steps in a ``WINDOW_S`` window at ``dt`` seconds per step (a multiple of 6, at least 6)."""
    steps = round(WINDOW_S / dt)
    return max(SIGNATURE_POINTS - 1, steps - steps % (SIGNATURE_POINTS - 1))


def signature_of(points: FloatArray) -> FloatArray:
    """(W, 11) signatures of windows ``points`` (W, S + 1, 2), S a multiple of 6 (see module)."""
    stride = (points.shape[1] - 1) // (SIGNATURE_POINTS - 1)
    marks = points[:, ::stride][:, :SIGNATURE_POINTS]
    steps = np.linalg.norm(np.diff(marks, axis=1), axis=-1)
    chords = np.linalg.norm(marks[:, 2:] - marks[:, :1], axis=-1)
    return np.concatenate([steps, chords], axis=1)


def _observed_runs(valid: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, stop) of every run of True in ``valid`` (stop exclusive)."""
    padded = np.concatenate([[False], valid, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def scene_windows(scenes: Sequence[Scenario]) -> Windows:
    """Every moving ``WINDOW_S`` window of every track of ``scenes`` (one per start step)."""
    points, scene_ids, track_ids, starts = [], [], [], []
    for s, scene in enumerate(scenes):
        steps = window_steps(scene.dt)
        for k, track in enumerate(scene.tracks):
            for start, stop in _observed_runs(track.valid):
                if stop - start < steps + 1:
                    continue
                xy = track.xy[start:stop]
                view = np.lib.stride_tricks.sliding_window_view(xy, steps + 1, axis=0)
                windows = np.moveaxis(view, -1, 1)  # (n, steps + 1, 2)
                travel = np.linalg.norm(windows[:, -1] - windows[:, 0], axis=-1)
                moving = np.flatnonzero(travel >= MIN_TRAVEL_M)
                if moving.size == 0:
                    continue
                points.append(windows[moving])
                scene_ids.append(np.full(moving.size, s))
                track_ids.append(np.full(moving.size, k))
                starts.append(start + moving)
    if not points:
        empty = np.zeros(0, dtype=np.int64)
        return Windows(np.zeros((0, 2, 2)), np.zeros((0, 11)), empty, empty, empty)
    # Scenes of different rates give windows of different lengths: group them by length.
    lengths = {p.shape[1] for p in points}
    if len(lengths) > 1:
        longest = max(lengths)
        points = [_resample_window(p, longest) for p in points]
    stacked = np.concatenate(points)
    return Windows(
        points=stacked,
        signature=signature_of(stacked),
        scene=np.concatenate(scene_ids).astype(np.int64),
        track=np.concatenate(track_ids).astype(np.int64),
        start=np.concatenate(starts).astype(np.int64),
    )


def _resample_window(points: FloatArray, length: int) -> FloatArray:
    """Windows (W, S + 1, 2) linearly resampled in time to ``length`` points (same duration)."""
    if points.shape[1] == length:
        return points
    old = np.linspace(0.0, 1.0, points.shape[1])
    new = np.linspace(0.0, 1.0, length)
    return np.stack(
        [
            np.stack([np.interp(new, old, w[:, 0]), np.interp(new, old, w[:, 1])], axis=-1)
            for w in points
        ]
    )


def rigid_fit(source: FloatArray, target: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Best rigid fit of each ``source`` window onto ``target``, both (W, P, 2) metres.

    Kabsch in 2-D, rotations only (no reflection). Returns the angle (W,) rad, the translation
    (W, 2) m (``target ~ R(angle) @ source + translation``) and the largest point distance (W,) m
    left after the fit.
    """
    src_mean, dst_mean = source.mean(axis=1, keepdims=True), target.mean(axis=1, keepdims=True)
    src, dst = source - src_mean, target - dst_mean
    # The rotation angle maximising sum(dst . R src) in 2-D.
    dot = np.sum(src * dst, axis=(1, 2))
    cross = np.sum(src[..., 0] * dst[..., 1] - src[..., 1] * dst[..., 0], axis=1)
    angle = np.arctan2(cross, dot)
    residual = np.linalg.norm(rotate_vectors(angle, src) - dst, axis=-1).max(axis=1)
    moved_mean = rotate_vectors(angle, src_mean[:, 0])
    return angle, dst_mean[:, 0] - moved_mean, residual


@dataclass(frozen=True)
class WindowMatches:
    """Window pairs from different scenes that match after a rigid fit.

    Attributes:
        pairs: (M, 2) int64 window indices (left, right).
        angle: (M,) rad and ``translation`` (M, 2) m: ``right ~ R(angle) @ left + translation``.
        shift: (M,) int64 ``start[right] - start[left]``: the time shift in steps.
    """

    pairs: NDArray[np.int64]
    angle: FloatArray
    translation: FloatArray
    shift: NDArray[np.int64]


def matching_windows(
    windows: Windows,
    query: NDArray[np.bool_] | None = None,
    target: NDArray[np.bool_] | None = None,
) -> WindowMatches:
    """Pairs of windows from different scenes that match (see the module docstring).

    ``query`` / ``target`` (W,) restrict the pairs to query windows on the left and target windows
    on the right (default: every window on both sides, each pair once).
    """
    if query is None or target is None:
        tree = cKDTree(windows.signature)
        pairs = tree.query_pairs(SIGNATURE_TOL_M, p=np.inf, output_type="ndarray")
    else:
        left, right = np.flatnonzero(query), np.flatnonzero(target)
        found = (
            cKDTree(windows.signature[right]).query_ball_point(
                windows.signature[left], SIGNATURE_TOL_M, p=np.inf
            )
            if left.size and right.size
            else []
        )
        pairs = np.array(
            [(left[i], right[j]) for i, hits in enumerate(found) for j in hits], dtype=np.int64
        )
    pairs = pairs.reshape(-1, 2).astype(np.int64)
    pairs = pairs[windows.scene[pairs[:, 0]] != windows.scene[pairs[:, 1]]]
    kept, angles, translations = [], [], []
    for chunk in np.array_split(pairs, len(pairs) // 20000 + 1):
        angle, translation, residual = rigid_fit(
            windows.points[chunk[:, 0]], windows.points[chunk[:, 1]]
        )
        good = residual < FIT_TOL_M
        kept.append(chunk[good])
        angles.append(angle[good])
        translations.append(translation[good])
    pairs = np.concatenate(kept)
    return WindowMatches(
        pairs=pairs,
        angle=np.concatenate(angles),
        translation=np.concatenate(translations).reshape(-1, 2),
        shift=windows.start[pairs[:, 1]] - windows.start[pairs[:, 0]],
    )


def _full_span_residual(
    first: Track, second: Track, shift: int, angle: float, translation: FloatArray
) -> float:
    """Largest distance (metres), over the steps both tracks observe (``second`` at
    ``t + shift``), between ``second`` and ``first`` moved by the rigid transform."""
    steps = np.arange(len(first.valid))
    other = steps + shift
    both = (other >= 0) & (other < len(second.valid))
    both[both] &= first.valid[steps[both]] & second.valid[other[both]]
    if not both.any():
        return float("inf")
    moved = transform_points([[*translation, angle]], first.xy[steps[both]][None])[0]
    return float(np.linalg.norm(moved - second.xy[other[both]], axis=-1).max())


def shared_tracks(
    scenes: Sequence[Scenario], windows: Windows, matches: WindowMatches
) -> dict[tuple[int, int], tuple[int, int]]:
    """(scene i, scene j), i < j -> (tracks of i, tracks of j) that the two scenes share.

    A window match is kept only when the whole stretch both tracks observe (under the match's
    time shift) fits the match's rigid transform within ``FIT_TOL_M``: the same vehicle cut from
    one recording fits everywhere, two vehicles that moved alike for 3 s do not.
    """
    pairs = matches.pairs
    keys = np.stack(
        [
            windows.scene[pairs[:, 0]],
            windows.track[pairs[:, 0]],
            windows.scene[pairs[:, 1]],
            windows.track[pairs[:, 1]],
            matches.shift,
        ],
        axis=1,
    ).reshape(-1, 5)
    groups, first = np.unique(keys, axis=0, return_index=True)
    confirmed: dict[tuple[int, int], tuple[set[int], set[int]]] = {}
    for (sa, ta, sb, tb, shift), k in zip(groups.tolist(), first.tolist(), strict=True):
        residual = _full_span_residual(
            scenes[sa].tracks[ta],
            scenes[sb].tracks[tb],
            shift,
            float(matches.angle[k]),
            matches.translation[k],
        )
        if residual >= FIT_TOL_M:
            continue
        if sa > sb:
            sa, ta, sb, tb = sb, tb, sa, ta
        tracks = confirmed.setdefault((sa, sb), (set(), set()))
        tracks[0].add(ta)
        tracks[1].add(tb)
    return {pair: (len(a), len(b)) for pair, (a, b) in confirmed.items()}


@dataclass(frozen=True)
class Recordings:
    """Scenes grouped into recordings.

    Attributes:
        component: (S,) int64 recording of each scene (0..C-1, numbered by first scene).
        duplicate_of: scene index -> index of the kept scene it exactly duplicates.
        shared: (i, j), i < j -> (tracks of i, tracks of j) the two scenes share: the links.
    """

    component: NDArray[np.int64]
    duplicate_of: dict[int, int] = field(default_factory=dict)
    shared: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of recordings."""
        return int(self.component.max()) + 1 if len(self.component) else 0


def _track_layout(scene: Scenario) -> tuple[int, ...]:
    """Sorted observed-step counts of the scene's tracks: equal for exact duplicates."""
    return tuple(sorted(int(t.valid.sum()) for t in scene.tracks if t.valid.any()))


def group_recordings(scenes: Sequence[Scenario], names: Sequence[str] | None = None) -> Recordings:
    """Recordings of ``scenes`` and their exact duplicates (see the module docstring).

    ``names`` (default: each scene's source) order the scenes when choosing which duplicate stays.
    """
    n = len(scenes)
    names = list(names) if names is not None else [sc.source for sc in scenes]
    windows = scene_windows(scenes)
    shared = shared_tracks(scenes, windows, matching_windows(windows))
    links = np.array(list(shared), dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Renumber components by their first scene so the numbering is stable.
    order = {int(label): i for i, label in enumerate(dict.fromkeys(labels.tolist()))}
    component = np.array([order[int(label)] for label in labels], dtype=np.int64)
    moving_tracks = [np.unique(windows.track[windows.scene == s]).size for s in range(n)]
    duplicate_of: dict[int, int] = {}
    for (i, j), (count_i, count_j) in sorted(shared.items()):
        kept, dropped = (i, j) if names[i] <= names[j] else (j, i)
        if (
            dropped not in duplicate_of
            and kept not in duplicate_of
            and count_i == moving_tracks[i]
            and count_j == moving_tracks[j]
            and _track_layout(scenes[i]) == _track_layout(scenes[j])
        ):
            duplicate_of[dropped] = kept
    return Recordings(component=component, duplicate_of=duplicate_of, shared=shared)


def content_fingerprint(scene: Scenario) -> str:
    """SHA-256 (hex) of a scene's traffic: every track's observed steps and positions (rounded to
    the millimetre), whatever the track order, ids, file name or compression. Equal for two
    copies of one recording in the same frame and time; not meant to match re-framed copies
    (``group_recordings`` does that)."""
    per_track = sorted(
        hashlib.sha256(
            (scene.first_step + np.flatnonzero(track.valid)).astype(np.int64).tobytes()
            + np.round(track.xy[track.valid] * 1000.0).astype(np.int64).tobytes()
        ).digest()
        for track in scene.tracks
    )
    return hashlib.sha256(b"".join(per_track)).hexdigest()


def file_digest(path: str) -> str:
    """SHA-256 (hex) of a file's bytes: how a committed split recognises its files anywhere."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
