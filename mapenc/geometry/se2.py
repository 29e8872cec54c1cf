"""SE(2): rotation + translation of the plane, float64 throughout.

Name instances by the frames they connect, as in ``city_SE2_agent``: it maps points given in the
agent frame to the city frame (``city_SE2_agent.transform_from(points_agent) -> points_city``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mapenc.errors import PoseError

FloatArray = NDArray[np.float64]


def wrap_angle(angle: ArrayLike) -> Any:
    """Wrap angles (rad) to [-pi, pi)."""
    a = np.asarray(angle, dtype=np.float64)
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def check_poses(poses: ArrayLike, name: str = "poses") -> FloatArray:
    """Return ``poses`` as a finite (N, 3) float64 array ``[x, y, heading]``; raise PoseError if not.

    A single pose of shape (3,) is accepted and returned as (1, 3).
    """
    try:
        if np.asarray(poses).dtype.kind in "USO" and not _all_numbers(poses):
            raise ValueError("text")  # "1.5" would convert silently: refuse text outright
        arr = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError):  # text, or rows of different lengths
        raise PoseError(
            f"{name} must be an (N, 3) array of numbers [x, y, heading], got {_shown(poses)}"
        ) from None
    if arr.ndim == 1 and arr.shape[0] == 3:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise PoseError(f"{name} must have shape (N, 3) [x, y, heading], got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise PoseError(f"{name} has NaN or inf values at rows {bad[:10].tolist()}")
    return arr


def _all_numbers(values: ArrayLike) -> bool:
    """Whether every item of a (nested) sequence is a real number, not text."""
    flat = np.asarray(values, dtype=object).ravel()
    return all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in flat)


def _shown(values: object, width: int = 60) -> str:
    text = repr(values)
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass(frozen=True)
class SE2:
    """A rigid transform ``p_dst = R(rotation_rad) @ p_src + translation``.

    Attributes:
        rotation_rad: angle of the source frame's +x axis in the destination frame (rad).
        translation: (2,) origin of the source frame in the destination frame (metres).
    """

    rotation_rad: float
    translation: FloatArray

    def __post_init__(self) -> None:
        t = np.asarray(self.translation, dtype=np.float64).reshape(-1)
        if t.shape != (2,) or not np.isfinite(t).all() or not np.isfinite(self.rotation_rad):
            raise PoseError(f"SE2 needs a finite angle and a (2,) translation, got {t.shape}")
        object.__setattr__(self, "translation", t)
        object.__setattr__(self, "rotation_rad", float(self.rotation_rad))

    @classmethod
    def identity(cls) -> SE2:
        return cls(0.0, np.zeros(2))

    @classmethod
    def from_pose(cls, pose: ArrayLike) -> SE2:
        """``dst_SE2_agent`` from an agent pose ``[x, y, heading]`` given in the dst frame."""
        x, y, heading = check_poses(pose, "pose")[0]
        return cls(heading, np.array([x, y]))

    @classmethod
    def from_matrix(cls, matrix: ArrayLike) -> SE2:
        """From a 3x3 homogeneous matrix whose top-left 2x2 block is a rotation."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (3, 3):
            raise PoseError(f"SE2 matrix must be 3x3, got {m.shape}")
        rot = m[:2, :2]
        if not np.allclose(rot @ rot.T, np.eye(2), atol=1e-9) or np.linalg.det(rot) <= 0:
            raise PoseError("SE2 matrix rotation block is not a proper rotation")
        return cls(float(np.arctan2(m[1, 0], m[0, 0])), m[:2, 2].copy())

    @property
    def rotation(self) -> FloatArray:
        """(2, 2) rotation matrix."""
        c, s = np.cos(self.rotation_rad), np.sin(self.rotation_rad)
        return np.array([[c, -s], [s, c]])

    def as_matrix(self) -> FloatArray:
        """(3, 3) homogeneous matrix."""
        m = np.eye(3)
        m[:2, :2] = self.rotation
        m[:2, 2] = self.translation
        return m

    def compose(self, right: SE2) -> SE2:
        """``a_SE2_c = a_SE2_b.compose(b_SE2_c)``."""
        return SE2(
            float(wrap_angle(self.rotation_rad + right.rotation_rad)),
            self.rotation @ right.translation + self.translation,
        )

    def inverse(self) -> SE2:
        """``b_SE2_a`` from ``a_SE2_b``."""
        return SE2(float(wrap_angle(-self.rotation_rad)), -(self.rotation.T @ self.translation))

    def transform_from(self, points_src: ArrayLike) -> FloatArray:
        """Map (N, 2) points from the source frame to the destination frame (metres)."""
        p = np.asarray(points_src, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 2:
            raise PoseError(f"points must have shape (N, 2), got {p.shape}")
        return p @ self.rotation.T + self.translation

    def transform_heading_from(self, heading_src: ArrayLike) -> Any:
        """Map headings (rad) from the source frame to the destination frame, wrapped."""
        return wrap_angle(np.asarray(heading_src, dtype=np.float64) + self.rotation_rad)


def matrices_from_poses(poses: ArrayLike) -> FloatArray:
    """(N, 3, 3) homogeneous ``dst_SE2_src`` matrices of N poses (N, 3) ``[x, y, heading]``.

    Each pose is the source frame's origin and +x heading (metres, rad) given in the destination
    frame, as an agent pose in the city frame gives ``city_SE2_agent``.
    """
    p = check_poses(poses)
    c, s = np.cos(p[:, 2]), np.sin(p[:, 2])
    m = np.zeros((len(p), 3, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = c, -s, p[:, 0]
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = s, c, p[:, 1]
    m[:, 2, 2] = 1.0
    return m


def inverse_matrices_from_poses(poses: ArrayLike) -> FloatArray:
    """(N, 3, 3) ``src_SE2_dst`` matrices: the inverses of ``matrices_from_poses(poses)``."""
    p = check_poses(poses)
    c, s = np.cos(p[:, 2]), np.sin(p[:, 2])
    m = np.zeros((len(p), 3, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = c, s, -(c * p[:, 0] + s * p[:, 1])
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = -s, c, s * p[:, 0] - c * p[:, 1]
    m[:, 2, 2] = 1.0
    return m


def apply_matrices(matrices: ArrayLike, points: ArrayLike) -> FloatArray:
    """Apply N (3, 3) transforms (N, 3, 3) to points (N, ..., 2): row n of ``points`` by matrix n.

    A single (3, 3) matrix maps points of any shape (..., 2). float64 throughout.
    """
    m = np.asarray(matrices, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1] != 2:
        raise PoseError(f"points must end in an axis of 2 (x, y), got {p.shape}")
    if m.shape == (3, 3):
        return p @ m[:2, :2].T + m[:2, 2]
    if m.ndim != 3 or m.shape[1:] != (3, 3) or p.ndim < 2 or p.shape[0] != m.shape[0]:
        raise PoseError(f"matrices {m.shape} and points {p.shape}: expected (N, 3, 3), (N, ..., 2)")
    # Not reshape(len(p), -1, 2): that fails for N = 0 (no transforms, e.g. no candidate pairs).
    flat = p.reshape(len(p), int(np.prod(p.shape[1:-1])), 2)
    out = np.einsum("nij,npj->npi", m[:, :2, :2], flat) + m[:, None, :2, 2]
    return out.reshape(p.shape)


def transform_points(poses: ArrayLike, points_src: ArrayLike) -> FloatArray:
    """Points (N, ..., 2) given in each pose's own frame -> the frame the poses are given in.

    With agent poses ``city_SE2_agent`` (N, 3): agent-frame points -> city frame (metres).
    """
    return apply_matrices(matrices_from_poses(poses), points_src)


def inverse_transform_points(poses: ArrayLike, points_dst: ArrayLike) -> FloatArray:
    """Points (N, ..., 2) in the poses' frame -> each pose's own frame (city -> agent frame)."""
    return apply_matrices(inverse_matrices_from_poses(poses), points_dst)


def rotate_vectors(angles: ArrayLike, vectors: ArrayLike) -> FloatArray:
    """Vectors (N, ..., 2) turned counter-clockwise by ``angles`` (N,) rad, row n by angle n.

    A direction (velocity, displacement) changes frame by rotation alone: with agent headings,
    ``rotate_vectors(heading, v_agent)`` is ``v_city`` and ``rotate_vectors(-heading, v_city)``
    is ``v_agent``.
    """
    a = np.asarray(angles, dtype=np.float64).reshape(-1)
    poses = np.column_stack([np.zeros((len(a), 2)), a])
    return transform_points(poses, vectors)
