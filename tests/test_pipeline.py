"""MapBranch: rasterize -> tensor -> encode, as a trainable piece of someone else's model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from traj_scenes import straight_road_map

from mapenc.errors import ConfigError
from mapenc.pipeline import MapBranch
from mapenc.raster import Rasterizer, RasterSpec

SPEC = RasterSpec(size_px=(32, 32), pixel_size_m=1.0, layers=("drivable_area", "centerlines"))
POSES = np.array([[0.0, 0.0, 0.0], [10.0, 1.0, np.pi], [-30.0, 0.5, 0.2]])


def test_forward_equals_encoder_on_the_rasters_and_trains() -> None:
    torch.manual_seed(0)
    branch = MapBranch(straight_road_map(), SPEC, "conv-spatial", latent_dim=8, mode="exact")
    branch.eval()
    latent = branch(POSES)
    assert latent.shape == (3, 8) and branch.latent_dim == 8
    rasters = Rasterizer(straight_road_map(), SPEC).rasterize(POSES)
    torch.testing.assert_close(latent, branch.encoder(torch.from_numpy(rasters)))
    torch.testing.assert_close(branch(torch.from_numpy(POSES)), latent)
    branch.train()
    branch(POSES).square().sum().backward()
    assert all(p.grad is not None for p in branch.encoder.parameters() if p.requires_grad)


def test_a_ready_encoder_module_is_used_as_is() -> None:
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 32 * 32, 5))
    branch = MapBranch(straight_road_map(), SPEC, encoder)
    assert branch(POSES).shape == (3, 5)
    assert branch.device == torch.device("cpu")


def test_an_encoder_that_does_not_fit_the_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="seed_spatial"):
        MapBranch(straight_road_map(), SPEC, "seed_spatial")
