"""Building blocks shared by the encoders and decoders: size arithmetic, norms, activations, blocks.

Sizes are ``(H, W)`` pairs in pixels. Every size is computed from the layer geometry (kernel,
stride, padding), never hard-coded, so a stack works for any input it fits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mapenc.errors import ConfigError

Size2 = tuple[int, int]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
NORMS = ("batch", "group", "none")


def pair(value: int | tuple[int, ...] | list[int], what: str) -> Size2:
    """``value`` as an ``(H, W)`` pair of positive ints (an int means a square)."""
    items = (value, value) if isinstance(value, int) else tuple(value)
    if len(items) != 2 or not all(isinstance(v, int) and v > 0 for v in items):
        raise ConfigError(f"{what} must be a positive int or a pair of them, got {value!r}")
    return (items[0], items[1])


def check_choice(value: str, choices: tuple[str, ...] | list[str], what: str) -> None:
    """Raise ConfigError when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``leaky_relu`` (slope 0.2), ``elu``, ...)."""
    check_choice(name, list(ACTIVATIONS), "activation")
    return ACTIVATIONS[name]()


def norm_layers(name: str, channels: int) -> list[nn.Module]:
    """Normalisation for ``channels`` feature maps: ``[]`` for ``none``.

    ``group`` uses up to 8 groups (the largest divisor of ``channels`` not above 8).
    """
    check_choice(name, NORMS, "norm")
    if name == "batch":
        return [nn.BatchNorm2d(channels)]
    if name == "group":
        return [nn.GroupNorm(math.gcd(8, channels), channels)]
    return []


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel, stride and padding of one conv or pooling layer, per axis ``(H, W)``."""

    kernel: Size2
    stride: Size2 = (1, 1)
    padding: Size2 = (0, 0)

    def output_size(self, size: Size2, where: str) -> Size2:
        """Spatial size after this layer: ``floor((n + 2p - k) / s) + 1`` per axis.

        Raises ConfigError naming ``where`` when the input is too small for the kernel.
        """
        out = tuple(
            (n + 2 * p - k) // s + 1
            for n, k, s, p in zip(size, self.kernel, self.stride, self.padding, strict=True)
        )
        if min(out) < 1 or any(
            n + 2 * p < k for n, k, p in zip(size, self.kernel, self.padding, strict=True)
        ):
            raise ConfigError(
                f"input too small: {where} gets a {size[0]}x{size[1]} map, smaller than its "
                f"{self.kernel[0]}x{self.kernel[1]} kernel (padding {self.padding})"
            )
        return (out[0], out[1])

    def transposed(self, in_channels: int, out_channels: int, target: Size2) -> nn.ConvTranspose2d:
        """The transposed conv that undoes this layer's resampling, landing exactly on ``target``.

        ``target`` is the size this layer was given; ``output_padding`` restores the pixels the
        forward floor division dropped.
        """
        source = self.output_size(target, "transposed layer")
        extra = tuple(
            t + 2 * p - k - (n - 1) * s
            for t, n, k, s, p in zip(
                target, source, self.kernel, self.stride, self.padding, strict=True
            )
        )
        return nn.ConvTranspose2d(
            in_channels,
            out_channels,
            kernel_size=self.kernel,
            stride=self.stride,
            padding=self.padding,
            output_padding=(extra[0], extra[1]),
        )

    def conv(self, in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
        """The ``nn.Conv2d`` with this geometry."""
        return nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=self.kernel,
            stride=self.stride,
            padding=self.padding,
            bias=bias,
        )


