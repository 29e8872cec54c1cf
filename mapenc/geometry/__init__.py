"""Rigid transforms of the plane, named by the frames they map between."""

from mapenc.geometry.se2 import SE2, check_poses, wrap_angle

__all__ = ["SE2", "check_poses", "wrap_angle"]
