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


@pytest.fixture(autouse=True)
def _fixed_seed() -> None:
    """Tiny random networks can have every ReLU dead on a draw; fix the draw."""
    torch.manual_seed(0)


def feature_shapes(
    model: nn.Module, x: torch.Tensor, layer_type: type[nn.Module] = nn.Conv2d
) -> list[list[int]]:
    """Output shape of every ``layer_type`` layer of ``model`` for input ``x``, in execution order."""
    shapes: list[list[int]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(list(out.shape)))
        for m in model.modules()
        if isinstance(m, layer_type)
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


INPUT_SIZES = [(28, 28), (64, 64), (100, 100), (224, 224), (37, 61)]
TINY: dict[str, dict[str, object]] = {
    "conv": {"widths": (4, 4, 4, 4)},
    "resnet": {"widths": (4, 4, 4, 4), "blocks": (1, 1, 1, 1)},
    "spatial_broadcast": {"widths": (4, 4)},
    "pixelcnn": {"hidden": 4},
}


def tiny(name: str) -> dict[str, object]:
    """Narrow widths so the tests stay fast; the architecture is otherwise the registered one."""
    family = "conv" if name.startswith("conv") else name
    return dict(TINY.get(family, {}))


FREE_INPUT = [n for n in list_encoders("raster") if not n.startswith("seed")]


@pytest.mark.parametrize("size", INPUT_SIZES)
@pytest.mark.parametrize("name", FREE_INPUT)
def test_every_encoder_runs_forward_and_backward(name: str, size: tuple[int, int]) -> None:
    encoder = build_encoder(name, in_channels=3, input_size=size, latent_dim=5, **tiny(name))
    x = torch.randn(2, 3, *size, requires_grad=True)
    z = encoder(x)
    assert z.shape == (2, 5)
    z.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in encoder.parameters())


@pytest.mark.parametrize("size", INPUT_SIZES)
@pytest.mark.parametrize("bottleneck", ["global", "spatial", "mixed"])
@pytest.mark.parametrize(
    "variant",
    [
        {"norm": "group", "activation": "leaky_relu", "residual_blocks": 1},
        {"downsample": "maxpool", "norm": "none", "global_pool": "max"},
        {"downsample": "avgpool", "global_pool": "conv", "strides": (2, 1, 2, 2)},
    ],
)
def test_conv_variants_run_for_every_bottleneck(
    bottleneck: str, size: tuple[int, int], variant: dict[str, object]
) -> None:
    settings = {"widths": (4, 4, 4, 4), **variant}
    encoder = build_encoder("conv", input_size=size, bottleneck=bottleneck, **settings)
    z = encoder(torch.randn(2, 1, *size))
    assert z.shape == (2, encoder.latent_dim)
    z.sum().backward()


def test_conv_presets_are_comparable() -> None:
    counts = {
        name: sum(p.numel() for p in build_encoder(name).parameters())
        for name in ("conv-global", "conv-spatial", "conv-mixed")
    }
    print("parameters of the conv presets at their default input:", counts)
    assert max(counts.values()) <= 1.5 * min(counts.values())
    assert len({build_encoder(name).latent_dim for name in counts}) == 1


@pytest.mark.parametrize("size", INPUT_SIZES)
@pytest.mark.parametrize("name", [n for n in list_decoders() if n != "seed_spatial"])
def test_decoder_output_size_is_exact(name: str, size: tuple[int, int]) -> None:
    if name == "seed_global" and size == (224, 224):
        pytest.skip("the literal mirror has a 56x56 whole-map kernel at 224: 25M weights, slow")
    decoder = build_decoder(name, latent_dim=4, out_channels=2, output_size=size, **tiny(name))
    z = torch.randn(2, 4, requires_grad=True)
    if getattr(decoder, "autoregressive", False):  # also reads the image it predicts
        out = decoder(z, torch.rand(2, 2, *size))
    else:
        out = decoder(z)
    assert out.shape == (2, 2, *size)
    out.square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_seed_spatial_decoder_mirrors_the_trace() -> None:
    decoder = build_decoder("seed_spatial", latent_dim=4, out_channels=1, output_size=100)
    shapes = feature_shapes(decoder, torch.randn(2, 4), nn.ConvTranspose2d)
    assert shapes == [[2, 20, 22, 22], [2, 10, 48, 48], [2, 1, 100, 100]]


@pytest.mark.parametrize("bottleneck", ["global", "spatial", "mixed"])
def test_conv_decoder_mirrors_each_bottleneck(bottleneck: str) -> None:
    decoder = build_decoder(
        "conv", latent_dim=3, out_channels=1, output_size=(37, 61), bottleneck=bottleneck
    )
    transposed = feature_shapes(decoder, torch.randn(2, 3), nn.ConvTranspose2d)
    shapes = [tuple(s[1:]) for s in transposed]
    assert shapes[-4:] == [(64, 5, 8), (32, 10, 16), (16, 19, 31), (1, 37, 61)]


def state_shapes(model: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list_encoders())
def test_encoder_config_round_trip_rebuilds_the_same_architecture(name: str) -> None:
    encoder = build_encoder(name, latent_dim=7)
    saved = json.loads(json.dumps(dataclasses.asdict(encoder.config)))
    rebuilt = build_encoder(name, **saved)
    assert rebuilt.config == encoder.config
    assert state_shapes(rebuilt) == state_shapes(encoder)


@pytest.mark.parametrize("name", list_decoders())
def test_decoder_config_round_trip_rebuilds_the_same_architecture(name: str) -> None:
    decoder = build_decoder(name, latent_dim=5, out_channels=2, output_size=100)
    saved = json.loads(json.dumps(dataclasses.asdict(decoder.config)))
    rebuilt = build_decoder(name, **saved)
    assert rebuilt.config == decoder.config
    assert state_shapes(rebuilt) == state_shapes(decoder)


def test_presets_differ_only_in_their_defaults() -> None:
    spatial = build_encoder("conv-spatial")
    assert spatial.config.bottleneck == "spatial"
    assert build_encoder("conv-spatial", bottleneck="mixed").config.bottleneck == "mixed"


def test_every_raster_encoder_has_a_registered_mirror_decoder() -> None:
    for name in list_encoders("raster"):
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
        (lambda: build_encoder("conv", bottleneck="sideways"), "unknown bottleneck 'sideways'"),
        (
            lambda: build_encoder("conv", input_size=(8, 8), downsample="maxpool"),
            "input too small: conv encoder layer 8 gets a 1x1 map",
        ),
        (lambda: build_encoder("conv", widths=(4, 8), strides=(2,)), "one entry per stage"),
        (lambda: build_encoder("conv", norm="layer"), "unknown norm 'layer'"),
        (lambda: build_encoder("conv", input_size=(0, 5)), "input_size must be"),
    ],
)
def test_bad_config_raises_config_error(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]
