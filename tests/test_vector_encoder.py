"""The ``vector`` encoder: padding, polyline order and masks do not matter; the world's frame does
not matter; describe's MACs match a FLOP count; it conditions the trajectory CVAE."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_polylines import moved
from torch.utils.flop_counter import FlopCounterMode

from mapenc.encoders import VectorMapEncoder, build_encoder, encoder_input_kind, list_encoders
from mapenc.errors import ConfigError
from mapenc.geometry import SE2
from mapenc.maps.polylines import PolylineSpec, map_polylines, polylines_around
from mapenc.testing import l_junction
from mapenc.vae import TrajectoryCVAE
from mapenc.vae.trajectory import TrajCVAEConfig

N, P, K, H = 3, 7, 5, 6


def small() -> VectorMapEncoder:
    torch.manual_seed(0)
    encoder = build_encoder("vector", latent_dim=8, hidden_dim=16, attention_heads=2)
    assert isinstance(encoder, VectorMapEncoder)
    return encoder.eval()


def inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Polylines with some padded points and one empty polyline, and a straight past."""
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(N, P, K, 2, generator=g) * 15
    mask = torch.ones(N, P, K, dtype=torch.bool)
    mask[:, 2, 3:] = False
    mask[1, 4] = False
    types = torch.randint(0, 4, (N, P), generator=g)
    past = torch.linspace(-5, 0, H)[None, :, None] * torch.tensor([1.0, 0.2])
    return points, mask, types, past.expand(N, H, 2).clone(), torch.zeros(N, H)


def test_registered_beside_the_cnns_as_a_vector_encoder() -> None:
    assert "vector" in list_encoders() and "vector" in list_encoders("vector")
    assert "vector" not in list_encoders("raster") and "conv-spatial" in list_encoders("raster")
    assert encoder_input_kind("vector") == "vector"


def test_output_shape_and_every_parameter_gets_a_gradient() -> None:
    encoder = small().train()
    z = encoder(*inputs())
    assert z.shape == (N, 8)
    z.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_padding_does_not_change_the_output() -> None:
    encoder = small()
    points, mask, types, past, heading = inputs()
    z = encoder(points, mask, types, past, heading)
    # Four more polylines and two more points per polyline, all masked, holding garbage.
    more_points = torch.cat([points, torch.randn(N, P, 2, 2) * 99], dim=2)
    more_mask = torch.cat([mask, torch.zeros(N, P, 2, dtype=torch.bool)], dim=2)
    more_points = torch.cat([more_points, torch.randn(N, 4, K + 2, 2) * 99], dim=1)
    more_mask = torch.cat([more_mask, torch.zeros(N, 4, K + 2, dtype=torch.bool)], dim=1)
    more_types = torch.cat([types, torch.full((N, 4), 3)], dim=1)
    padded = encoder(more_points, more_mask, more_types, past, heading)
    torch.testing.assert_close(padded, z, rtol=1e-5, atol=1e-6)


def test_a_sample_without_any_polyline_still_encodes_its_history() -> None:
    encoder = small().train()
    points, mask, types, past, heading = inputs()
    mask[0] = False  # the first agent sees no map at all; the others keep theirs
    z = encoder(points, mask, types, past, heading)
    z.square().sum().backward()
    assert torch.isfinite(z).all()
    alone = encoder(points[:1], mask[:1], types[:1], past[:1], heading[:1])
    torch.testing.assert_close(alone, z[:1], rtol=1e-5, atol=1e-6)
    empty = encoder(points, torch.zeros_like(mask), types, past, heading)
    torch.testing.assert_close(empty[0], z[0], rtol=1e-5, atol=1e-6)


def test_masked_points_are_ignored_and_unmasked_ones_are_not() -> None:
    encoder = small()
    points, mask, types, past, heading = inputs()
    z = encoder(points, mask, types, past, heading)
    changed = points.clone()
    changed[:, 2, 3:] += 50.0  # masked
    changed[1, 4] -= 50.0  # a whole masked polyline
    torch.testing.assert_close(encoder(changed, mask, types, past, heading), z)
    changed[0, 0, 0] += 5.0  # present
    assert not torch.allclose(encoder(changed, mask, types, past, heading)[0], z[0])


def test_the_order_of_the_polylines_does_not_matter() -> None:
    encoder = small()
    points, mask, types, past, heading = inputs()
    z = encoder(points, mask, types, past, heading)
    order = torch.randperm(P, generator=torch.Generator().manual_seed(3))
    shuffled = encoder(points[:, order], mask[:, order], types[:, order], past, heading)
    torch.testing.assert_close(shuffled, z, rtol=1e-5, atol=1e-6)


