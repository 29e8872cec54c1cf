"""Encoders and decoders: exact shapes of the seed designs, every architecture runs, configs round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from mapenc.encoders import (
    build_decoder,
    build_encoder,
    default_decoder_for,
    list_decoders,
    list_encoders,
)
from mapenc.errors import ConfigError


def feature_shapes(model: nn.Module, x: torch.Tensor) -> list[list[int]]:
    """Output shape of every conv of ``model`` for input ``x``, in execution order."""
    shapes: list[list[int]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(list(out.shape)))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    model(x)
    for hook in hooks:
        hook.remove()
    return shapes


def test_seed_global_shapes_layer_by_layer() -> None:
    encoder = build_encoder("seed_global", latent_dim=16)
    x = torch.randn(3, 1, 28, 28)
    assert feature_shapes(encoder, x) == [[3, 32, 14, 14], [3, 64, 7, 7], [3, 128, 1, 1]]
    assert encoder(x).shape == (3, 16)
    assert encoder.input_shape == (1, 28, 28)
    assert encoder.latent_dim == 16


def test_seed_spatial_shapes_layer_by_layer() -> None:
    encoder = build_encoder("seed_spatial", latent_dim=12)
    x = torch.randn(2, 1, 100, 100)
    assert feature_shapes(encoder, x) == [[2, 10, 48, 48], [2, 20, 22, 22], [2, 1, 14, 14]]
    assert encoder(x).shape == (2, 12)
    assert encoder.input_shape == (1, 100, 100)


def test_encoder_rejects_wrong_input_shape() -> None:
    encoder = build_encoder("seed_global")
    with pytest.raises(ConfigError, match=r"\[N, 1, 28, 28\]"):
        encoder(torch.zeros(2, 1, 32, 32))


@pytest.mark.parametrize("size", [(28, 28), (64, 64), (100, 100), (37, 61)])
@pytest.mark.parametrize("name", ["seed_global", "spatial_broadcast"])
def test_decoder_output_size_is_exact(name: str, size: tuple[int, int]) -> None:
    decoder = build_decoder(name, latent_dim=4, out_channels=2, output_size=size, **small(name))
    z = torch.randn(2, 4, requires_grad=True)
    out = decoder(z)
    assert out.shape == (2, 2, *size)
    out.square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_seed_spatial_decoder_mirrors_the_trace() -> None:
    decoder = build_decoder("seed_spatial", latent_dim=4, out_channels=1, output_size=100)
    shapes = [list(s) for s in feature_shapes_transposed(decoder, torch.randn(2, 4))]
    assert shapes == [[2, 20, 22, 22], [2, 10, 48, 48], [2, 1, 100, 100]]


def feature_shapes_transposed(model: nn.Module, z: torch.Tensor) -> list[torch.Size]:
    """Output shape of every transposed conv of ``model``, in execution order."""
    shapes: list[torch.Size] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(out.shape))
        for m in model.modules()
        if isinstance(m, nn.ConvTranspose2d)
    ]
    model(z)
    for hook in hooks:
        hook.remove()
    return shapes


def small(name: str) -> dict[str, object]:
    """Narrow widths for the fast tests, where the architecture has widths."""
    return {"widths": (4, 4)} if name == "spatial_broadcast" else {}


@pytest.mark.parametrize("name", ["seed_global", "seed_spatial"])
def test_config_round_trip_rebuilds_the_same_architecture(name: str) -> None:
    encoder = build_encoder(name, latent_dim=7)
    saved = json.loads(json.dumps(dataclasses.asdict(encoder.config)))
    rebuilt = build_encoder(name, **saved)
    assert rebuilt.config == encoder.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in encoder.state_dict().items()
    }


def test_every_encoder_has_a_registered_mirror_decoder() -> None:
    for name in list_encoders():
        assert default_decoder_for(name) in list_decoders()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: build_encoder("no_such_encoder"), "unknown encoder 'no_such_encoder'"),
        (lambda: build_encoder("seed_global", widht=3), "no setting widht"),
        (lambda: build_encoder("seed_global", latent_dim=0), "latent_dim must be positive"),
        (lambda: default_decoder_for("nope"), "unknown encoder"),
        (
            lambda: build_decoder("no_such", latent_dim=2, out_channels=1, output_size=8),
            "unknown decoder",
        ),
        (
            lambda: build_decoder("seed_spatial", latent_dim=2, out_channels=1, output_size=28),
            "input too small",
        ),
    ],
)
def test_bad_config_raises_config_error(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]
