"""``conv``: a configurable CNN encoder spanning both seed designs.

Stages of (downsampling conv or conv + pooling, norm, activation, optional residual blocks) shrink
the input; a bottleneck then turns the last ``[C, h, w]`` map into a vector:

- ``global``: collapse space (global average/max pooling, or a conv whose kernel is the whole map,
  as in ``seed_global``), then fc;
- ``spatial``: keep the ``h x w`` map but reduce it to ``spatial_channels`` with a 1x1 conv, flatten,
  fc (the ``seed_spatial`` idea);
- ``mixed``: both, concatenated before the fc.

All sizes are derived from the input size, so any ``input_size`` the stack fits works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mapenc.encoders.layers import (
    ConvGeometry,
    EncoderInput,
    ImageEncoder,
    Size2,
    activation,
    check_choice,
    check_non_negative,
    check_norm_and_activation,
    check_per_stage,
    check_positive,
    conv_norm_act,
    residual_stack,
    same_geometry,
    trace_sizes,
)
from mapenc.encoders.registry import Entry, register_encoder
from mapenc.errors import ConfigError

BOTTLENECKS = ("global", "spatial", "mixed")
DOWNSAMPLES = ("stride", "maxpool", "avgpool")
GLOBAL_POOLS = ("avg", "max", "conv")


@dataclass(frozen=True)
class ConvEncoderConfig(EncoderInput):
    """Settings of the ``conv`` encoder (input ``[N, in_channels, *input_size]``).

    Attributes:
        widths, strides: output channels and downsampling factor of each stage (same length).
        kernel_size: square kernel of every conv, padded by ``kernel_size // 2``.
        downsample: ``stride`` (strided conv) or ``maxpool``/``avgpool`` after a stride-1 conv.
        norm: ``batch``, ``group`` (up to 8 groups) or ``none``.
        residual_blocks: basic residual blocks appended to each stage.
        bottleneck: ``global``, ``spatial`` or ``mixed`` (see the module docstring).
        global_pool: how ``global`` collapses space: ``avg``, ``max`` or ``conv`` (whole-map kernel).
        spatial_channels: channels kept by the ``spatial`` 1x1 conv.
        dropout: dropout probability before the final fc.
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    kernel_size: int = 3
    downsample: str = "stride"
    norm: str = "batch"
    activation: str = "relu"
    residual_blocks: int = 0
    bottleneck: str = "global"
    global_pool: str = "avg"
    spatial_channels: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_per_stage(widths=self.widths, strides=self.strides)
        check_positive(
            in_channels=self.in_channels,
            latent_dim=self.latent_dim,
            kernel_size=self.kernel_size,
            spatial_channels=self.spatial_channels,
        )
        check_choice(self.downsample, DOWNSAMPLES, "downsample")
        check_norm_and_activation(self.norm, self.activation)
        check_choice(self.bottleneck, BOTTLENECKS, "bottleneck")
        check_choice(self.global_pool, GLOBAL_POOLS, "global_pool")
        check_non_negative(residual_blocks=self.residual_blocks)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")


def stage_geometries(config: ConvEncoderConfig, stride: int) -> list[ConvGeometry]:
    """Geometry of one stage's resampling layers: a strided conv, or a conv then a pool."""
    if config.downsample == "stride" or stride == 1:
        return [same_geometry(config.kernel_size, stride)]
    return [same_geometry(config.kernel_size), ConvGeometry((stride, stride), (stride, stride))]


def final_map_size(config: ConvEncoderConfig) -> Size2:
    """``(h, w)`` of the last feature map for the configured input size."""
    geometries = [g for s in config.strides for g in stage_geometries(config, s)]
    return trace_sizes(config.input_size, geometries, "conv encoder")[-1]


