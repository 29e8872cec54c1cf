"""``resnet``: a narrow ResNet-18-like encoder (basic blocks ``[2, 2, 2, 2]``), global-pool bottleneck.

Stem (conv ``stem_kernel`` stride ``stem_stride``, optional 3x3/2 max pool), then one stage per width;
every stage but the first halves the size in its first block. Global average pooling and an fc give
the latent. Works for any input size and channel count the stack fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mapenc.encoders.layers import (
    BasicBlock,
    ConvGeometry,
    EncoderInput,
    ImageEncoder,
    Size2,
    check_norm_and_activation,
    check_per_stage,
    check_positive,
    conv_norm_act,
    same_geometry,
    trace_sizes,
)
from mapenc.encoders.registry import Entry, register_encoder

STEM_POOL = ConvGeometry((3, 3), (2, 2), (1, 1))


def stage_strides(n_stages: int) -> list[int]:
    """Stride of each stage's first block: 1 for the first stage, 2 after."""
    return [1] + [2] * (n_stages - 1)


@dataclass(frozen=True)
class ResNetStages:
    """Stem and stage settings of the ``resnet`` encoder, shared with its mirror decoder.

    Attributes:
        widths, blocks: channels and number of basic blocks of each stage (same length).
        stem_kernel, stem_stride: the first conv; ``stem_pool`` adds a 3x3 stride-2 max pool
            (ResNet-18 on ImageNet uses 7, 2 and True; the defaults suit 28-224 pixel maps).
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    stem_kernel: int = 3
    stem_stride: int = 2
    stem_pool: bool = False
    norm: str = "batch"
    activation: str = "relu"

    def check_stages(self, **positive: int) -> None:
        """Raise ConfigError for bad stage settings; ``positive`` are checked with the stem's."""
        check_per_stage(widths=self.widths, blocks=self.blocks)
        check_positive(**positive, stem_kernel=self.stem_kernel, stem_stride=self.stem_stride)
        check_norm_and_activation(self.norm, self.activation)

    def sizes(self, size: Size2) -> list[Size2]:
        """Sizes ``[input, after stem, (after pool), after stage 1, ..., after last stage]``.

        Raises ConfigError when ``size`` is too small for the stack.
        """
        stem = [same_geometry(self.stem_kernel, self.stem_stride)]
        pool = [STEM_POOL] if self.stem_pool else []
        stages = [same_geometry(3, s) for s in stage_strides(len(self.widths))]
        return trace_sizes(size, stem + pool + stages, "resnet")


@dataclass(frozen=True)
class ResNetConfig(ResNetStages, EncoderInput):
    """Settings of the ``resnet`` encoder (input ``[N, in_channels, *input_size]``).

    The fields of ``EncoderInput`` come first, then those of ``ResNetStages``.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_stages(in_channels=self.in_channels, latent_dim=self.latent_dim)


class ResNetEncoder(ImageEncoder):
    """``[N, C, H, W] -> stem -> stages -> global average pool -> fc -> [N, latent_dim]``."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__(config, (config.in_channels, *config.input_size), config.latent_dim)
        config.sizes(config.input_size)  # raises ConfigError when the input is too small
        stem = same_geometry(config.stem_kernel, config.stem_stride)
        layers = conv_norm_act(
            stem, config.in_channels, config.widths[0], config.norm, config.activation
        )
        if config.stem_pool:
            layers.append(nn.MaxPool2d(3, 2, 1))
        channels = config.widths[0]
        for width, n_blocks, stride in zip(
            config.widths, config.blocks, stage_strides(len(config.widths)), strict=True
        ):
            for i in range(n_blocks):
                block_stride = stride if i == 0 else 1
                layers.append(
                    BasicBlock(channels, width, block_stride, config.norm, config.activation)
                )
                channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, config.latent_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W] -> [N, latent_dim]``."""
        self.check_input(x)
        return self.head(self.features(x))


register_encoder(
    "resnet",
    Entry(ResNetConfig, ResNetEncoder, "ResNet-18-like, narrow widths", decoder="resnet"),
)
