"""``vector``: a VectorNet-style map encoder over polylines and the agent's history.

Input (one agent per row, agent frame, metres; ``mapenc.maps.polylines`` makes the map part):

- ``points`` (N, P, K, 2) polyline points, ``mask`` (N, P, K) bool (padding is False),
  ``types`` (N, P) int index into ``polyline_types`` kinds;
- ``past`` (N, H, 2) the agent's positions, ``past_heading`` (N, H) rad (relative to the agent).

Each polyline is a set of segments (consecutive points both present): features ``[start, end]``
divided by ``position_scale_m`` plus the one-hot type. A *subgraph* (shared over polylines) runs
``subgraph_layers`` rounds of "linear + layer norm + ReLU per segment, max-pool over the polyline,
hand the pool to every segment of the next round", and the last round's max-pool is the
polyline's token (VectorNet, Gao et al. 2020). The agent's history is one more polyline (segments
between consecutive past points, with the heading's sine and cosine) through its own subgraph.
``attention_layers`` layers then let the agent token attend to itself and the polyline tokens
(padded polylines are masked out of the softmax; only the agent's token is updated, so the cost
grows linearly with the polylines) and a linear layer maps it to ``[N, latent_dim]``.

Outputs do not depend on padding (extra polylines or points whose mask is False) nor on the order
of the polylines: no position encoding, masked max-pools and masked attention only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

from mapenc.encoders.layers import check_positive
from mapenc.encoders.registry import Entry, register_encoder
from mapenc.errors import ConfigError

# Per history segment: start (2), end (2), sin and cos of the heading at its end.
HISTORY_FEATURES = 6


@dataclass(frozen=True)
class VectorEncoderConfig:
    """Settings of the ``vector`` encoder.

    Attributes:
        latent_dim: output length.
        hidden_dim: width of the subgraph MLPs and of the attention tokens.
        subgraph_layers: segment-MLP + max-pool rounds per polyline (VectorNet uses 3).
        attention_layers: rounds of the agent token attending to the polyline tokens.
        attention_heads: heads per attention layer (must divide ``hidden_dim``).
        polyline_types: number of polyline kinds (``len(mapenc.maps.polylines.POLYLINE_TYPES)``).
        position_scale_m: metres per network unit.
    """

    latent_dim: int = 32
    hidden_dim: int = 64
    subgraph_layers: int = 2
    attention_layers: int = 1
    attention_heads: int = 4
    polyline_types: int = 4
    position_scale_m: float = 10.0

    def __post_init__(self) -> None:
        check_positive(
            latent_dim=self.latent_dim,
            hidden_dim=self.hidden_dim,
            subgraph_layers=self.subgraph_layers,
            attention_heads=self.attention_heads,
            polyline_types=self.polyline_types,
            position_scale_m=self.position_scale_m,
        )
        if self.attention_layers < 0:
            raise ConfigError(f"attention_layers must be >= 0, got {self.attention_layers}")
        if self.hidden_dim % self.attention_heads:
            raise ConfigError(
                f"attention_heads={self.attention_heads} must divide hidden_dim={self.hidden_dim}"
            )


def masked_max(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of ``values`` (..., M, D) over M where ``mask`` (..., M) is True; 0 where none is."""
    filled = values.masked_fill(~mask[..., None], float("-inf")).amax(dim=-2)
    return torch.where(mask.any(dim=-1, keepdim=True), filled, torch.zeros_like(filled))


class Subgraph(nn.Module):
    """One polyline's segments ``(..., M, in_features)`` + mask ``(..., M)`` -> ``(..., width)``.

    Round 1 encodes each segment alone; every later round sees a segment's features concatenated
    with the polyline's max-pool, computed as two linear maps added (the same layer without
    materialising the concatenation). The output is the last round's masked max-pool.
    """

    def __init__(self, in_features: int, width: int, layers: int) -> None:
        super().__init__()
        self.segment = nn.ModuleList(
            nn.Linear(in_features if i == 0 else width, width) for i in range(layers)
        )
        self.pooled = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(layers - 1))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))

    def forward(self, segments: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norms[0](self.segment[0](segments)))
        for segment, pooled, norm in zip(
            self.segment[1:], self.pooled, self.norms[1:], strict=True
        ):
            context = pooled(masked_max(h, mask))[..., None, :]
            h = torch.relu(norm(segment(h) + context))
        return masked_max(h, mask)


