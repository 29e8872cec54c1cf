"""TrajectoryCVAE: shapes, the map branch switch, the constant-velocity start, a learning step."""

from __future__ import annotations

import pytest
import torch

from mapenc.errors import ConfigError
from mapenc.vae import TrajectoryCVAE
from mapenc.vae.trajectory import TrajCVAEConfig

SMALL = {
    "raster_channels": 3,
    "raster_size": (32, 32),
    "map_latent_dim": 8,
    "hidden_dim": 16,
    "z_dim": 4,
    "history_steps": 4,
    "future_steps": 6,
    "map_encoder_options": (("widths", (4, 8)), ("strides", (2, 2))),
}


def _batch(n: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    past = torch.cumsum(torch.rand(n, 5, 2, generator=g), dim=1)
    return {
        "past": past - past[:, -1:],
        "past_heading": torch.zeros(n, 5),
        "velocity": torch.tensor([[8.0, 0.5]]).repeat(n, 1),
        "future": torch.cumsum(torch.ones(n, 6, 2), dim=1),
        "raster": torch.rand(n, 3, 32, 32, generator=g),
    }


def test_sample_and_loss_shapes() -> None:
    model = TrajectoryCVAE(TrajCVAEConfig(**SMALL))  # type: ignore[arg-type]
    batch = _batch()
    futures = model.sample(batch, k=6)
    assert futures.shape == (5, 6, 6, 2)
    loss, metrics = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(metrics) == {"nll", "kl", "variety_m"}
    x = model.encode_condition(batch)
    assert x.shape == (5, 16 + 2 + 8)
    assert model.q_z_xy_params(x, batch["future"])[0].shape == (5, 4)
    assert model.p_z_x_params(x)[1].shape == (5, 4)


def test_no_map_has_no_map_parameters_and_ignores_the_raster() -> None:
    with_map = TrajectoryCVAE(TrajCVAEConfig(**SMALL))  # type: ignore[arg-type]
    without = TrajectoryCVAE(TrajCVAEConfig(**SMALL, use_map=False))  # type: ignore[arg-type]
    assert without.map_encoder is None
    assert not any(name.startswith("map_encoder") for name, _ in without.named_parameters())
    map_params = sum(p.numel() for p in with_map.map_encoder.parameters())  # type: ignore[union-attr]
    n_with = sum(p.numel() for p in with_map.parameters())
    n_without = sum(p.numel() for p in without.parameters())
    # The only other difference: the condition vector is map_latent_dim shorter.
    assert n_with - n_without - map_params > 0
    assert without.condition_dim == with_map.condition_dim - 8
    batch = _batch()
    torch.manual_seed(1)
    a = without.sample(batch, 3)
    batch["raster"] = torch.zeros_like(batch["raster"])
    torch.manual_seed(1)
    assert torch.equal(a, without.sample(batch, 3))


def test_untrained_decoder_predicts_constant_velocity() -> None:
    model = TrajectoryCVAE(TrajCVAEConfig(**SMALL))  # type: ignore[arg-type]
    futures = model.sample(_batch(2), k=3)
    steps = torch.arange(1, 7, dtype=torch.float32)[:, None] * 0.1
    expected = torch.tensor([8.0, 0.5]) * steps
    torch.testing.assert_close(futures, expected.expand_as(futures), atol=1e-4, rtol=0)


def test_a_few_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = TrajectoryCVAE(TrajCVAEConfig(**SMALL))  # type: ignore[arg-type]
    batch = _batch(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(model.loss(batch)[0])
    for _ in range(30):
        optimizer.zero_grad()
        model.loss(batch)[0].backward()
        optimizer.step()
    assert float(model.loss(batch)[0]) < first


def test_encoder_that_does_not_fit_the_raster_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="seed_global"):
        TrajectoryCVAE(TrajCVAEConfig(**{**SMALL, "map_encoder": "seed_global"}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        TrajCVAEConfig(z_dim=0)
