"""The MNIST VAE baseline: any registered encoder + decoder, a Gaussian posterior, a N(0, I) prior.

``ImageVAE`` maps images ``[N, C, H, W]`` through ``encoder`` to features ``[N, F]``, then two
linear heads give the diagonal Gaussian posterior ``q(z|x)`` over ``z`` in ``R^D``. The decoder
maps ``z`` to per-pixel logits ``[N, C, H, W]``; the likelihood is Bernoulli on those logits (with
grey-level targets this is the PyTorch-example protocol) or Gaussian with one learnt scale. An
autoregressive decoder (``pixelcnn``) also reads the image and gives the logits of each value
given ``z`` and the values before it; it is Bernoulli only.

Every quantity is in nats per image: summed over pixels and latent dimensions, averaged over the
batch. ``loss`` is the negative ELBO; ``iwae_nll`` the importance-weighted bound of Burda et al.
(2016), which tightens towards ``-log p(x)`` as ``k`` grows.

The experiment around it (train, evaluate, reload a run) is ``mapenc.experiments.mnist``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Literal, cast, get_args

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from mapenc.checks import FieldChecks
from mapenc.data.mnist import IMAGE_SIZE
from mapenc.encoders import build_decoder, build_encoder, default_decoder_for
from mapenc.encoders.registry import ENCODERS
from mapenc.errors import ConfigError
from mapenc.progress import progress_bar

PathType = str | PathLike[str]
Likelihood = Literal["bernoulli", "gaussian"]
LIKELIHOODS: tuple[str, ...] = get_args(Likelihood)
LOG_2PI = math.log(2.0 * math.pi)
METRICS_NAME = "metrics.json"


def images_of(batch: Any) -> torch.Tensor:
    """The image tensor of a batch: the batch itself or the first item of ``(images, labels)``."""
    return batch[0] if isinstance(batch, list | tuple) else batch


class ImageVAE(nn.Module):
    """VAE over images ``[N, C, H, W]`` with latent ``z`` of ``latent_dim`` dimensions.

    ``encoder``: ``[N, C, H, W] -> [N, F]`` with attribute ``latent_dim = F`` (its feature
    length); ``decoder``: ``[N, latent_dim] -> [N, C, H, W]`` logits (Bernoulli) or means
    (Gaussian), or, when it has ``autoregressive = True``, ``(z, x) -> [N, C, H, W]`` logits of
    each value given the ones before it, plus ``sample(z, generator)``. Targets lie in ``[0, 1]``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int,
        likelihood: Likelihood = "bernoulli",
    ) -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood={likelihood!r}: expected one of {LIKELIHOODS}")
        features = int(cast(int, encoder.latent_dim))
        self.autoregressive = bool(getattr(decoder, "autoregressive", False))
        if self.autoregressive and likelihood != "bernoulli":
            raise ConfigError("an autoregressive decoder needs likelihood='bernoulli'")
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.feature_activation = nn.SiLU()
        self.q_mean = nn.Linear(features, latent_dim)
        self.q_log_var = nn.Linear(features, latent_dim)
        if likelihood == "gaussian":
            self.log_sigma = nn.Parameter(torch.zeros(()))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z|x)``, each ``[N, D]``."""
        features = self.feature_activation(self.encoder(x))
        return self.q_mean(features), self.q_log_var(features)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` in nats, summed over pixels: ``x [N, C, H, W]``, ``z [..., N, D]`` →
        ``[..., N]`` (leading sample dimensions broadcast over the batch)."""
        lead = z.shape[:-2]
        flat_z = z.reshape(-1, z.shape[-1])
        if self.autoregressive:
            target = x.expand(*lead, *x.shape)
            out = self.decoder(flat_z, target.reshape(-1, *x.shape[1:])).reshape(target.shape)
        else:
            out = self.decoder(flat_z).reshape(*lead, *x.shape)
            target = x.expand_as(out)
        if self.likelihood == "bernoulli":
            per_pixel = -F.binary_cross_entropy_with_logits(out, target, reduction="none")
        else:
            per_pixel = (
                -0.5 * ((target - out) / self.log_sigma.exp()) ** 2 - self.log_sigma - 0.5 * LOG_2PI
            )
        return per_pixel.flatten(start_dim=-3).sum(-1)

    def elbo_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction ``-log p(x|z)`` (one reparameterised sample) and ``KL(q(z|x) || p(z))``
        (closed form), each ``[N]`` in nats; their sum is the negative ELBO."""
        mean, log_var = self.posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        recon = -self.log_likelihood(x, z.unsqueeze(0)).squeeze(0)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)
        return recon, kl

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Negative ELBO in nats per image (mean over the batch), with its ``recon`` and ``kl``."""
        recon, kl = self.elbo_terms(images_of(batch))
        return (recon + kl).mean(), {"recon": recon.mean().detach(), "kl": kl.mean().detach()}

    def iwae_nll(self, x: torch.Tensor, k: int, chunk: int = 100) -> torch.Tensor:
        """``-log (1/k) Σ_i p(x, z_i) / q(z_i|x)``, ``z_i ~ q(z|x)``: ``[N]`` nats.

        An upper bound on ``-log p(x)`` that decreases (in expectation) as ``k`` grows; ``k = 1`` is
        the negative ELBO estimated with one sample. Samples are drawn ``chunk`` at a time, so
        memory holds ``chunk * N`` decoded images, and combined with log-sum-exp.
        """
        if k < 1 or chunk < 1:
            raise ConfigError(f"iwae_nll: k={k} and chunk={chunk} must be at least 1")
        mean, log_var = self.posterior(x)
        std = (0.5 * log_var).exp()
        log_weights = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            eps = torch.randn((n, *mean.shape), device=mean.device, dtype=mean.dtype)
            z = mean + eps * std
            log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
            log_posterior = (-0.5 * (eps.pow(2) + LOG_2PI) - 0.5 * log_var).sum(-1)
            log_weights.append(self.log_likelihood(x, z) + log_prior - log_posterior)
        return math.log(k) - torch.logsumexp(torch.cat(log_weights), dim=0)

    @torch.no_grad()
    def active_units(self, batches: Iterable[torch.Tensor], threshold: float = 0.01) -> int:
        """Latent dimensions whose posterior mean varies over the data: ``Cov_x(E_q[z_d]) > threshold``
        (Burda et al. 2016). ``batches`` yields images ``[N, C, H, W]`` (e.g. a whole test set)."""
        means = torch.cat([self.posterior(x)[0] for x in batches])
        return int((means.var(dim=0, unbiased=False) > threshold).sum())

    @torch.no_grad()
    def reconstruct(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Image decoded from ``z = E_q[z]``: ``[N, C, H, W]`` in ``[0, 1]``. The expected image
        ``E[x | z]``, or for an autoregressive decoder a draw from ``p(x | z)``."""
        return self.decode(self.posterior(x)[0], generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images decoded (as in ``reconstruct``) from prior draws ``z ~ N(0, I)``."""
        device = self.q_mean.weight.device
        z = torch.randn((n, self.latent_dim), generator=generator).to(device)
        return self.decode(z, generator)

    def decode(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z [N, D]`` -> the expected image, or a draw for an autoregressive decoder."""
        if self.autoregressive:
            sampler: Any = self.decoder  # has ``sample(z, generator)``, see the class docstring
            return cast(torch.Tensor, sampler.sample(z, generator))
        return self.mean_image(self.decoder(z))

    def mean_image(self, decoded: torch.Tensor) -> torch.Tensor:
        """Decoder output turned into the likelihood's mean image."""
        return decoded.sigmoid() if self.likelihood == "bernoulli" else decoded.clamp(0.0, 1.0)


@dataclass(frozen=True)
class ImageVAEConfig:
    """An ``ImageVAE`` for MNIST: registry names, latent size ``D``, encoder feature length ``F``.

    ``decoder=None`` takes the encoder's mirror (``default_decoder_for``). ``encoder_settings``
    are passed on to ``build_encoder`` (e.g. channel widths) besides ``latent_dim=feature_dim`` and,
    for encoders that take them, ``in_channels=1`` and ``input_size=(28, 28)``;
    ``decoder_settings`` to ``build_decoder`` (e.g. ``{"first_kernel": 5}`` for ``pixelcnn``).

    Attributes:
        encoder: registered encoder name.
        decoder: registered decoder name (None: the encoder's mirror).
        latent_dim: D, the size of z.
        feature_dim: F, the length of the encoder's output.
        likelihood: bernoulli or gaussian (one learnt scale).
        encoder_settings: an encoder config field.
        decoder_settings: a decoder config field (e.g. first_kernel=5).
    """

    encoder: str = "seed_global"
    decoder: str | None = None
    latent_dim: int = 20
    feature_dim: int = 256
    likelihood: Likelihood = "bernoulli"
    encoder_settings: dict[str, Any] = field(default_factory=dict)
    decoder_settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = FieldChecks(self).number("latent_dim", integer=True, minimum=1)
        checks.number("feature_dim", integer=True, minimum=1).done()
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood={self.likelihood!r}: expected one of {LIKELIHOODS}")


def _mnist_encoder_settings(config: ImageVAEConfig) -> dict[str, Any]:
    """``build_encoder`` keywords for 28×28 one-channel input, honouring ``encoder_settings``."""
    if config.encoder not in ENCODERS:
        build_encoder(config.encoder)  # raises ConfigError listing the registered names
    accepted = {f.name for f in dataclasses.fields(ENCODERS[config.encoder].config_type)}
    settings: dict[str, Any] = {"latent_dim": config.feature_dim}
    if "in_channels" in accepted:
        settings["in_channels"] = 1
    if "input_size" in accepted:
        settings["input_size"] = (IMAGE_SIZE, IMAGE_SIZE)
    return {**settings, **config.encoder_settings}


def build_image_vae(
    config: ImageVAEConfig,
    encoder_settings: Mapping[str, Any] | None = None,
    decoder_settings: Mapping[str, Any] | None = None,
) -> ImageVAE:
    """The ``ImageVAE`` that ``config`` describes, for MNIST-sized input.

    ``encoder_settings`` / ``decoder_settings`` are the saved ``config`` of a built encoder and
    decoder (as in ``config.json``); when given they rebuild exactly that architecture.
    """
    encoder = build_encoder(config.encoder, **(encoder_settings or _mnist_encoder_settings(config)))
    decoder_name = config.decoder or default_decoder_for(config.encoder)
    if decoder_settings is None:
        decoder_settings = {
            **config.decoder_settings,
            "latent_dim": config.latent_dim,
            "out_channels": 1,
            "output_size": (IMAGE_SIZE, IMAGE_SIZE),
        }
    decoder = build_decoder(decoder_name, **decoder_settings)
    return ImageVAE(encoder, decoder, config.latent_dim, config.likelihood)


def image_batches(
    dataset: Dataset[Any], batch_size: int, device: torch.device
) -> Iterable[torch.Tensor]:
    """Images of ``dataset`` in order, ``[B, C, H, W]`` on ``device``."""
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        yield images_of(batch).to(device)


@torch.no_grad()
def evaluate_image_vae(
    model: ImageVAE,
    dataset: Dataset[Any],
    iw_k: int = 100,
    batch_size: int = 100,
    chunk: int = 100,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Test metrics in nats per image, reproducible for a given ``seed``:

    ``test_loss`` (negative ELBO, one sample), ``recon``, ``kl``, ``nll`` (``iwae_nll`` with
    ``k = iw_k``), ``active_units`` and ``iw_k``. The global RNG is left untouched. ``progress``
    shows a bar over the test batches (a large ``k`` takes minutes on a CPU).
    """
    model.eval()
    device = model.q_mean.weight.device
    if model.autoregressive:  # its decoder keeps [chunk * batch, hidden, H, W] maps in memory
        chunk = min(chunk, max(1, 2000 // batch_size))
    totals = {"test_loss": 0.0, "recon": 0.0, "kl": 0.0, "nll": 0.0}
    count = 0
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        batches = progress_bar(
            image_batches(dataset, batch_size, device),
            desc=f"test, k={iw_k}",
            total=math.ceil(len(dataset) / batch_size),  # type: ignore[arg-type]
            enabled=progress,
            leave=False,
        )
        for x in batches:
            recon, kl = model.elbo_terms(x)
            totals["recon"] += float(recon.sum())
            totals["kl"] += float(kl.sum())
            totals["test_loss"] += float((recon + kl).sum())
            totals["nll"] += float(model.iwae_nll(x, iw_k, chunk).sum())
            count += len(x)
    metrics = {key: value / count for key, value in totals.items()}
    metrics["active_units"] = model.active_units(image_batches(dataset, batch_size, device))
    metrics["iw_k"] = iw_k
    return metrics


@torch.no_grad()
def heldout_loss(model: ImageVAE, dataset: Dataset[Any], batch_size: int = 500) -> float:
    """Negative ELBO (one sample, nats per image) over ``dataset``: the per-epoch test curve."""
    device = model.q_mean.weight.device
    total, count = 0.0, 0
    for x in image_batches(dataset, batch_size, device):
        recon, kl = model.elbo_terms(x)
        total += float((recon + kl).sum())
        count += len(x)
    return total / count