def test_the_history_and_the_polyline_types_matter() -> None:
    encoder = small()
    points, mask, types, past, heading = inputs()
    z = encoder(points, mask, types, past, heading)
    assert not torch.allclose(encoder(points, mask, (types + 1) % 4, past, heading), z)
    assert not torch.allclose(encoder(points, mask, types, past * 2, heading), z)


def test_turning_the_world_and_the_agent_together_leaves_the_latent_unchanged() -> None:
    spec = PolylineSpec(extent_m=(-16.0, -32.0, 48.0, 32.0), max_polylines=40)
    poses = np.array([[-20.3, 0.1, 0.02], [5.1, 4.2, 0.9]])
    city_SE2_old = SE2(-2.3, np.array([-51234.0, 80321.0]))
    turned_poses = np.column_stack(
        [city_SE2_old.transform_from(poses[:, :2]), poses[:, 2] + city_SE2_old.rotation_rad]
    )
    junction = l_junction()
    here = polylines_around(map_polylines(junction, spec), poses, spec)
    there = polylines_around(map_polylines(moved(junction, city_SE2_old), spec), turned_poses, spec)
    encoder = small()
    past = torch.linspace(-5, 0, H)[None, :, None].expand(2, H, 2) * torch.tensor([1.0, 0.0])
    heading = torch.zeros(2, H)

    def latent(seen: object) -> torch.Tensor:
        return encoder(
            torch.from_numpy(seen.points),  # type: ignore[attr-defined]
            torch.from_numpy(seen.mask),  # type: ignore[attr-defined]
            torch.from_numpy(seen.types),  # type: ignore[attr-defined]
            past,
            heading,
        )

    torch.testing.assert_close(latent(there), latent(here), rtol=1e-4, atol=1e-4)
    other_place = polylines_around(map_polylines(junction, spec), poses[::-1].copy(), spec)
    assert not torch.allclose(latent(other_place), latent(here), atol=1e-3)


def test_describe_counts_polylines_points_parameters_and_the_macs_a_flop_counter_sees() -> None:
    encoder = small()
    description = encoder.describe(P, K, H)
    assert (description.polylines, description.points, description.history) == (P, K, H)
    assert description.total_params == sum(p.numel() for p in encoder.parameters())
    points, _, types, past, heading = inputs()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        encoder(points[:1], torch.ones(1, P, K, dtype=torch.bool), types[:1], past[:1], heading[:1])
    # The counter sees every linear layer but not the fused attention kernel: the agent's query
    # against P + 1 keys and the weighted sum of P + 1 values, width 16 each.
    attention_products = 2 * (P + 1) * 16
    assert description.macs == counter.get_total_flops() // 2 + attention_products
    assert description.bottleneck_elements == (P + 1) * 16
    assert "MACs per sample" in str(description)


def test_bad_inputs_and_settings_are_named() -> None:
    encoder = small()
    points, mask, types, past, heading = inputs()
    with pytest.raises(ConfigError, match="vector encoder expects"):
        encoder(points, mask[:, :, :-1], types, past, heading)
    with pytest.raises(ConfigError, match="must divide hidden_dim"):
        build_encoder("vector", hidden_dim=10, attention_heads=4)


def test_it_conditions_the_trajectory_cvae_in_place_of_the_raster() -> None:
    config = TrajCVAEConfig(
        history_steps=H - 1,
        future_steps=4,
        hidden_dim=16,
        modes=3,
        map_latent_dim=8,
        map_encoder="vector",
        map_encoder_options=(("hidden_dim", 16), ("attention_heads", 2)),
    )
    torch.manual_seed(0)
    model = TrajectoryCVAE(config)
    points, mask, types, past, heading = inputs()
    batch = {
        "past": past,
        "past_heading": heading,
        "velocity": torch.tensor([[10.0, 0.0]]).repeat(N, 1),
        "future": torch.cumsum(torch.ones(N, 4, 2), dim=1),
        "polyline_points": points,
        "polyline_mask": mask,
        "polyline_types": types,
    }
    assert isinstance(model.map_encoder, VectorMapEncoder)
    assert model.map_encoder.latent_dim == 8
    x = model.encode_condition(batch)
    assert x.shape == (N, model.condition_dim)
    changed = dict(batch, polyline_points=points + 1.0)
    assert not torch.allclose(model.encode_condition(changed), x)
    loss, _ = model.loss(batch)
    loss.backward()
    assert all(p.grad is not None for p in model.map_encoder.parameters())
    rebuilt = TrajectoryCVAE(TrajCVAEConfig(**dataclasses.asdict(config)))
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
