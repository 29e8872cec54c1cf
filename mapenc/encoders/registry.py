"""Registries of encoders and decoders: names to builders, in the style of torchgeo's ``get_model``.

An encoder maps ``[N, C, H, W]`` to ``[N, latent_dim]`` and carries ``config`` (a frozen dataclass),
``latent_dim`` and ``input_shape`` ``(C, H, W)``. ``build_encoder(name, **asdict(e.config))``
rebuilds the same architecture, so a checkpoint is a ``state_dict`` plus the JSON of the config.

A decoder maps ``[N, latent_dim]`` to ``[N, C, H, W]`` logits (no sigmoid: the VAE owns the
likelihood) with the exact ``output_size`` asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from torch import nn

from mapenc.encoders.layers import ImageEncoder
from mapenc.errors import ConfigError

ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True)
class Entry:
    """One registered architecture: its config type, a builder and the preset's defaults.

    ``input_kind`` is ``"raster"`` for encoders of ``[N, C, H, W]`` grids, ``"vector"`` for
    encoders of polylines (``mapenc.encoders.vector``).
    """

    config_type: type[Any]
    build: Callable[[Any], nn.Module]
    summary: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    decoder: str | None = None
    input_kind: str = "raster"


ENCODERS: dict[str, Entry] = {}
DECODERS: dict[str, Entry] = {}


def make_config(config_type: type[ConfigT], values: Mapping[str, Any], who: str) -> ConfigT:
    """``config_type(**values)`` with lists turned into tuples (as JSON gives them back).

    Raises ConfigError naming ``who`` for a setting the config does not have.
    """
    names = {f.name for f in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"{who} has no setting {', '.join(unknown)}; its settings are {', '.join(sorted(names))}"
        )
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_type(**clean)


def _lookup(registry: Mapping[str, Entry], name: str, kind: str) -> Entry:
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}; registered: {', '.join(sorted(registry))}")
    return registry[name]


def build_encoder(name: str, **config: Any) -> ImageEncoder:
    """The encoder ``name`` with ``config`` overriding the preset's defaults.

    Returns an ``nn.Module`` mapping ``[N, C, H, W] -> [N, latent_dim]``.
    Raises ConfigError for an unknown name, an unknown setting or an input too small for the stack.
    """
    entry = _lookup(ENCODERS, name, "encoder")
    values = {**entry.defaults, **config}
    return cast(
        ImageEncoder, entry.build(make_config(entry.config_type, values, f"encoder {name!r}"))
    )


def list_encoders(input_kind: str | None = None) -> list[str]:
    """Names accepted by ``build_encoder``, sorted; only those of ``input_kind`` when given."""
    return sorted(
        name for name, entry in ENCODERS.items() if input_kind in (None, entry.input_kind)
    )


def encoder_input_kind(name: str) -> str:
    """``"raster"`` or ``"vector"``: what the encoder ``name`` takes."""
    return _lookup(ENCODERS, name, "encoder").input_kind


def build_decoder(
    name: str,
    *,
    latent_dim: int,
    out_channels: int,
    output_size: int | tuple[int, int] | list[int],
    **config: Any,
) -> nn.Module:
    """The decoder ``name``: ``[N, latent_dim] -> [N, out_channels, H, W]`` logits.

    ``output_size`` is ``(H, W)`` (an int means a square) and is met exactly.
    """
    entry = _lookup(DECODERS, name, "decoder")
    values = {
        **entry.defaults,
        **config,
        "latent_dim": latent_dim,
        "out_channels": out_channels,
        "output_size": output_size,
    }
    return entry.build(make_config(entry.config_type, values, f"decoder {name!r}"))


def list_decoders() -> list[str]:
    """Names accepted by ``build_decoder``, sorted."""
    return sorted(DECODERS)


def default_decoder_for(encoder_name: str) -> str:
    """The decoder that mirrors the encoder ``encoder_name`` (for the image VAE)."""
    entry = _lookup(ENCODERS, encoder_name, "encoder")
    if entry.decoder is None:
        raise ConfigError(f"encoder {encoder_name!r} has no mirror decoder")
    return entry.decoder


def register_encoder(name: str, entry: Entry) -> None:
    """Add an encoder under ``name``; a name is registered once."""
    if name in ENCODERS:
        raise ConfigError(f"encoder {name!r} is already registered")
    ENCODERS[name] = entry


def register_decoder(name: str, entry: Entry) -> None:
    """Add a decoder under ``name``; a name is registered once."""
    if name in DECODERS:
        raise ConfigError(f"decoder {name!r} is already registered")
    DECODERS[name] = entry


def encoder_settings(name: str) -> list[str]:
    """Setting names ``build_encoder(name, ...)`` accepts (the fields of its config dataclass)."""
    entry = _lookup(ENCODERS, name, "encoder")
    return [f.name for f in dataclasses.fields(entry.config_type)]
