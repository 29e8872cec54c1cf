"""Use mapenc's map branch inside your own PyTorch forecasting model and training loop.

Your data: poses (city frame) and pasts/futures in the agent frame. mapenc adds one module,
``MapBranch``: poses -> rasters -> CNN -> map latent, trained end to end with your model.
Here the data come from one scene of the embedded synthetic town; swap in your own arrays.

    python examples/encode_maps_in_your_pipeline.py
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mapenc.data.trajectory import NGSIM_TASK, samples_from_scenarios
from mapenc.maps.synthetic import make_scenarios
from mapenc.pipeline import MapBranch
from mapenc.raster import RasterSpec


class MyForecaster(nn.Module):
    """A plain MLP forecaster: (past, map latent) -> future, all in the agent frame (metres)."""

    def __init__(self, map_branch: MapBranch, past_points: int, future_points: int) -> None:
        super().__init__()
        self.map_branch = map_branch
        self.future_points = future_points
        self.head = nn.Sequential(
            nn.Linear(2 * past_points + map_branch.latent_dim, 128),
            nn.ReLU(),
            nn.Linear(128, 2 * future_points),
        )

    def forward(self, past: torch.Tensor, poses_city: np.ndarray) -> torch.Tensor:
        """past (N, P, 2), poses (N, 3) city [x, y, heading] -> future (N, F, 2)."""
        latent = self.map_branch(poses_city)  # [N, latent_dim], on the model's device
        features = torch.cat([past.flatten(1), latent], dim=1)
        return self.head(features).view(-1, self.future_points, 2)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    scenario = make_scenarios(1, seed=0)[0]
    samples = samples_from_scenarios([scenario], NGSIM_TASK)  # past/future in the agent frame
    spec = RasterSpec(
        size_px=(48, 48),
        pixel_size_m=1.0,
        layers=("drivable_area", "centerlines", "lane_heading_sin", "lane_heading_cos"),
    )
    branch = MapBranch(scenario.map, spec, "conv-spatial", latent_dim=16)
    model = MyForecaster(branch, samples.past.shape[1], samples.future.shape[1])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    past = torch.from_numpy(samples.past).to(device)
    future = torch.from_numpy(samples.future).to(device)
    rng = np.random.default_rng(0)
    for step in range(1, 201):
        batch = rng.choice(len(samples), size=min(32, len(samples)), replace=False)
        prediction = model(past[batch], samples.pose[batch])
        loss = torch.linalg.vector_norm(prediction - future[batch], dim=-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step}: mean displacement error {loss.item():.2f} m")


if __name__ == "__main__":
    main()
