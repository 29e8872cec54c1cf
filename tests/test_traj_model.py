"""TrajectoryCVAE: shapes, the map branch switch, the anchor start, mirroring, a learning step."""

from __future__ import annotations

import pytest
import torch

from mapenc.errors import ConfigError
from mapenc.vae import TrajectoryCVAE
from mapenc.vae.trajectory import TrajCVAEConfig, mirror_batch

SMALL = {
    "raster_channels": 3,
    "raster_size": (32, 32),
    "map_latent_dim": 8,
    "hidden_dim": 16,
    "modes": 4,
    "history_steps": 4,
    "future_steps": 6,
    "map_encoder_options": (("widths", (4, 8)), ("strides", (2, 2))),
    "flip_sign_channels": (2,),
}


def _batch(n: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    past = torch.cumsum(torch.rand(n, 5, 2, generator=g), dim=1)
    steps = torch.arange(1, 7, dtype=torch.float32)[:, None] * 0.1
    speeds = torch.tensor([6.0, 7.0, 8.0, 9.0])[:, None, None]
    anchors = speeds * steps * torch.tensor([1.0, 0.0])  # (4, 6, 2): four speeds along +x
    neighbours = torch.zeros(n, 3, 5)
    neighbours[:, 0] = torch.tensor([5.0, 3.0, 1.0, 0.0, 1.0])
    return {
        "past": past - past[:, -1:],
        "past_heading": torch.zeros(n, 5),
        "velocity": torch.tensor([[8.0, 0.5]]).repeat(n, 1),
        "future": torch.cumsum(torch.ones(n, 6, 2), dim=1),
        "raster": torch.rand(n, 3, 32, 32, generator=g),
        "anchors": anchors.expand(n, -1, -1, -1).clone(),
        "kind": torch.zeros(n, dtype=torch.int64),
        "neighbours": neighbours,
    }


def test_forecast_and_loss_shapes() -> None:
    model = TrajectoryCVAE(TrajCVAEConfig(**SMALL))  # type: ignore[arg-type]
    batch = _batch()
    futures, prob = model.forecast(batch, k=3)
    assert futures.shape == (5, 3, 6, 2) and prob.shape == (5, 3)
    torch.testing.assert_close(prob.sum(dim=1), torch.ones(5))
    assert bool((prob[:, :-1] >= prob[:, 1:]).all())  # most probable first
    assert model.sample(batch, k=7).shape == (5, 7, 6, 2)  # beyond the modes: drawn from p(z|x)
    loss, metrics = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(metrics) == {"nll", "kl", "wta_m"}
    x = model.encode_condition(batch)
    assert x.shape == (5, model.condition_dim)
    assert model.q_z_xy_logits(x, batch["future"]).shape == (5, 4)


def test_no_map_has_no_map_parameters_and_ignores_the_raster() -> None:
    with_map = TrajectoryCVAE(TrajCVAEConfig(**SMALL))  # type: ignore[arg-type]
    without = TrajectoryCVAE(TrajCVAEConfig(**SMALL, use_map=False))  # type: ignore[arg-type]
    assert without.map_encoder is None
    assert not any(name.startswith("map_encoder") for name, _ in without.named_parameters())
    assert without.condition_dim == with_map.condition_dim - 8
    batch = _batch()
    a = without.sample(batch, 3)
    batch["raster"] = torch.zeros_like(batch["raster"])
    assert torch.equal(a, without.sample(batch, 3))
    assert not torch.equal(with_map.encode_condition(batch), with_map.encode_condition(_batch()))


def test_untrained_model_predicts_its_anchors() -> None:
    model = TrajectoryCVAE(TrajCVAEConfig(**SMALL))  # type: ignore[arg-type]
    batch = _batch(2)
    futures, _ = model.forecast(batch, k=4)
    for row in range(2):
        got = sorted(futures[row].tolist())
        want = sorted(batch["anchors"][row].tolist())
        torch.testing.assert_close(torch.tensor(got), torch.tensor(want))
    # Without anchors the standing mode stands and every other mode keeps constant velocity.
    del batch["anchors"]
    steps = torch.arange(1, 7, dtype=torch.float32)[:, None] * 0.1
    cv = torch.tensor([8.0, 0.5]) * steps
    futures = model.sample(batch, 4)
    moving = futures.abs().sum(dim=(2, 3)) > 0
    assert moving.sum(dim=1).tolist() == [3, 3]
    torch.testing.assert_close(futures[moving], cv.expand(6, 6, 2))


def test_the_standing_mode_stands_whatever_the_weights() -> None:
    torch.manual_seed(0)
    batch = _batch(3)
    for standing in (True, False):
        model = TrajectoryCVAE(TrajCVAEConfig(**SMALL, standing_mode=standing))  # type: ignore[arg-type]
        for parameter in model.p_y_xz.parameters():
            torch.nn.init.normal_(parameter)  # a decoder far from its zero start
        means, _ = model.decode(model.encode_condition(batch), batch["anchors"])
        assert torch.equal(means[:, 0], batch["anchors"][:, 0]) is standing
        assert not torch.equal(means[:, 1], batch["anchors"][:, 1])


def test_mirror_flips_left_and_right_only_where_asked() -> None:
    batch = _batch(2)
    flip = torch.tensor([True, False])
    mirrored = mirror_batch(batch, flip, (2,))
    assert torch.equal(mirrored["future"][0, :, 1], -batch["future"][0, :, 1])
    assert torch.equal(mirrored["future"][1], batch["future"][1])
    assert torch.equal(mirrored["neighbours"][0, 0], torch.tensor([5.0, -3.0, 1.0, 0.0, 1.0]))
    assert torch.equal(mirrored["raster"][0, 0], torch.flip(batch["raster"][0, 0], dims=(0,)))
    assert torch.equal(mirrored["raster"][0, 2], -torch.flip(batch["raster"][0, 2], dims=(0,)))
    assert torch.equal(mirrored["raster"][1], batch["raster"][1])
    twice = mirror_batch(mirrored, flip, (2,))
    for key in ("past", "future", "anchors", "raster", "neighbours", "past_heading"):
        assert torch.equal(twice[key], batch[key]), key


def test_a_few_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = TrajectoryCVAE(TrajCVAEConfig(**SMALL, flip_augment=False))  # type: ignore[arg-type]
    batch = _batch(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(model.loss(batch)[0].detach())
    for _ in range(30):
        optimizer.zero_grad()
        model.loss(batch)[0].backward()
        optimizer.step()
    assert float(model.loss(batch)[0].detach()) < first


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="seed_global"):
        TrajectoryCVAE(TrajCVAEConfig(**{**SMALL, "map_encoder": "seed_global"}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        TrajCVAEConfig(modes=0)
    with pytest.raises(ConfigError, match="standing_mode"):
        TrajCVAEConfig(modes=1)
    assert TrajCVAEConfig(modes=1, standing_mode=False).modes == 1
    with pytest.raises(ConfigError):
        TrajCVAEConfig(anchors="spline")
