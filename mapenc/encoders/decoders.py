"""Decoders for the image VAE: ``[N, latent_dim] -> [N, C, H, W]`` logits of the exact size asked.

Each mirror decoder walks its encoder's layers backwards: the encoder's size trace for the
requested output ``(H, W)`` is computed first, then every layer becomes a transposed conv whose
``output_padding`` lands exactly on the size the encoder layer was given. The spatial-broadcast
decoder (Watters et al. 2019) tiles the latent over the grid and adds pixel coordinates.
No sigmoid at the end: the VAE applies the likelihood to the logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mapenc.encoders.layers import (
    ACTIVATIONS,
    ConvGeometry,
    Size2,
    activation,
    check_choice,
    check_input,
    check_positive,
    pair,
    same_geometry,
    trace_sizes,
)
from mapenc.encoders.registry import Entry, register_decoder


@dataclass(frozen=True)
class DecoderConfig:
    """What every decoder needs: latent length, output channels and exact output ``(H, W)``."""

    latent_dim: int
    out_channels: int
    output_size: tuple[int, int]

    def __post_init__(self) -> None:
        check_positive(latent_dim=self.latent_dim, out_channels=self.out_channels)
        object.__setattr__(self, "output_size", pair(self.output_size, "output_size"))


class ImageDecoder(nn.Module):
    """Base of every registered decoder: ``[N, latent_dim] -> [N, *output_shape]`` logits.

    Attributes:
        config: the frozen dataclass the decoder was built from.
        latent_dim: length of the input vector.
        output_shape: ``(C, H, W)`` of the output.
    """

    def __init__(self, config: DecoderConfig, body: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        self.output_shape = (config.out_channels, *config.output_size)
        self.body = body

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, latent_dim] -> [N, C, H, W]`` logits."""
        check_input(z, (self.latent_dim,), type(self).__name__)
        return self.body(z)


def mirror_stack(
    config: DecoderConfig,
    geometries: list[ConvGeometry],
    widths: list[int],
    act: Callable[[], nn.Module],
    after_upsample: Callable[[int], list[nn.Module]] | None = None,
) -> nn.Sequential:
    """Linear + unflatten + transposed convs undoing an encoder stack, ending on ``output_size``.

    ``geometries[i]`` and ``widths[i]`` are the encoder's layer ``i`` and its output channels. The
    linear layer produces the encoder's last map ``[widths[-1], h, w]``; each transposed conv but
    the last is followed by ``after_upsample(channels)`` (norm, blocks) and ``act()``.
    """
    sizes = trace_sizes(config.output_size, geometries, "mirrored encoder")
    last_h, last_w = sizes[-1]
    layers: list[nn.Module] = [
        nn.Linear(config.latent_dim, widths[-1] * last_h * last_w),
        nn.Unflatten(1, (widths[-1], last_h, last_w)),
        act(),
    ]
    channels_out = [config.out_channels, *widths[:-1]]
    for i in reversed(range(len(geometries))):
        layers.append(geometries[i].transposed(widths[i], channels_out[i], sizes[i]))
        if i > 0:
            layers.extend(after_upsample(channels_out[i]) if after_upsample else [])
            layers.append(act())
    return nn.Sequential(*layers)


class SeedGlobalDecoder(ImageDecoder):
    """Mirror of ``seed_global``: fc -> ``[128,1,1]`` -> ``[64,7,7]`` -> ``[32,14,14]`` -> ``[C,28,28]``.

    For another output size the last encoder conv's kernel is the whole map left after the two
    4x4 stride-2 convs, exactly as the 7x7 kernel is for 28x28.
    """

    def __init__(self, config: DecoderConfig) -> None:
        halve = ConvGeometry((4, 4), (2, 2), (1, 1))
        sizes = trace_sizes(config.output_size, [halve, halve], "seed_global mirror")
        geometries = [halve, halve, ConvGeometry(sizes[-1])]
        super().__init__(config, mirror_stack(config, geometries, [32, 64, 128], nn.ReLU))


class SeedSpatialDecoder(ImageDecoder):
    """Mirror of ``seed_spatial``: fc -> ``[1,14,14]`` -> ``[20,22,22]`` -> ``[10,48,48]`` -> ``[C,100,100]``."""

    def __init__(self, config: DecoderConfig) -> None:
        geometries = [
            ConvGeometry((5, 5), (2, 2)),
            ConvGeometry((5, 5), (2, 2)),
            ConvGeometry((9, 9)),
        ]
        body = mirror_stack(config, geometries, [10, 20, 1], lambda: nn.LeakyReLU(0.2))
        super().__init__(config, body)


@dataclass(frozen=True)
class SpatialBroadcastConfig(DecoderConfig):
    """Settings of the spatial-broadcast decoder: stride-1 conv widths, kernel, activation."""

    widths: tuple[int, ...] = (32, 32, 32, 32)
    kernel_size: int = 3
    activation: str = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(kernel_size=self.kernel_size, number_of_widths=len(self.widths))
        check_positive(**{f"widths[{i}]": w for i, w in enumerate(self.widths)})
        check_choice(self.activation, list(ACTIVATIONS), "activation")


class SpatialBroadcast(nn.Module):
    """``[N, D] -> [N, D + 2, H, W]``: the latent tiled over the grid plus x, y in [-1, 1]."""

    def __init__(self, size: Size2) -> None:
        super().__init__()
        ys = torch.linspace(-1.0, 1.0, size[0])
        xs = torch.linspace(-1.0, 1.0, size[1])
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))
        self.coords: torch.Tensor
        self.register_buffer("coords", grid[None], persistent=False)
        self.grid_size = size

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, D] -> [N, D + 2, H, W]`` (channels: the latent, then row and column coordinate)."""
        tiled = z[:, :, None, None].expand(-1, -1, *self.grid_size)
        return torch.cat([tiled, self.coords.expand(z.shape[0], -1, -1, -1)], dim=1)


class SpatialBroadcastDecoder(ImageDecoder):
    """Watters et al. (2019): broadcast the latent, append coordinates, stride-1 convs, 1x1 out.

    Padded convs keep the size, so the output is exactly ``output_size`` for any size (the paper
    broadcasts to a larger grid and uses unpadded convs; the result is the same kind of map).
    """

    def __init__(self, config: SpatialBroadcastConfig) -> None:
        layers: list[nn.Module] = [SpatialBroadcast(config.output_size)]
        channels = config.latent_dim + 2
        for width in config.widths:
            layers += [same_geometry(config.kernel_size).conv(channels, width)]
            layers += [activation(config.activation)]
            channels = width
        layers.append(nn.Conv2d(channels, config.out_channels, kernel_size=1))
        super().__init__(config, nn.Sequential(*layers))


register_decoder("seed_global", Entry(DecoderConfig, SeedGlobalDecoder, "mirror of seed_global"))
register_decoder("seed_spatial", Entry(DecoderConfig, SeedSpatialDecoder, "mirror of seed_spatial"))
register_decoder(
    "spatial_broadcast",
    Entry(SpatialBroadcastConfig, SpatialBroadcastDecoder, "Watters et al. 2019"),
)
