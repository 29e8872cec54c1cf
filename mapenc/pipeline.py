"""The map branch as one piece for your own forecasting model: poses in, map latents out.

>>> branch = MapBranch(scenario_or_map, RasterSpec(size_px=(64, 64), pixel_size_m=1.0),
...                    "conv-spatial", latent_dim=32)
>>> latent = branch(poses_city)         # (N, 3) [x, y, heading] city frame -> [N, 32] tensor

``MapBranch`` is an ``nn.Module``: its encoder's parameters train with the rest of your model, and
``.to(device)`` moves it; rasters are drawn on the CPU and sent to the encoder's device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from mapenc.errors import ConfigError
from mapenc.maps.types import Scenario, VectorMap

if TYPE_CHECKING:
    from mapenc.raster import RasterSpec
    from mapenc.raster.rasterizer import Mode


def encoder_for_raster(
    name: str,
    in_channels: int,
    input_size: tuple[int, int],
    latent_dim: int,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The registered encoder ``name`` for ``[N, in_channels, *input_size]`` rasters.

    Settings the encoder does not have (the seed designs fix their input) are not passed; the
    built encoder must then accept the raster shape, else ConfigError.
    """
    from mapenc.encoders import build_encoder
    from mapenc.encoders.registry import ENCODERS

    settings: dict[str, Any] = {
        "in_channels": in_channels,
        "input_size": tuple(input_size),
        "latent_dim": latent_dim,
        **dict(options or {}),
    }
    entry = ENCODERS.get(name)
    if entry is not None:
        known = {f.name for f in dataclasses.fields(entry.config_type)}
        settings = {k: v for k, v in settings.items() if k in known}
    encoder = build_encoder(name, **settings)
    expected = (in_channels, *input_size)
    accepted: tuple[int, ...] = tuple(getattr(encoder, "input_shape", expected))
    if accepted != expected:
        raise ConfigError(
            f"encoder {name!r} takes {accepted} rasters, the raster spec gives {expected}"
        )
    return encoder


class MapBranch(nn.Module):
    """Rasterize around poses, then encode: ``forward(poses) -> [N, latent_dim]``.

    Args:
        source: a VectorMap, or a Scenario (needed for the scene layers ``agents``/``ego``/``history``).
        spec: the raster spec.
        encoder: an ``nn.Module`` taking ``[N, C, H, W]``, or a registered encoder name built for
            ``spec`` with ``latent_dim`` and ``options``.
        latent_dim: output size when ``encoder`` is a name.
        mode: Rasterizer mode, "fast" (default) or "exact".
        options: extra encoder settings when ``encoder`` is a name.
    """

    def __init__(
        self,
        source: VectorMap | Scenario,
        spec: RasterSpec,
        encoder: nn.Module | str = "conv-spatial",
        latent_dim: int = 32,
        mode: Mode = "fast",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from mapenc.raster import Rasterizer

        scenario = source if isinstance(source, Scenario) else None
        vector_map = source.map if isinstance(source, Scenario) else source
        self.spec = spec
        self.rasterizer = Rasterizer(vector_map, spec, mode=mode, scenario=scenario)
        if isinstance(encoder, str):
            encoder = encoder_for_raster(
                encoder, spec.num_channels, spec.size_px, latent_dim, options
            )
        self.encoder = encoder
        self.latent_dim = int(getattr(encoder, "latent_dim", latent_dim))

    @property
    def device(self) -> torch.device:
        """Where the encoder's parameters live (CPU for a parameter-free encoder)."""
        first = next(self.encoder.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def rasterize(
        self,
        poses: np.ndarray | torch.Tensor,
        t: int | None = None,
        track_ids: list[str] | None = None,
    ) -> torch.Tensor:
        """(N, C, H, W) float32 rasters on the encoder's device for (N, 3) city-frame poses."""
        if isinstance(poses, torch.Tensor):
            poses = poses.detach().cpu().double().numpy()
        rasters = self.rasterizer.rasterize(poses, np.float32, t=t, track_ids=track_ids)
        return torch.from_numpy(rasters).to(self.device)

    def forward(
        self,
        poses: np.ndarray | torch.Tensor,
        t: int | None = None,
        track_ids: list[str] | None = None,
    ) -> torch.Tensor:
        """[N, latent_dim] map latents for (N, 3) city-frame ``[x, y, heading]`` poses.

        ``t`` and ``track_ids`` are needed only for scene layers (see ``Rasterizer.rasterize``).
        """
        latent: torch.Tensor = self.encoder(self.rasterize(poses, t, track_ids))
        return latent
