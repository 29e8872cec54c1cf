"""TrajectoryCVAE: a conditional VAE over future trajectories, conditioned on the past and the map.

Notation (Trajectron++'s): ``x`` is the condition (the agent's past, its last-step velocity, its
kind, its neighbours and the map latent of its raster), ``y`` the future, ``z`` the latent. As in
Trajectron++ the latent is discrete: ``z`` takes one of ``modes`` values, and value ``k`` decodes
to a residual around anchor ``k`` (``batch["anchors"]``: lane-following or kinematic forecasts,
``mapenc.data.context``).

- ``q_z_xy``: posterior ``q(z | x, y)``, categorical, from the condition and the future;
- ``p_z_x``: learned prior ``p(z | x)``, categorical: the probability of each mode;
- ``p_y_xz``: decoder ``p(y | x, z)``: an MLP from ``x``, ``z`` (one-hot) and anchor ``z`` to a
  residual added to the anchor and a Laplace scale per step and axis. Its last layer starts at
  zero, so an untrained model predicts its anchors.

Loss per sample, with the expectation over ``q`` taken exactly (all ``modes`` values):
``E_q[-log p(y | x, z)] + beta * KL(q || p)`` (the negative ELBO, nats; the Laplace NLL summed over
steps and axes) plus ``wta_weight *`` the winner-takes-all error: the smallest ``(ADE + FDE) / 2``
(metres) over the modes' decoded means. The ELBO fits the density and the mode probabilities; the
winner-takes-all term makes each mode the best possible forecast of the futures it wins.

Standing (``standing_mode``, the default): latent value 0 decodes to its anchor with no residual,
and the data puts that anchor at rest (``mapenc.data.context.make_anchors``), so one of the K
forecasts of an agent that stands, stands: parked cars and waiting pedestrians are most agents of
urban scenes. Its probability is learned like any other mode's.

Forecasts (``forecast``): the K most probable latent values under ``p(z | x)``, decoded to their
means, with their prior probabilities (renormalised); more than ``modes`` forecasts repeat latent
values drawn from the prior.

Training augmentation (``flip_augment``): half the samples are mirrored left-right (``y -> -y``
of every position, velocity, heading and anchor, raster rows reversed and the channels in
``flip_sign_channels`` negated), so the model sees both sides of every road.

All positions are in the agent frame (metres); networks see them divided by ``position_scale_m``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mapenc.checks import FieldChecks
from mapenc.data.context import NEIGHBOUR_FEATURES, NUM_KINDS
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
        hidden_dim: width of the MLPs.
        modes: values of the discrete latent (one anchor each).
        standing_mode: latent value 0 is the standing mode (decoded to its anchor, at rest, with
            no residual); needs ``modes >= 2``.
        anchors: "lane" or "kinematic": which anchors the data gives the model; "auto" (the
            default) is "lane" with the map and "kinematic" without it (``anchor_kind``).
        max_neighbours: neighbours the model sees (0: none).
        beta: weight of the KL term.
        wta_weight: weight of the winner-takes-all term (0 disables).
        flip_augment: mirror half the training samples left-right.
        flip_sign_channels: raster channels that change sign under the mirror.
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
    hidden_dim: int = 128
    modes: int = 6
    standing_mode: bool = True
    anchors: str = "auto"
    max_neighbours: int = 8
    beta: float = 1.0
    wta_weight: float = 10.0
    flip_augment: bool = True
    flip_sign_channels: tuple[int, ...] = ()
    position_scale_m: float = 10.0

    def __post_init__(self) -> None:
        checks = FieldChecks(self)
        for name in ("history_steps", "future_steps", "map_latent_dim", "raster_channels"):
            checks.number(name, integer=True, minimum=1)
        checks.number("hidden_dim", integer=True, minimum=1).number(
            "modes", integer=True, minimum=1
        )
        checks.number("max_neighbours", integer=True, minimum=0)
        checks.number("dt", above=0).number("position_scale_m", above=0)
        checks.number("beta", minimum=0).number("wta_weight", minimum=0).done()
        if self.standing_mode and self.modes < 2:
            raise ConfigError(
                f"TrajCVAEConfig.standing_mode needs modes >= 2 (one stands), got {self.modes}"
            )
        if self.anchors not in ("auto", "lane", "kinematic"):
            raise ConfigError(
                f"TrajCVAEConfig.anchors must be auto, lane or kinematic, got {self.anchors!r}"
            )
        object.__setattr__(self, "raster_size", tuple(int(v) for v in self.raster_size))
        object.__setattr__(
            self, "flip_sign_channels", tuple(int(v) for v in self.flip_sign_channels)
        )
        object.__setattr__(
            self, "map_encoder_options", tuple(tuple(kv) for kv in self.map_encoder_options)
        )

    @property
    def anchor_kind(self) -> str:
        """The anchors in use: ``anchors``, with "auto" read as "lane" with the map, else
        "kinematic"."""
        if self.anchors == "auto":
            return "lane" if self.use_map else "kinematic"
        return self.anchors


def uses_polylines(config: TrajCVAEConfig) -> bool:
    """True when the map branch is a vector encoder: batches then carry polylines, not rasters."""
    from mapenc.encoders import encoder_input_kind

    return config.use_map and encoder_input_kind(config.map_encoder) == "vector"


def build_map_encoder(config: TrajCVAEConfig) -> nn.Module:
    """The registered encoder ``config.map_encoder``: a vector encoder as configured, a raster
    encoder for the configured rasters (ConfigError if it cannot take them; see
    ``mapenc.pipeline.encoder_for_raster``)."""
    if uses_polylines(config):
        from mapenc.encoders import build_encoder

        options = dict(config.map_encoder_options)
        return build_encoder(config.map_encoder, latent_dim=config.map_latent_dim, **options)
    return encoder_for_raster(
        config.map_encoder,
        config.raster_channels,
        config.raster_size,
        config.map_latent_dim,
        dict(config.map_encoder_options),
    )


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, outputs),
    )


def mirror_batch(
    batch: Mapping[str, torch.Tensor], flip: torch.Tensor, sign_channels: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """``batch`` with the samples where ``flip`` (N,) is True mirrored left-right (y -> -y)."""
    out = dict(batch)
    sign = 1.0 - 2.0 * flip.to(batch["past"].dtype)  # -1 where mirrored

    def mirror_y(value: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (value.ndim - 1)
        scaled = value.clone()
        scaled[..., 1] = value[..., 1] * sign.view(shape)[..., 0]
        return scaled

    for key in ("past", "future", "velocity", "anchors", "polyline_points"):
        if key in batch:
            out[key] = mirror_y(batch[key])
    out["past_heading"] = batch["past_heading"] * sign[:, None]
    if "neighbours" in batch:
        neighbours = batch["neighbours"].clone()
        neighbours[..., 1] *= sign[:, None]
        neighbours[..., 3] *= sign[:, None]
        out["neighbours"] = neighbours
    if "raster" in batch:
        raster = batch["raster"]
        mirrored = torch.flip(raster, dims=(-2,))
        if sign_channels:
            mirrored[:, list(sign_channels)] = -mirrored[:, list(sign_channels)]
        out["raster"] = torch.where(flip[:, None, None, None], mirrored, raster)
    return out


class TrajectoryCVAE(nn.Module):
    """``(past, kind, neighbours, raster, anchors) -> K futures``; see the module docstring.

    Batches are dicts with ``past`` (N, P, 2), ``past_heading`` (N, P), ``velocity`` (N, 2),
    ``future`` (N, F, 2) (training only), ``raster`` (N, C, H, W) (ignored without the map),
    or for a vector map encoder ``polyline_points``, ``polyline_mask``, ``polyline_types``
    (``mapenc.maps.polylines.AgentPolylines``), and optionally ``anchors`` (N, modes, F, 2)
    (default: every mode at constant ``velocity``), ``kind`` (N,) int64 (default: vehicle) and
    ``neighbours`` (N, M, 5) (default: none).
    A batch without ``raster`` for a raster map encoder carries ``pose`` (N, 3) city poses and
    ``scenario`` (N,) indices instead, and the map branch draws its rasters on the model's device
    with ``map_rasters`` (e.g. a ``mapenc.data.device_rasters.SceneRasterizers``; not a
    parameter, not saved).
    """

    map_rasters: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def __init__(self, config: TrajCVAEConfig) -> None:
        super().__init__()
        self.config = config
        hid = config.hidden_dim
        past_points = config.history_steps + 1
        self.map_encoder: nn.Module | None = build_map_encoder(config) if config.use_map else None
        self.map_takes_polylines = uses_polylines(config)
        map_dim = config.map_latent_dim if config.use_map else 0
        # Per past step: position, displacement per second, heading (sin, cos).
        self.history_encoder = _mlp(6 * past_points, hid, hid)
        self.neighbour_encoder = _mlp(NEIGHBOUR_FEATURES, hid // 2, hid // 2)
        self.condition_dim = hid + 2 + NUM_KINDS + hid // 2 + map_dim
        future_dim = 2 * config.future_steps
        self.q_z_xy = _mlp(self.condition_dim + future_dim, hid, config.modes)
        self.p_z_x = _mlp(self.condition_dim, hid, config.modes)
        self.p_y_xz = _mlp(self.condition_dim + config.modes + future_dim, hid, 2 * future_dim)
        # Start at the anchors: zero residuals, unit-ish scales.
        last = self.p_y_xz[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _anchors(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(N, modes, F, 2) anchors of the batch, or constant velocity for every mode (at rest
        for the standing mode)."""
        if "anchors" in batch:
            return batch["anchors"]
        cfg = self.config
        times = torch.arange(1, cfg.future_steps + 1, device=batch["velocity"].device) * cfg.dt
        cv = batch["velocity"][:, None, :] * times[None, :, None].to(batch["velocity"].dtype)
        anchors = cv[:, None].expand(-1, cfg.modes, -1, -1)
        if cfg.standing_mode:
            anchors = torch.cat([torch.zeros_like(anchors[:, :1]), anchors[:, 1:]], dim=1)
        return anchors

    def encode_condition(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``x``: (N, condition_dim) from the past, velocity, kind, neighbours and map latent."""
        cfg = self.config
        scale = cfg.position_scale_m
        past = batch["past"] / scale
        n = past.shape[0]
        steps = torch.diff(past, dim=1, prepend=past[:, :1]) / cfg.dt
        heading = batch["past_heading"]
        features = torch.cat(
            [past, steps, torch.sin(heading)[..., None], torch.cos(heading)[..., None]], dim=-1
        )
        kind = batch.get("kind")
        if kind is None:
            kind = torch.zeros(n, dtype=torch.int64, device=past.device)
        neighbours = batch.get("neighbours")
        if neighbours is None or neighbours.shape[1] == 0 or cfg.max_neighbours == 0:
            pooled = torch.zeros(n, cfg.hidden_dim // 2, device=past.device, dtype=past.dtype)
        else:
            neighbours = neighbours[:, : cfg.max_neighbours]
            present = neighbours[..., 4:5]
            encoded = self.neighbour_encoder(
                torch.cat([neighbours[..., :4] / scale, present], dim=-1)
            )
            pooled = (encoded * present - 1e4 * (1.0 - present)).max(dim=1).values
            pooled = pooled * (present.sum(dim=1) > 0).to(pooled.dtype)
        parts = [
            self.history_encoder(features.flatten(1)),
            steps[:, -1],
            F.one_hot(kind.clamp(0, NUM_KINDS - 1), NUM_KINDS).to(past.dtype),
            pooled,
        ]
        if self.map_encoder is not None and self.map_takes_polylines:
            polylines = (batch["polyline_points"], batch["polyline_mask"], batch["polyline_types"])
            parts.append(self.map_encoder(*polylines, batch["past"], heading))
        elif self.map_encoder is not None:
            parts.append(self.map_encoder(self.rasters_of(batch)))
        return torch.cat(parts, dim=-1)

    def rasters_of(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The batch's ``raster``, or rasters drawn by ``map_rasters`` from ``pose``/``scenario``."""
        if "raster" in batch:
            return batch["raster"]
        if self.map_rasters is None:
            raise ConfigError("batch has no 'raster' and the model no map_rasters to draw them")
        return self.map_rasters(batch["pose"], batch["scenario"])

    def p_z_x_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Prior log-probabilities (N, modes) of the latent values."""
        return F.log_softmax(self.p_z_x(x), dim=-1)

    def q_z_xy_logits(self, x: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        """Posterior log-probabilities (N, modes) from ``x`` and ``future`` (N, F, 2)."""
        y = (future / self.config.position_scale_m).flatten(1)
        return F.log_softmax(self.q_z_xy(torch.cat([x, y], dim=-1)), dim=-1)

    def decode(self, x: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every latent value decoded: means and Laplace scales, each (N, modes, F, 2) metres."""
        cfg = self.config
        n, k = anchors.shape[:2]
        scale = cfg.position_scale_m
        one_hot = torch.eye(k, device=x.device, dtype=x.dtype).expand(n, k, k)
        inputs = torch.cat(
            [x[:, None].expand(n, k, x.shape[-1]), one_hot, (anchors / scale).flatten(2)], dim=-1
        )
        out = self.p_y_xz(inputs).view(n, k, cfg.future_steps, 4)
        residual = out[..., :2] * scale
        if cfg.standing_mode:
            residual = torch.cat([torch.zeros_like(residual[:, :1]), residual[:, 1:]], dim=1)
        means = anchors + residual
        scales = (F.softplus(out[..., 2:] + 0.5) + 1e-3) * scale * 0.1
        return means, scales

    def forecast(
        self, batch: Mapping[str, torch.Tensor], k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, k, F, 2) futures (agent frame, metres) and their (N, k) probabilities.

        The k most probable latent values first; beyond ``modes``, values drawn from the prior.
        """
        x = self.encode_condition(batch)
        means, _ = self.decode(x, self._anchors(batch))
        log_prior = self.p_z_x_logits(x)
        order = torch.argsort(log_prior, dim=-1, descending=True)[:, : min(k, self.config.modes)]
        if k > self.config.modes:
            extra = torch.multinomial(
                log_prior.exp(), k - self.config.modes, replacement=True, generator=generator
            )
            order = torch.cat([order, extra], dim=-1)
        rows = torch.arange(len(x), device=x.device)[:, None]
        prob = log_prior.exp()[rows, order]
        return means[rows, order], prob / prob.sum(dim=-1, keepdim=True)

    def sample(
        self, batch: Mapping[str, torch.Tensor], k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(N, k, F, 2) futures (agent frame, metres); see ``forecast``."""
        return self.forecast(batch, k, generator)[0]

    def loss(
        self, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean over the batch of negative ELBO + winner-takes-all term; logs nll, kl, wta (m)."""
        cfg = self.config
        if self.training and cfg.flip_augment:
            flip = torch.rand(batch["past"].shape[0], device=batch["past"].device) < 0.5
            batch = mirror_batch(batch, flip, cfg.flip_sign_channels)
        future = batch["future"]
        x = self.encode_condition(batch)
        means, scales = self.decode(x, self._anchors(batch))
        nll = (torch.abs(future[:, None] - means) / scales + torch.log(2.0 * scales)).sum(
            dim=(2, 3)
        )
        log_q = self.q_z_xy_logits(x, future)
        log_p = self.p_z_x_logits(x)
        q = log_q.exp()
        expected_nll = (q * nll).sum(dim=-1)
        kl = (q * (log_q - log_p)).sum(dim=-1)
        loss = expected_nll + cfg.beta * kl
        metrics = {"nll": expected_nll.mean().detach(), "kl": kl.mean().detach()}
        if cfg.wta_weight > 0:
            errors = torch.linalg.vector_norm(means - future[:, None], dim=-1)
            wta = (0.5 * (errors.mean(dim=-1) + errors[..., -1])).min(dim=1).values
            loss = loss + cfg.wta_weight * wta
            metrics["wta_m"] = wta.mean().detach()
        return loss.mean(), metrics