class ConvEncoder(ImageEncoder):
    """``[N, in_channels, H, W] -> stages -> [N, widths[-1], h, w] -> bottleneck -> [N, latent_dim]``."""

    def __init__(self, config: ConvEncoderConfig) -> None:
        super().__init__(config, (config.in_channels, *config.input_size), config.latent_dim)
        h, w = final_map_size(config)
        self.features = nn.Sequential(*self._stages(config))
        channels = config.widths[-1]
        heads: list[nn.Module] = []
        flat = 0
        if config.bottleneck in ("global", "mixed"):
            heads.append(nn.Sequential(*self._global_head(config, channels, (h, w))))
            flat += channels
        if config.bottleneck in ("spatial", "mixed"):
            reduce = nn.Conv2d(channels, config.spatial_channels, kernel_size=1)
            heads.append(nn.Sequential(reduce, activation(config.activation), nn.Flatten()))
            flat += config.spatial_channels * h * w
        self.heads = nn.ModuleList(heads)
        dropout = [nn.Dropout(config.dropout)] if config.dropout > 0 else []
        self.fc = nn.Sequential(*dropout, nn.Linear(flat, config.latent_dim))

    @staticmethod
    def _stages(config: ConvEncoderConfig) -> list[nn.Module]:
        layers: list[nn.Module] = []
        channels = config.in_channels
        for width, stride in zip(config.widths, config.strides, strict=True):
            first, *pool = stage_geometries(config, stride)
            layers += conv_norm_act(first, channels, width, config.norm, config.activation)
            if pool:
                pool_type = nn.MaxPool2d if config.downsample == "maxpool" else nn.AvgPool2d
                layers.append(pool_type(stride, stride))
            layers += residual_stack(width, config.residual_blocks, config.norm, config.activation)
            channels = width
        return layers

    @staticmethod
    def _global_head(config: ConvEncoderConfig, channels: int, size: Size2) -> list[nn.Module]:
        if config.global_pool == "avg":
            return [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if config.global_pool == "max":
            return [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
        whole_map = ConvGeometry(size).conv(channels, channels)
        return [whole_map, activation(config.activation), nn.Flatten()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W] -> [N, latent_dim]``."""
        self.check_input(x)
        features = self.features(x)
        flat = [head(features) for head in self.heads]
        return self.fc(flat[0] if len(flat) == 1 else torch.cat(flat, dim=1))


CONV_SUMMARY = "configurable stages + global/spatial/mixed bottleneck"
register_encoder("conv", Entry(ConvEncoderConfig, ConvEncoder, CONV_SUMMARY, decoder="conv"))

# Presets of ``conv``: name -> (summary, settings, mirror decoder). Besides one per bottleneck,
# the seed designs at any input size (``seed_spatial`` is fixed at 100x100, ``seed_global`` at
# 28x28). ``seed_spatial_conv``: two 5x5 stride-2 convs with 10 and 20 channels, LeakyReLU(0.2),
# no normalisation, a 1-channel map flattened into the fc; padded convs halve the input twice
# (28 -> 14 -> 7, a 49-element bottleneck; 64 -> 16x16 = 256), and the receptive field, 13 px, is
# the same share of a 28-px input (46 %) as seed_spatial's 45 px of 100. ``seed_global_conv``:
# two stride-2 convs with 32 and 64 channels, then a conv whose kernel is the whole remaining map.
SEED_SPATIAL_DESIGN = "seed_spatial's design at any input size: 10@/2 -> 20@/4 -> 1@/4 -> fc"
SEED_GLOBAL_DESIGN = (
    "seed_global's design at any input size: 32@/2 -> 64@/4 -> whole-map conv -> fc"
)
CONV_PRESETS: dict[str, tuple[str, dict[str, Any], str]] = {
    **{
        f"conv-{name}": (f"conv preset, {name} bottleneck", {"bottleneck": name}, f"conv-{name}")
        for name in BOTTLENECKS
    },
    "seed_spatial_conv": (
        SEED_SPATIAL_DESIGN,
        dict(widths=(10, 20), strides=(2, 2), kernel_size=5, norm="none", activation="leaky_relu",
             bottleneck="spatial", spatial_channels=1),
        "conv",
    ),
    "seed_global_conv": (
        SEED_GLOBAL_DESIGN,
        dict(widths=(32, 64), strides=(2, 2), kernel_size=3, norm="none", bottleneck="global",
             global_pool="conv"),
        "conv",
    ),
}  # fmt: skip
for _name, (_summary, _defaults, _decoder) in CONV_PRESETS.items():
    register_encoder(
        _name, Entry(ConvEncoderConfig, ConvEncoder, _summary, defaults=_defaults, decoder=_decoder)
    )
