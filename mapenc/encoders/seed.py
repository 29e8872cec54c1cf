"""The two seed designs the package compares, written out layer by layer.

``seed_global`` collapses space entirely (``[N,1,28,28] -> [N,32,14,14] -> [N,64,7,7] ->
[N,128,1,1] -> fc``); ``seed_spatial`` is the Trajectron++ map encoder, which keeps a small map
(``[N,1,100,100] -> [N,10,48,48] -> [N,20,22,22] -> [N,1,14,14] -> flatten -> fc``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mapenc.encoders.layers import ImageEncoder, check_positive
from mapenc.encoders.registry import Entry, register_encoder
from mapenc.errors import ConfigError


@dataclass(frozen=True)
class SeedGlobalConfig:
    """Settings of ``seed_global``: only the latent size; the input is fixed at ``[N, 1, 28, 28]``."""

    latent_dim: int = 16

    def __post_init__(self) -> None:
        check_positive(latent_dim=self.latent_dim)


@dataclass(frozen=True)
class SeedSpatialConfig:
    """Settings of ``seed_spatial``; the input is fixed at ``[N, in_channels, 100, 100]``.

    ``in_channels`` is 1 for a digit; Trajectron++ gives the encoder every map layer as a
    channel, so a map raster of C layers takes ``in_channels=C`` (the first conv alone grows).
    ``dropout`` is applied to the output vector as in Trajectron++ (which uses 0.5 there); the
    default 0 suits a VAE encoder whose output feeds the posterior.
    """

    latent_dim: int = 16
    in_channels: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_positive(latent_dim=self.latent_dim, in_channels=self.in_channels)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")


class SeedGlobalEncoder(ImageEncoder):
    """``[N,1,28,28] -> [N,32,14,14] -> [N,64,7,7] -> [N,128,1,1] -> [N,latent_dim]``.

    Convs 4x4 stride 2 padding 1 halve 28 -> 14 -> 7; a 7x7 conv without padding then sees the
    whole 7x7 map and leaves 1x1. ReLU after each conv; a linear layer gives the latent.
    """

    def __init__(self, config: SeedGlobalConfig) -> None:
        super().__init__(config, (1, 28, 28), config.latent_dim)
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=7),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128, config.latent_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1, 28, 28] -> [N, latent_dim]``."""
        self.check_input(x)
        return self.head(self.features(x))


class SeedSpatialEncoder(ImageEncoder):
    """Trajectron++'s map encoder: ``[N,C,100,100] -> [N,10,48,48] -> [N,20,22,22] -> [N,1,14,14]``.

    Layer choice (unpadded convs, ``out = floor((n - k) / s) + 1``): 5x5 stride 2 gives
    100 -> 48, 5x5 stride 2 gives 48 -> 22, 9x9 stride 1 gives 22 -> 14. LeakyReLU(0.2) after each
    conv as in Trajectron++; the 1x14x14 map is flattened (196 values) into a linear layer.
    """

    def __init__(self, config: SeedSpatialConfig) -> None:
        super().__init__(config, (config.in_channels, 100, 100), config.latent_dim)
        self.features = nn.Sequential(
            nn.Conv2d(config.in_channels, 10, kernel_size=5, stride=2),
            nn.LeakyReLU(0.2),
            nn.Conv2d(10, 20, kernel_size=5, stride=2),
            nn.LeakyReLU(0.2),
            nn.Conv2d(20, 1, kernel_size=9),
            nn.LeakyReLU(0.2),
        )
        dropout = [nn.Dropout(config.dropout)] if config.dropout > 0 else []
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(14 * 14, config.latent_dim), *dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, in_channels, 100, 100] -> [N, latent_dim]``."""
        self.check_input(x)
        return self.head(self.features(x))


register_encoder(
    "seed_global",
    Entry(
        SeedGlobalConfig,
        SeedGlobalEncoder,
        "28x28 -> 32@14 -> 64@7 -> 128@1 -> fc: collapses space",
        decoder="seed_global",
    ),
)
register_encoder(
    "seed_spatial",
    Entry(
        SeedSpatialConfig,
        SeedSpatialEncoder,
        "Trajectron++: 100x100 -> 10@48 -> 20@22 -> 1@14 -> flatten -> fc: keeps a map",
        decoder="seed_spatial",
    ),
)