def same_geometry(kernel: int, stride: int = 1) -> ConvGeometry:
    """A ``kernel``x``kernel`` conv with ``kernel // 2`` padding: keeps the size at stride 1."""
    return ConvGeometry((kernel, kernel), (stride, stride), (kernel // 2, kernel // 2))


def conv_norm_act(
    geometry: ConvGeometry, in_channels: int, out_channels: int, norm: str, act: str
) -> list[nn.Module]:
    """Conv (biased only without a norm), norm, activation: ``[N, C_in, H, W] -> [N, C_out, H', W']``."""
    conv = geometry.conv(in_channels, out_channels, bias=norm == "none")
    return [conv, *norm_layers(norm, out_channels), activation(act)]


def residual_stack(channels: int, count: int, norm: str, act: str) -> list[nn.Module]:
    """``count`` stride-1 basic blocks that keep a ``[N, channels, H, W]`` map's shape."""
    return [BasicBlock(channels, channels, 1, norm, act) for _ in range(count)]


def trace_sizes(size: Size2, geometries: list[ConvGeometry], where: str) -> list[Size2]:
    """Sizes ``[size, after layer 1, ..., after layer K]`` through a stack of layers."""
    sizes = [size]
    for i, geometry in enumerate(geometries):
        sizes.append(geometry.output_size(sizes[-1], f"{where} layer {i + 1}"))
    return sizes


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with a shortcut, ``[N, C_in, H, W] -> [N, C_out, H', W']``.

    The first conv carries the stride; the shortcut is a 1x1 conv (stride ``stride``) when the
    channels or the stride change, the identity otherwise.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, norm: str, act: str
    ) -> None:
        super().__init__()
        bias = norm == "none"
        self.residual = nn.Sequential(
            *conv_norm_act(same_geometry(3, stride), in_channels, out_channels, norm, act),
            same_geometry(3).conv(out_channels, out_channels, bias=bias),
            *norm_layers(norm, out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                ConvGeometry((1, 1), (stride, stride)).conv(in_channels, out_channels, bias=bias),
                *norm_layers(norm, out_channels),
            )
        self.out_activation = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C_in, H, W] -> [N, C_out, ceil(H / stride), ceil(W / stride)]``."""
        return self.out_activation(self.residual(x) + self.shortcut(x))


def check_input(x: torch.Tensor, expected: tuple[int, ...], who: str) -> None:
    """Raise ConfigError unless ``x`` is ``[N, *expected]``."""
    if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        want = ", ".join(str(v) for v in expected)
        raise ConfigError(f"{who} expects input [N, {want}], got {list(x.shape)}")


def check_per_stage(**lists: tuple[int, ...]) -> None:
    """Raise ConfigError unless the per-stage lists are non-empty, equally long and positive."""
    lengths = {name: len(values) for name, values in lists.items()}
    if min(lengths.values()) == 0 or len(set(lengths.values())) != 1:
        raise ConfigError(f"need one entry per stage in each of {lengths}")
    for name, values in lists.items():
        check_positive(**{f"{name}[{i}]": v for i, v in enumerate(values)})


def check_norm_and_activation(norm: str, act: str) -> None:
    """Raise ConfigError for an unknown norm (checked first) or activation name."""
    check_choice(norm, NORMS, "norm")
    check_choice(act, list(ACTIVATIONS), "activation")


def check_non_negative(**values: int) -> None:
    """Raise ConfigError naming the first setting that is below zero."""
    for name, value in values.items():
        if value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")


def check_positive(**values: int | float) -> None:
    """Raise ConfigError naming the first setting that is not a positive number."""
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class EncoderInput:
    """Input and output settings of an image encoder: ``[N, in_channels, *input_size] -> [N, latent_dim]``.

    ``input_size`` may be given as an int (a square); it is stored as an ``(H, W)`` pair.
    """

    in_channels: int = 1
    input_size: tuple[int, int] = (64, 64)
    latent_dim: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", pair(self.input_size, "input_size"))


class ImageEncoder(nn.Module):
    """Base of every registered encoder: ``[N, C, H, W] -> [N, latent_dim]``.

    Attributes:
        config: the frozen dataclass the encoder was built from (``dataclasses.asdict`` -> JSON).
        input_shape: ``(C, H, W)`` the encoder accepts.
        latent_dim: length of the output vector.
    """

    def __init__(self, config: object, input_shape: tuple[int, int, int], latent_dim: int) -> None:
        super().__init__()
        self.config = config
        self.input_shape = input_shape
        self.latent_dim = latent_dim

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ConfigError unless ``x`` is ``[N, *input_shape]``."""
        check_input(x, self.input_shape, type(self).__name__)
