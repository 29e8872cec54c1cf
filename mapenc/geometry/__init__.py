"""Rigid transforms of the plane, named by the frames they map between (``se2``), and the index
arithmetic of ragged arrays (``ragged``)."""

from mapenc.geometry.se2 import (
    SE2,
    apply_matrices,
    check_poses,
    inverse_matrices_from_poses,
    inverse_transform_points,
    matrices_from_poses,
    rotate_vectors,
    transform_points,
    wrap_angle,
)

__all__ = [
    "SE2",
    "apply_matrices",
    "check_poses",
    "inverse_matrices_from_poses",
    "inverse_transform_points",
    "matrices_from_poses",
    "rotate_vectors",
    "transform_points",
    "wrap_angle",
]
