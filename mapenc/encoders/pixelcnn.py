"""An autoregressive decoder in the manner of PixelVAE (Gulrajani et al. 2017).

A registered decoder (the conditioning network, ``[N, D] -> [N, hidden, H, W]``) turns ``z``
into a feature map; a short stack of masked convolutions (van den Oord et al. 2016) reads the
image itself and predicts each value from ``z`` and the values before it in raster order (rows
top to bottom, columns left to right, channels in order within a pixel):

    p(x | z) = prod_i p(x_i | x_<i, z)

Training and likelihood evaluation take one parallel pass (``forward(z, x)``, teacher forcing);
drawing an image takes one pass per value (``sample``). The latent carries the global shape, the
masked stack the local strokes, so the bound on ``-log p(x)`` is far tighter than a factorised
decoder's at the same latent size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from mapenc.encoders.decoders import DecoderConfig
from mapenc.encoders.layers import (
    check_choice,
    check_input,
    check_non_negative,
    check_positive,
)
from mapenc.encoders.registry import DECODERS, Entry, build_decoder, register_decoder
from mapenc.errors import ConfigError

MaskType = Literal["A", "B"]


class MaskedConv2d(nn.Conv2d):
    """Causal ``k x k`` convolution (odd ``k``, stride 1, size kept).

    The output at pixel ``(r, c)`` in channel group ``g`` sees input pixels before ``(r, c)`` in
    raster order and, at ``(r, c)`` itself, input channel groups ``< g`` (type ``A``, for the image)
    or ``<= g`` (type ``B``, for hidden maps). Channels are split into ``image_channels`` groups
    of consecutive indices, so with one image channel type A hides the centre and type B shows it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: MaskType,
        image_channels: int,
    ) -> None:
        if kernel_size % 2 == 0:
            raise ConfigError(f"masked convolution: kernel_size={kernel_size} must be odd")
        if min(in_channels, out_channels) < image_channels:
            raise ConfigError(
                f"masked convolution {in_channels}->{out_channels}: every one of the "
                f"{image_channels} image channels needs a channel group"
            )
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        centre = kernel_size // 2
        mask = torch.zeros_like(self.weight)
        mask[:, :, :centre, :] = 1.0
        mask[:, :, centre, :centre] = 1.0
        in_group = torch.arange(in_channels) * image_channels // in_channels
        out_group = torch.arange(out_channels) * image_channels // out_channels
        if mask_type == "A":
            allowed = in_group[None, :] < out_group[:, None]
        else:
            allowed = in_group[None, :] <= out_group[:, None]
        mask[:, :, centre, centre] = allowed.to(mask.dtype)
        self.mask: torch.Tensor
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, in, H, W] -> [N, out, H, W]`` with the causal mask applied to the kernel."""
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


@dataclass(frozen=True)
class PixelCNNDecoderConfig(DecoderConfig):
    """Settings of the autoregressive decoder.

    ``conditioning``: registered decoder that maps ``z`` to ``hidden`` feature maps of the output
    size; ``hidden``: channels of the masked stack; ``first_kernel``: the type-A convolution over
    the image; ``masked_layers``: residual type-B ``3 x 3`` layers after it.
    """

    conditioning: str = "conv"
    hidden: int = 32
    first_kernel: int = 7
    masked_layers: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(hidden=self.hidden, first_kernel=self.first_kernel)
        check_non_negative(masked_layers=self.masked_layers)
        check_choice(self.conditioning, sorted(set(DECODERS) - {"pixelcnn"}), "conditioning")


class PixelCNNDecoder(nn.Module):
    """``forward(z [N, D], x [N, C, H, W]) -> [N, C, H, W]`` Bernoulli logits of ``x_i | x_<i, z``.

    Attributes:
        config: the frozen dataclass the decoder was built from.
        latent_dim: length of ``z``.
        output_shape: ``(C, H, W)``.
        autoregressive: ``True``: the VAE passes the target image to ``forward``.
        vertical_reach: how many rows above a pixel its prediction can see.
    """

    autoregressive = True

    def __init__(self, config: PixelCNNDecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        self.output_shape = (config.out_channels, *config.output_size)
        channels = config.out_channels
        self.conditioning = build_decoder(
            config.conditioning,
            latent_dim=config.latent_dim,
            out_channels=config.hidden,
            output_size=config.output_size,
        )
        self.first = MaskedConv2d(channels, config.hidden, config.first_kernel, "A", channels)
        self.masked = nn.ModuleList(
            MaskedConv2d(config.hidden, config.hidden, 3, "B", channels)
            for _ in range(config.masked_layers)
        )
        self.out = MaskedConv2d(config.hidden, channels, 1, "B", channels)
        self.vertical_reach = config.first_kernel // 2 + config.masked_layers

    def logits(self, condition: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The masked stack on conditioning features ``[N, hidden, h, W]`` and image rows
        ``[N, C, h, W]`` -> logits ``[N, C, h, W]``."""
        hidden = self.first(x) + condition
        for layer in self.masked:
            hidden = hidden + layer(F.relu(hidden))
        return self.out(F.relu(hidden))

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, C, H, W]`` of every value given ``z [N, D]`` and the values before it in ``x``."""
        check_input(z, (self.latent_dim,), type(self).__name__)
        check_input(x, self.output_shape, type(self).__name__)
        return self.logits(self.conditioning(z), x)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Binary images ``[N, C, H, W]`` drawn value by value from ``p(x | z)``, ``z [N, D]``.

        Each step recomputes only the rows the current one can see (``vertical_reach`` above).
        """
        check_input(z, (self.latent_dim,), type(self).__name__)
        condition = self.conditioning(z)
        channels, height, width = self.output_shape
        image = torch.zeros((z.shape[0], *self.output_shape), device=z.device, dtype=z.dtype)
        for row in range(height):
            top = max(0, row - self.vertical_reach)
            window = slice(top, row + 1)
            for column in range(width):
                for channel in range(channels):
                    logits = self.logits(condition[:, :, window], image[:, :, window])
                    p = logits[:, channel, -1, column].sigmoid()
                    noise = torch.rand(p.shape, generator=generator).to(p.device)
                    image[:, channel, row, column] = (noise < p).to(image.dtype)
        return image


register_decoder(
    "pixelcnn",
    Entry(
        PixelCNNDecoderConfig, PixelCNNDecoder, "PixelVAE-style: conditioning net + masked convs"
    ),
)
