"""A picture of one agent-centred raster: every layer as a panel, plus an RGB composite with the
agent's box, its history (blue) and its future (red) drawn through the raster's city -> pixel
transform (what `mapenc render` and the demo draw).

The agent faces right and its left is up, as in the raster itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mapenc.errors import ConfigError, MapencError
from mapenc.maps.io import load_map_or_scenario
from mapenc.maps.types import Scenario, Track, VectorMap
from mapenc.raster import LAYERS, Rasterizer, RasterSpec, points_to_pixels, to_rgb
from mapenc.raster.rgb import layer_intensity
from mapenc.raster.scene import box_polygons
from mapenc.raster.values import SIGNED
from mapenc.safeio import save_figure

MAP_LAYERS = (
    "drivable_area",
    "lane_boundaries",
    "centerlines",
    "crosswalks",
    "lane_heading_sin",
    "lane_heading_cos",
    "distance_to_centerline",
)
SCENE_LAYERS = ("history", "agents", "ego")


@dataclass(frozen=True)
class RenderConfig:
    """Settings of `mapenc render`.

    Attributes:
        path: map file, scenario file or scene folder.
        out: PNG to write.
        pose: (x, y, heading) city frame (metres, rad), or None with ``track``.
        track: track id to centre on (needs a scenario), with ``t``.
        t: time step of ``track`` (default: the scenario's current step when it names one (Waymo),
            else the last observed step of an AV2 scenario, 49, or the last step).
        layers: layer names; default: every map layer, plus the scene layers for a scenario.
        size_px: (H, W).
        pixel_size_m: metres per pixel.
        agent_at: agent position as fractions of (W, H).
        mode: Rasterizer mode (``mapenc.raster.MODES``).
        tracks, dt, heading_units: the generic format's tracks CSV, step and heading units
            ("rad" or "deg"; see `mapenc info`).
    """

    path: Path
    out: Path
    pose: tuple[float, float, float] | None = None
    track: str | None = None
    t: int | None = None
    layers: tuple[str, ...] | None = None
    size_px: tuple[int, int] = (224, 224)
    pixel_size_m: float = 0.5
    agent_at: tuple[float, float] = (0.25, 0.5)
    mode: str = "exact"
    tracks: Path | None = None
    dt: float | None = None
    heading_units: str | None = None

    def __post_init__(self) -> None:
        if (self.pose is None) == (self.track is None):
            raise ConfigError(
                f"{self.path}: give a pose (x, y, heading) or a track id, one of them"
            )


def render(config: RenderConfig) -> None:
    """Read ``config.path``, rasterize the requested agent and write the panels + composite PNG."""
    vector_map, scenario = load_map_or_scenario(
        config.path, config.tracks, config.dt, config.heading_units
    )
    render_loaded(config, vector_map, scenario)


def render_loaded(config: RenderConfig, vector_map: VectorMap, scenario: Scenario | None) -> None:
    """``render`` for a map (and scenario) already in memory; ``config.path`` only names them."""
    track, t = _chosen_track(config, scenario)
    layers = config.layers or (MAP_LAYERS + (SCENE_LAYERS if track is not None else ()))
    if scenario is None and any(LAYERS[n].from_scenario for n in layers):
        raise ConfigError(f"{config.path}: scene layers need a scenario with tracks")
    spec = RasterSpec(
        size_px=config.size_px,
        pixel_size_m=config.pixel_size_m,
        agent_at=config.agent_at,
        layers=layers,
    )
    rasterizer = Rasterizer(vector_map, spec, mode=config.mode, scenario=scenario)  # type: ignore[arg-type]
    if track is not None:
        assert t is not None
        pose = np.array([[*track.xy[t], track.heading[t]]])
        raster = rasterizer.rasterize(pose, t=t, track_ids=[track.id])[0]
    else:
        assert config.pose is not None
        pose = np.asarray([config.pose], dtype=np.float64)
        raster = rasterizer.rasterize(pose, t=t, track_ids=None)[0]
    _write_png(config, spec, raster, pose[0], track, t)


def _chosen_track(
    config: RenderConfig, scenario: Scenario | None
) -> tuple[Track | None, int | None]:
    """The track and step to centre on, or (None, t) for --pose."""
    if config.track is None:
        return None, config.t if scenario is not None else None
    if scenario is None:
        raise ConfigError(f"{config.path}: --track needs a scenario (a file or folder with tracks)")
    track = scenario.track(config.track)
    t = config.t
    if t is None:
        last_observed = scenario.current_step
        t = last_observed if last_observed is not None else min(49, scenario.num_steps - 1)
    if not 0 <= t < scenario.num_steps or not track.valid[t]:
        raise ConfigError(f"{config.path}: track {track.id} is not observed at step {t}")
    return track, t


def _write_png(
    config: RenderConfig,
    spec: RasterSpec,
    raster: np.ndarray,
    pose: np.ndarray,
    track: Track | None,
    t: int | None,
) -> None:
    try:
        import matplotlib
    except ImportError:
        raise MapencError(
            "render needs matplotlib; install it with `pip install mapenc[viz]`"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = spec.size_px
    extent = (0.0, float(w), float(h), 0.0)  # pixel (i, j) covers u in [j, j+1), v in [i, i+1)
    panels = len(spec.layers) + 1
    cols = min(4, panels)
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 3.2 * rows * h / w + 0.4), dpi=110, squeeze=False
    )
    try:
        for ax in axes.ravel():
            ax.set_axis_off()
        composite = axes.ravel()[0]
        composite.imshow(to_rgb(raster, spec.layers), extent=extent, interpolation="nearest")
        _draw_agent(composite, spec, pose, track, t)
        composite.set_xlim(0, w)
        composite.set_ylim(h, 0)
        composite.set_title("composite (agent faces right)", fontsize=8)
        for ax, name, channel in zip(axes.ravel()[1:], spec.layers, raster, strict=False):
            heading = LAYERS[name].codec == SIGNED
            shown = channel if heading else layer_intensity(channel, name)
            ax.imshow(
                shown,
                extent=extent,
                cmap="coolwarm" if heading else "gray",
                vmin=-1 if heading else 0,
                vmax=1,
                interpolation="nearest",
            )
            ax.set_title(name, fontsize=8)
        fig.suptitle(
            f"{Path(config.path).name}  pose=({pose[0]:.1f}, {pose[1]:.1f}, {pose[2]:.2f})",
            fontsize=9,
        )
        save_figure(fig, config.out, bbox_inches="tight")
    finally:
        plt.close(fig)


def _draw_agent(
    ax: Any, spec: RasterSpec, pose: np.ndarray, track: Track | None, t: int | None
) -> None:
    """The agent's box, and with a track its past (blue) and future (red) centres, in pixels."""
    raster_from_city = spec.raster_from_city(pose[None])[0]
    length, width = (track.length, track.width) if track is not None else (4.5, 2.0)
    box = box_polygons(pose[None, :2], pose[2:3], np.array([length]), np.array([width]))[0]
    corners = points_to_pixels(raster_from_city, np.asarray(box.exterior.coords))
    ax.plot(corners[:, 0], corners[:, 1], color="#ff3b30", linewidth=1.2)
    if track is None or t is None:
        return
    for steps, colour, label in (
        (slice(0, t + 1), "#3b82f6", "history"),
        (slice(t, None), "#ef4444", "future"),
    ):
        xy = track.xy[steps][track.valid[steps]]
        if len(xy) > 1:
            uv = points_to_pixels(raster_from_city, xy)
            ax.plot(uv[:, 0], uv[:, 1], color=colour, linewidth=1.0, label=label)
    ax.legend(loc="lower right", fontsize=6)
