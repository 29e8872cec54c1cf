"""Matplotlib drawings of a VectorMap and a Scenario's tracks, in the city frame (metres).

matplotlib (``pip install mapenc[viz]``) is needed only by the caller, who passes an Axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from mapenc.errors import MapencError
from mapenc.maps.types import MarkType, Scenario, VectorMap
from mapenc.safeio import save_figure

DRIVABLE_COLOUR = "#d9d9d9"
BOUNDARY_COLOUR = "#404040"
CENTERLINE_COLOUR = "#4a90d9"
CROSSWALK_COLOUR = "#f5c542"
ROAD_EDGE_COLOUR = "#000000"
ROAD_LINE_COLOUR = "#b8860b"
SPEED_BUMP_COLOUR = "#8c564b"
STOP_SIGN_COLOUR = "#d62728"
FOCAL_COLOUR = "#d62728"


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    """The polygons inside a (Multi)Polygon or collection."""
    if isinstance(geom, Polygon):
        return [] if geom.is_empty else [geom]
    return [p for part in getattr(geom, "geoms", []) for p in _polygons(part)]


def _fill(ax: Any, geom: BaseGeometry, **style: Any) -> None:
    """Fill the polygons of ``geom``, holes left open (one compound path per polygon)."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    for poly in _polygons(geom):
        rings = [np.asarray(poly.exterior.coords)] + [np.asarray(r.coords) for r in poly.interiors]
        vertices = np.concatenate(rings)
        codes = np.concatenate(
            [
                [MplPath.MOVETO] + [MplPath.LINETO] * (len(r) - 2) + [MplPath.CLOSEPOLY]
                for r in rings
            ]
        )
        ax.add_patch(PathPatch(MplPath(vertices, codes), **style))


def _mark_style(mark: MarkType) -> str:
    if mark.is_dashed:
        return "--"
    if mark in {MarkType.NONE, MarkType.VIRTUAL}:
        return ":"
    return "-"


def plot_map(ax: Any, vector_map: VectorMap) -> None:
    """Draw the drivable area (filled; driveways too), crosswalks, speed bumps, lane boundaries
    (line style by mark: solid, dashed, dotted for none/virtual), centerlines, road edges, road
    lines (by mark) and stop signs (octagons) on a matplotlib Axes."""
    _fill(ax, vector_map.area, facecolor=DRIVABLE_COLOUR, edgecolor="none", zorder=0)
    for driveway in vector_map.driveways:
        _fill(ax, driveway, facecolor=DRIVABLE_COLOUR, edgecolor="none", zorder=0)
    for bump in vector_map.speed_bumps:
        _fill(ax, bump, facecolor=SPEED_BUMP_COLOUR, edgecolor="none", alpha=0.6, zorder=1)
    for crosswalk in vector_map.crosswalks:
        _fill(ax, crosswalk, facecolor=CROSSWALK_COLOUR, edgecolor="none", alpha=0.6, zorder=1)
    for lane in vector_map.lanes:
        for line, mark in (
            (lane.left_boundary, lane.left_mark),
            (lane.right_boundary, lane.right_mark),
        ):
            ax.plot(*line.T, color=BOUNDARY_COLOUR, lw=0.7, ls=_mark_style(mark), zorder=2)
        ax.plot(*lane.centerline.T, color=CENTERLINE_COLOUR, lw=0.5, zorder=2)
    for edge in vector_map.road_edges:
        ax.plot(*edge.T, color=ROAD_EDGE_COLOUR, lw=1.2, zorder=2)
    for road_line in vector_map.road_lines:
        style = _mark_style(road_line.mark)
        ax.plot(*road_line.points.T, color=ROAD_LINE_COLOUR, lw=0.9, ls=style, zorder=2)
    for sign in vector_map.stop_signs:
        ax.plot(*sign.position, "8", ms=5, color=STOP_SIGN_COLOUR, zorder=3)
    xmin, ymin, xmax, ymax = vector_map.bounds
    if xmax > xmin and ymax > ymin:
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")


def plot_tracks(ax: Any, scenario: Scenario) -> None:
    """Draw each track's valid positions as a line and its last valid position as a dot;
    the focal track (when named) in red and on top."""
    for track in scenario.tracks:
        focal = track.id == scenario.focal_track_id
        xy = track.xy[track.valid]
        if len(xy) == 0:
            continue
        colour = FOCAL_COLOUR if focal else None
        (line,) = ax.plot(*xy.T, lw=1.5 if focal else 0.8, color=colour, zorder=4 if focal else 3)
        ax.plot(*xy[-1], "o", ms=3, color=line.get_color(), zorder=4 if focal else 3)


def draw_map_png(vector_map: VectorMap, scenario: Scenario | None, path: Path) -> None:
    """Draw the map (and tracks) into a PNG at ``path`` with matplotlib's Agg backend."""
    try:
        import matplotlib
    except ImportError:
        raise MapencError(
            "--png needs matplotlib; install it with `pip install mapenc[viz]`"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 8), dpi=120)
    try:
        plot_map(ax, vector_map)
        if scenario is not None:
            plot_tracks(ax, scenario)
        ax.set_title(Path(vector_map.source).name or "map")
        save_figure(fig, path, bbox_inches="tight")
    finally:
        plt.close(fig)