class AgentAttention(nn.Module):
    """The agent token ``(N, D)`` attends to the tokens ``(N, T, D)`` where ``present`` (N, T):
    multi-head attention and a feed-forward layer, each residual with a pre-norm."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(width)
        self.norm_tokens = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(width)
        self.feed_forward = nn.Sequential(
            nn.Linear(width, 2 * width), nn.ReLU(), nn.Linear(2 * width, width)
        )

    def forward(
        self, agent: torch.Tensor, tokens: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        keys = self.norm_tokens(tokens)
        attended, _ = self.attention(
            self.norm_query(agent)[:, None],
            keys,
            keys,
            key_padding_mask=~present,
            need_weights=False,
        )
        agent = agent + attended[:, 0]
        out: torch.Tensor = agent + self.feed_forward(self.norm_ff(agent))
        return out


@dataclass(frozen=True)
class VectorDescription:
    """``describe`` of a vector encoder for P polylines of K points and H history points.

    ``bottleneck`` names the tokens entering the attention (``[P + 1, hidden_dim]``);
    ``macs`` counts linear layers and attention products per sample, as ``describe`` does for CNNs.
    """

    polylines: int
    points: int
    history: int
    total_params: int
    macs: int
    bottleneck: tuple[tuple[str, tuple[int, ...]], ...]
    latent_dim: int

    @property
    def bottleneck_elements(self) -> int:
        """Numbers the attention sees per sample."""
        return sum(shape[0] * shape[1] for _, shape in self.bottleneck)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "bottleneck_elements": self.bottleneck_elements}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def __str__(self) -> str:
        tokens = ", ".join(f"{name} {list(shape)}" for name, shape in self.bottleneck)
        return "\n".join(
            [
                f"vector encoder: {self.polylines} polylines x {self.points} points, "
                f"{self.history} history points -> [{self.latent_dim}]",
                f"parameters: {self.total_params:,}",
                f"MACs per sample: {self.macs:,}",
                f"attention tokens: {tokens} ({self.bottleneck_elements:,} elements)",
            ]
        )


def _linear_macs(layers: nn.ModuleList) -> int:
    """Multiply-accumulates of one input row through each of the linear ``layers``."""
    return sum(int(layer.weight.numel()) for layer in layers if isinstance(layer, nn.Linear))


def _subgraph_macs(subgraph: Subgraph) -> int:
    """Multiply-accumulates per segment of the per-segment linear layers."""
    return _linear_macs(subgraph.segment)


def _pooled_macs(subgraph: Subgraph) -> int:
    """Multiply-accumulates per polyline of the linear layers on the max-pools."""
    return _linear_macs(subgraph.pooled)


class VectorMapEncoder(nn.Module):
    """Polylines + agent history -> ``[N, latent_dim]`` (see the module docstring).

    Attributes:
        config: the VectorEncoderConfig it was built from.
        latent_dim: output length.
        input_kind: ``"vector"`` (registered image encoders take rasters instead).
    """

    input_kind = "vector"

    def __init__(self, config: VectorEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        width = config.hidden_dim
        self.map_subgraph = Subgraph(4 + config.polyline_types, width, config.subgraph_layers)
        self.history_subgraph = Subgraph(HISTORY_FEATURES, width, config.subgraph_layers)
        self.attention = nn.ModuleList(
            AgentAttention(width, config.attention_heads) for _ in range(config.attention_layers)
        )
        self.fc = nn.Linear(width, config.latent_dim)

    def _map_segments(self, points: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """Segment features (V, K-1, 4 + types) of polylines ``points`` (V, K, 2), ``types`` (V,)."""
        scaled = points / self.config.position_scale_m
        kind = nn.functional.one_hot(types, self.config.polyline_types).to(scaled.dtype)
        kind = kind[:, None].expand(-1, scaled.shape[1] - 1, -1)
        return torch.cat([scaled[:, :-1], scaled[:, 1:], kind], dim=-1)

    def _polyline_tokens(
        self, points: torch.Tensor, mask: torch.Tensor, types: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (N, P, hidden_dim) and presence (N, P) of the polylines.

        Only polylines with at least one segment go through the subgraph (padding is most of the
        input near sparse maps); the others keep a zero token, masked out of the attention.
        """
        segment_mask = mask[:, :, :-1] & mask[:, :, 1:]
        present = segment_mask.any(dim=-1)
        encoded = self.map_subgraph(
            self._map_segments(points[present], types[present]), segment_mask[present]
        )
        tokens = encoded.new_zeros((*present.shape, encoded.shape[-1]))
        tokens[present] = encoded
        return tokens, present

    def _history_segments(self, past: torch.Tensor, past_heading: torch.Tensor) -> torch.Tensor:
        """History segment features (N, H-1, 6)."""
        scaled = past / self.config.position_scale_m
        heading = past_heading[:, 1:, None]
        return torch.cat(
            [scaled[:, :-1], scaled[:, 1:], torch.sin(heading), torch.cos(heading)], dim=-1
        )

    def check_input(
        self,
        points: torch.Tensor,
        mask: torch.Tensor,
        types: torch.Tensor,
        past: torch.Tensor,
        past_heading: torch.Tensor,
    ) -> None:
        """ConfigError unless the shapes are (N, P, K, 2), (N, P, K), (N, P), (N, H, 2), (N, H)."""
        n, p, k = points.shape[:3]
        ok = (
            points.ndim == 4
            and points.shape[-1] == 2
            and k >= 2
            and mask.shape == (n, p, k)
            and types.shape == (n, p)
            and past.ndim == 3
            and past.shape[0] == n
            and past.shape[1] >= 2
            and past.shape[2] == 2
            and past_heading.shape == past.shape[:2]
        )
        if not ok:
            raise ConfigError(
                "vector encoder expects points (N, P, K>=2, 2), mask (N, P, K), types (N, P), "
                f"past (N, H>=2, 2), past_heading (N, H); got {tuple(points.shape)}, "
                f"{tuple(mask.shape)}, {tuple(types.shape)}, {tuple(past.shape)}, "
                f"{tuple(past_heading.shape)}"
            )

    def forward(
        self,
        points: torch.Tensor,
        mask: torch.Tensor,
        types: torch.Tensor,
        past: torch.Tensor,
        past_heading: torch.Tensor,
    ) -> torch.Tensor:
        """``[N, latent_dim]`` from the polylines and the agent's past (shapes: module docstring)."""
        self.check_input(points, mask, types, past, past_heading)
        polyline_tokens, polyline_present = self._polyline_tokens(points, mask.bool(), types.long())
        history = self._history_segments(past, past_heading)
        every_step = torch.ones(history.shape[:2], dtype=torch.bool, device=history.device)
        agent_token = self.history_subgraph(history, every_step)
        tokens = torch.cat([agent_token[:, None], polyline_tokens], dim=1)
        present = torch.cat([every_step[:, :1], polyline_present], dim=1)
        for layer in self.attention:
            agent_token = layer(agent_token, tokens, present)
        out: torch.Tensor = self.fc(agent_token)
        return out

    def describe(self, polylines: int, points: int, history: int) -> VectorDescription:
        """Parameters and MACs per sample for ``polylines`` x ``points`` and ``history`` points."""
        cfg, width = self.config, self.config.hidden_dim
        segments, steps = polylines * (points - 1), history - 1
        tokens = polylines + 1
        subgraph = _subgraph_macs(self.map_subgraph)
        history_subgraph = _subgraph_macs(self.history_subgraph)
        # Query, key, value and output projections (keys and values for every token, the query
        # and output for the agent's), the agent's scores and weighted sum, the feed-forward.
        attention = 2 * tokens * width**2 + 2 * width**2 + 2 * tokens * width + 4 * width**2
        macs = (
            segments * subgraph
            + polylines * _pooled_macs(self.map_subgraph)
            + steps * history_subgraph
            + _pooled_macs(self.history_subgraph)
            + cfg.attention_layers * attention
            + width * cfg.latent_dim
        )
        return VectorDescription(
            polylines=polylines,
            points=points,
            history=history,
            total_params=sum(p.numel() for p in self.parameters()),
            macs=macs,
            bottleneck=(("tokens", (tokens, width)),),
            latent_dim=cfg.latent_dim,
        )


register_encoder(
    "vector",
    Entry(
        VectorEncoderConfig,
        VectorMapEncoder,
        "VectorNet-style: polylines + agent history, subgraph max-pool, attention",
        input_kind="vector",
    ),
)
