"""TrajectoryCVAE: a conditional VAE over future trajectories, conditioned on the past and the map.

Notation (Trajectron++'s): ``x`` is the condition (the agent's past, its fitted current velocity,
and the map latent of its raster), ``y`` the future, ``z`` the latent.

- ``q_z_xy``: posterior ``q(z | x, y)``, diagonal Gaussian from the condition and a GRU over ``y``;
- ``p_z_x``: learned prior ``p(z | x)``, diagonal Gaussian;
- ``p_y_xz``: decoder ``p(y | x, z)``: a GRU cell stepping over the future; each step outputs a
  displacement *added to the constant-velocity step* (so an untrained decoder already predicts
  constant velocity) and a Laplace scale per axis; positions are the running sum.

Loss per sample: ``-log p(y | x, z ~ q) + beta * KL(q || p)`` (the negative ELBO, in nats; the
Laplace NLL is summed over steps and axes) plus ``variety_weight *`` the best-of-K error: K
latents are drawn from the *prior*, decoded to their means, and the smallest error (m) to the truth,
``(ADE + FDE) / 2``, is kept (the "variety loss" of Social GAN). The ELBO alone fits the density; the
variety term is what makes K prior samples spread over the modes that minFDE_K rewards.

All positions are in the agent frame (metres); networks see them divided by ``position_scale_m``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mapenc.errors import ConfigError
from mapenc.pipeline import encoder_for_raster


@dataclass(frozen=True)
class TrajCVAEConfig:
    """Architecture of a TrajectoryCVAE.

    The input shapes (``history_steps``, ``future_steps``, ``dt``, ``raster_channels``,
    ``raster_size``) come from the task and the raster spec; an experiment config fills them in.

    Attributes:
        history_steps, future_steps, dt: the task (past has history_steps + 1 points; seconds/step).
        use_map: False removes the map branch and nothing else (``--no-map``).
        map_encoder: registered encoder name (``mapenc.encoders.list_encoders()``).
        map_latent_dim: length of the map latent.
        raster_channels, raster_size: the raster the map encoder takes (C and (H, W)).
        map_encoder_options: extra encoder settings as (name, value) pairs.
        hidden_dim: width of the GRUs and MLPs.
        z_dim: latent size.
        beta: weight of the KL term.
        variety_k, variety_weight: prior samples and weight of the best-of-K term (0 disables).
        position_scale_m: metres per network unit.
    """

    history_steps: int = 10
    future_steps: int = 30
    dt: float = 0.1
    use_map: bool = True
    map_encoder: str = "conv-spatial"
    map_latent_dim: int = 32
    raster_channels: int = 4
    raster_size: tuple[int, int] = (64, 64)
    map_encoder_options: tuple[tuple[str, Any], ...] = ()
    hidden_dim: int = 64
    z_dim: int = 16
    beta: float = 1.0
    variety_k: int = 6
    variety_weight: float = 10.0
    position_scale_m: float = 10.0

    def __post_init__(self) -> None:
        if min(self.history_steps, self.future_steps, self.hidden_dim, self.z_dim) < 1:
            raise ConfigError("TrajCVAEConfig: steps, hidden_dim and z_dim must be >= 1")
        if self.variety_k < 1 or self.variety_weight < 0 or self.beta < 0:
            raise ConfigError("TrajCVAEConfig: variety_k >= 1, variety_weight >= 0, beta >= 0")
        object.__setattr__(self, "raster_size", tuple(int(v) for v in self.raster_size))
        object.__setattr__(
            self, "map_encoder_options", tuple(tuple(kv) for kv in self.map_encoder_options)
        )


def build_map_encoder(config: TrajCVAEConfig) -> nn.Module:
    """The registered encoder ``config.map_encoder`` for the configured rasters (ConfigError if
    it cannot take them); see ``mapenc.pipeline.encoder_for_raster``."""
    return encoder_for_raster(
        config.map_encoder,
        config.raster_channels,
        config.raster_size,
        config.map_latent_dim,
        dict(config.map_encoder_options),
    )


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


def _gaussian_kl(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) summed over the last axis: (N,) nats."""
    var_ratio = torch.exp(logvar_q - logvar_p)
    mean_term = (mu_q - mu_p) ** 2 / torch.exp(logvar_p)
    return 0.5 * torch.sum(var_ratio + mean_term - 1.0 - (logvar_q - logvar_p), dim=-1)


