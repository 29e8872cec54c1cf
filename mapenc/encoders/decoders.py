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
from functools import partial

import torch
from torch import nn

from mapenc.encoders.conv import BOTTLENECKS
from mapenc.encoders.layers import (
    ACTIVATIONS,
    BasicBlock,
    ConvGeometry,
    Size2,
    activation,
    check_choice,
    check_input,
    check_non_negative,
    check_norm_and_activation,
    check_per_stage,
    check_positive,
    norm_layers,
    pair,
    residual_stack,
    same_geometry,
    trace_sizes,
)
from mapenc.encoders.registry import Entry, register_decoder
from mapenc.encoders.resnet import ResNetStages


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
    head: list[nn.Module] | None = None,
) -> nn.Sequential:
    """Linear + unflatten + transposed convs undoing an encoder stack, ending on ``output_size``.

    ``geometries[i]`` and ``widths[i]`` are the encoder's layer ``i`` and its output channels. The
    linear layer (or ``head``, given ``[N, latent_dim]``) produces the encoder's last map
    ``[widths[-1], h, w]``; each transposed conv but the last is followed by
    ``after_upsample(channels)`` (default: ``[act()]``).
    """
    sizes = trace_sizes(config.output_size, geometries, "mirrored encoder")
    last_h, last_w = sizes[-1]
    if head is None:
        head = [
            nn.Linear(config.latent_dim, widths[-1] * last_h * last_w),
            nn.Unflatten(1, (widths[-1], last_h, last_w)),
        ]
    layers: list[nn.Module] = [*head, act()]
    channels_out = [config.out_channels, *widths[:-1]]
    for i in reversed(range(len(geometries))):
        layers.append(geometries[i].transposed(widths[i], channels_out[i], sizes[i]))
        if i > 0:
            layers.extend(after_upsample(channels_out[i]) if after_upsample else [act()])
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


@dataclass(frozen=True)
class ConvDecoderConfig(DecoderConfig):
    """Mirror of ``ConvEncoderConfig``: the same stage settings, read backwards."""

    widths: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    kernel_size: int = 3
    norm: str = "batch"
    activation: str = "relu"
    residual_blocks: int = 0
    bottleneck: str = "global"
    spatial_channels: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_per_stage(widths=self.widths, strides=self.strides)
        check_positive(kernel_size=self.kernel_size, spatial_channels=self.spatial_channels)
        check_norm_and_activation(self.norm, self.activation)
        check_choice(self.bottleneck, BOTTLENECKS, "bottleneck")
        check_non_negative(residual_blocks=self.residual_blocks)


class MixedUnflatten(nn.Module):
    """Mirror of the ``mixed`` bottleneck: ``[N, C + S*h*w] -> [N, C, h, w]``.

    The first ``C`` values are broadcast over the map (the global part); the ``S x h x w`` map is
    lifted to ``C`` channels by a 1x1 conv (the spatial part); the two are added.
    """

    def __init__(self, channels: int, spatial_channels: int, size: Size2) -> None:
        super().__init__()
        self.channels = channels
        self.unflatten = nn.Unflatten(1, (spatial_channels, *size))
        self.lift = nn.Conv2d(spatial_channels, channels, kernel_size=1)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        """``[N, C + S*h*w] -> [N, C, h, w]``."""
        global_part = flat[:, : self.channels, None, None]
        return global_part + self.lift(self.unflatten(flat[:, self.channels :]))


class ConvDecoder(ImageDecoder):
    """Mirror of the ``conv`` encoder (strided-conv stages), with the matching bottleneck.

    ``global``: fc -> ``[C,1,1]`` -> transposed conv over the whole ``h x w`` map; ``spatial``:
    fc -> ``[S,h,w]`` -> 1x1 transposed conv to ``C``; ``mixed``: both, added. Then one transposed
    conv (+ norm, activation, residual blocks) per stage, the last giving ``out_channels`` logits.
    """

    def __init__(self, config: ConvDecoderConfig) -> None:
        geometries = [same_geometry(config.kernel_size, s) for s in config.strides]
        h, w = trace_sizes(config.output_size, geometries, "conv decoder")[-1]
        widths = list(config.widths)
        head = None
        if config.bottleneck == "global":
            geometries, widths = [*geometries, ConvGeometry((h, w))], [*widths, widths[-1]]
        elif config.bottleneck == "spatial":
            geometries = [*geometries, ConvGeometry((1, 1))]
            widths = [*widths, config.spatial_channels]
        else:
            flat = widths[-1] + config.spatial_channels * h * w
            head = [
                nn.Linear(config.latent_dim, flat),
                MixedUnflatten(widths[-1], config.spatial_channels, (h, w)),
            ]

        def after_upsample(channels: int) -> list[nn.Module]:
            norm, act = config.norm, config.activation
            blocks = residual_stack(channels, config.residual_blocks, norm, act)
            return [*norm_layers(norm, channels), activation(act), *blocks]

        act = partial(activation, config.activation)
        super().__init__(
            config, mirror_stack(config, geometries, widths, act, after_upsample, head)
        )


@dataclass(frozen=True)
class ResNetDecoderConfig(ResNetStages, DecoderConfig):
    """Mirror of ``ResNetConfig``: the same stem and stage settings (``ResNetStages``), read backwards."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_stages()


class ResNetDecoder(ImageDecoder):
    """Mirror of ``resnet``: fc -> last map, then per stage (backwards) basic blocks and a nearest
    upsampling to the exact size the encoder stage was given; a 3x3 conv gives the logits."""

    def __init__(self, config: ResNetDecoderConfig) -> None:
        n_stages = len(config.widths)
        sizes = config.sizes(config.output_size)
        first_stage = len(sizes) - 1 - n_stages  # index in ``sizes`` of stage 1's input
        channels, (h, w) = config.widths[-1], sizes[-1]
        layers: list[nn.Module] = [
            nn.Linear(config.latent_dim, channels * h * w),
            nn.Unflatten(1, (channels, h, w)),
            activation(config.activation),
        ]
        current = sizes[-1]
        for stage in reversed(range(n_stages)):
            for _ in range(config.blocks[stage]):
                width = config.widths[stage]
                layers.append(BasicBlock(channels, width, 1, config.norm, config.activation))
                channels = width
            targets = [sizes[first_stage + stage]] if stage > 0 else sizes[first_stage::-1]
            for target in targets:
                if target != current:
                    layers.append(nn.Upsample(size=target, mode="nearest"))
                    current = target
        layers.append(same_geometry(3).conv(channels, config.out_channels))
        super().__init__(config, nn.Sequential(*layers))


register_decoder("conv", Entry(ConvDecoderConfig, ConvDecoder, "mirror of conv"))
for _bottleneck in BOTTLENECKS:
    register_decoder(
        f"conv-{_bottleneck}",
        Entry(
            ConvDecoderConfig,
            ConvDecoder,
            f"mirror of conv-{_bottleneck}",
            defaults={"bottleneck": _bottleneck},
        ),
    )
register_decoder("resnet", Entry(ResNetDecoderConfig, ResNetDecoder, "mirror of resnet"))
register_decoder("seed_global", Entry(DecoderConfig, SeedGlobalDecoder, "mirror of seed_global"))
register_decoder("seed_spatial", Entry(DecoderConfig, SeedSpatialDecoder, "mirror of seed_spatial"))
register_decoder(
    "spatial_broadcast",
    Entry(SpatialBroadcastConfig, SpatialBroadcastDecoder, "Watters et al. 2019"),
)