class TrajectoryCVAE(nn.Module):
    """``(past, velocity, raster) -> K futures``; see the module docstring for the maths.

    Batches are dicts with ``past`` (N, P, 2), ``past_heading`` (N, P), ``velocity`` (N, 2),
    ``future`` (N, F, 2) (training only) and ``raster`` (N, C, H, W) (ignored without the map).
    A batch without ``raster`` carries ``pose`` (N, 3) city poses and ``scenario`` (N,) indices
    instead, and the map branch draws its rasters on the model's device with ``map_rasters``
    (e.g. a ``mapenc.data.device_rasters.SceneRasterizers``; not a parameter, not saved).
    """

    map_rasters: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def __init__(self, config: TrajCVAEConfig) -> None:
        super().__init__()
        self.config = config
        hid = config.hidden_dim
        self.map_encoder: nn.Module | None = build_map_encoder(config) if config.use_map else None
        map_dim = config.map_latent_dim if config.use_map else 0
        # Per past step: position, displacement, heading (sin, cos).
        self.history_encoder = nn.GRU(6, hid, batch_first=True)
        self.condition_dim = hid + 2 + map_dim
        self.future_encoder = nn.GRU(4, hid, batch_first=True, bidirectional=True)
        self.q_z_xy = _mlp(self.condition_dim + 2 * hid, hid, 2 * config.z_dim)
        self.p_z_x = _mlp(self.condition_dim, hid, 2 * config.z_dim)
        self.decoder_init = nn.Linear(self.condition_dim + config.z_dim, hid)
        self.decoder_cell = nn.GRUCell(2 + config.z_dim, hid)
        self.decoder_out = nn.Linear(hid, 4)
        # Start as the constant-velocity forecast: zero residual steps.
        nn.init.zeros_(self.decoder_out.weight)
        nn.init.zeros_(self.decoder_out.bias)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_condition(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``x``: (N, condition_dim) from the past, the fitted velocity and the map latent."""
        scale = self.config.position_scale_m
        past = batch["past"] / scale
        steps = torch.diff(past, dim=1, prepend=past[:, :1])
        heading = batch["past_heading"]
        features = torch.cat(
            [
                past,
                steps / self.config.dt,
                torch.sin(heading)[..., None],
                torch.cos(heading)[..., None],
            ],
            dim=-1,
        )
        _, h = self.history_encoder(features)
        parts = [h[-1], batch["velocity"] / scale]
        if self.map_encoder is not None:
            parts.append(self.map_encoder(self.rasters_of(batch)))
        return torch.cat(parts, dim=-1)

    def rasters_of(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The batch's ``raster``, or rasters drawn by ``map_rasters`` from ``pose``/``scenario``."""
        if "raster" in batch:
            return batch["raster"]
        if self.map_rasters is None:
            raise ConfigError("batch has no 'raster' and the model no map_rasters to draw them")
        return self.map_rasters(batch["pose"], batch["scenario"])

    def p_z_x_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior mean and log-variance, each (N, z_dim)."""
        mu, logvar = self.p_z_x(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-8.0, 8.0)

    def q_z_xy_params(
        self, x: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each (N, z_dim), from ``x`` and ``future`` (N, F, 2)."""
        y = future / self.config.position_scale_m
        steps = torch.diff(y, dim=1, prepend=torch.zeros_like(y[:, :1]))
        _, h = self.future_encoder(torch.cat([y, steps / self.config.dt], dim=-1))
        mu, logvar = self.q_z_xy(torch.cat([x, h[0], h[1]], dim=-1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-8.0, 8.0)

    def p_y_xz(
        self, x: torch.Tensor, z: torch.Tensor, velocity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode: mean positions (N, F, 2) in metres and Laplace scales (N, F, 2) in metres.

        ``velocity`` (N, 2) m/s gives the constant-velocity step each output displacement adds to.
        """
        cfg = self.config
        cv_step = velocity * cfg.dt / cfg.position_scale_m
        hidden = torch.tanh(self.decoder_init(torch.cat([x, z], dim=-1)))
        step = cv_step
        positions, scales = [], []
        position = torch.zeros_like(cv_step)
        for _ in range(cfg.future_steps):
            hidden = self.decoder_cell(torch.cat([step, z], dim=-1), hidden)
            out = self.decoder_out(hidden)
            step = cv_step + out[:, :2]
            position = position + step
            positions.append(position)
            scales.append(torch.nn.functional.softplus(out[:, 2:]) + 1e-3)
        return (
            torch.stack(positions, dim=1) * cfg.position_scale_m,
            torch.stack(scales, dim=1) * cfg.position_scale_m,
        )

    def sample(
        self, batch: Mapping[str, torch.Tensor], k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(N, k, F, 2) futures (agent frame, metres): decoder means at k draws from the prior."""
        x = self.encode_condition(batch)
        return self._prior_futures(x, batch["velocity"], k, generator)

    def _prior_futures(
        self,
        x: torch.Tensor,
        velocity: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        n = x.shape[0]
        mu, logvar = self.p_z_x_params(x)
        eps = torch.randn(
            (n, k, mu.shape[-1]), generator=generator, device=mu.device, dtype=mu.dtype
        )
        z = (mu[:, None] + torch.exp(0.5 * logvar)[:, None] * eps).reshape(n * k, -1)
        means, _ = self.p_y_xz(
            x.repeat_interleave(k, dim=0), z, velocity.repeat_interleave(k, dim=0)
        )
        return means.reshape(n, k, *means.shape[1:])

    def loss(
        self, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean over the batch of negative ELBO + variety term; logs nll, kl, variety (m)."""
        cfg = self.config
        future = batch["future"]
        x = self.encode_condition(batch)
        mu_q, logvar_q = self.q_z_xy_params(x, future)
        mu_p, logvar_p = self.p_z_x_params(x)
        z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn_like(mu_q)
        mean, scale = self.p_y_xz(x, z, batch["velocity"])
        nll = (torch.abs(future - mean) / scale + torch.log(2.0 * scale)).sum(dim=(1, 2))
        kl = _gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)
        loss = nll + cfg.beta * kl
        metrics = {"nll": nll.mean().detach(), "kl": kl.mean().detach()}
        if cfg.variety_weight > 0:
            futures = self._prior_futures(x, batch["velocity"], cfg.variety_k)
            errors = torch.linalg.vector_norm(futures - future[:, None], dim=-1)
            variety = (0.5 * (errors.mean(dim=-1) + errors[..., -1])).min(dim=1).values
            loss = loss + cfg.variety_weight * variety
            metrics["variety_m"] = variety.mean().detach()
        return loss.mean(), metrics
