"""ImageVAE: ELBO terms, training signal, the importance-weighted bound, active units, the
MNIST experiment end to end (on a few hundred embedded images) and its commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mapenc.cli import main as cli_main
from mapenc.data.mnist import MnistImages, load_mnist
from mapenc.errors import ConfigError
from mapenc.experiments.mnist import MnistExperimentConfig, load_run, train_and_evaluate
from mapenc.train import TrainConfig
from mapenc.vae.image import ImageVAE, ImageVAEConfig, build_image_vae


class FlatEncoder(nn.Module):
    """Stand-in encoder: ``[N, 1, 28, 28] -> [N, features]``."""

    def __init__(self, features: int = 32) -> None:
        super().__init__()
        self.latent_dim = features
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FlatDecoder(nn.Module):
    """Stand-in decoder: ``[N, D] -> [N, 1, 28, 28]`` logits."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, 64), nn.SiLU(), nn.Linear(64, 784))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)


def tiny_vae(latent_dim: int = 4, likelihood: str = "bernoulli") -> ImageVAE:
    torch.manual_seed(0)
    return ImageVAE(FlatEncoder(), FlatDecoder(latent_dim), latent_dim, likelihood)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """256 embedded training digits, dynamically binarised once: ``[256, 1, 28, 28]``."""
    splits = load_mnist()
    pick = np.random.default_rng(0).choice(len(splits.x_train), 256, replace=False)
    return MnistImages(splits.x_train[pick], splits.y_train[pick], "static", seed=0).images


def test_elbo_terms_are_finite_and_kl_matches_closed_form(digits: torch.Tensor) -> None:
    model = tiny_vae()
    recon, kl = model.elbo_terms(digits[:16])
    assert recon.shape == kl.shape == (16,)
    assert torch.isfinite(recon).all() and (kl >= 0).all()
    # An untrained decoder gives logits near 0: about log 2 nats for each of 784 pixels.
    assert recon.mean().item() == pytest.approx(784 * math.log(2), rel=0.2)
    mean, log_var = model.posterior(digits[:16])
    q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(q, p).sum(-1))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_decreases_over_a_few_steps(digits: torch.Tensor, likelihood: str) -> None:
    model = tiny_vae(likelihood=likelihood)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        loss, metrics = model.loss((digits[(step % 4) * 64 : (step % 4 + 1) * 64], None))
        assert set(metrics) == {"recon", "kl"}
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 50


def test_gaussian_likelihood_is_the_normal_log_density() -> None:
    model = tiny_vae(likelihood="gaussian")
    with torch.no_grad():
        model.log_sigma.fill_(-1.0)
    x = torch.rand(3, 1, 28, 28)
    z = torch.randn(1, 3, 4)
    mean = model.decoder(z[0])
    expected = torch.distributions.Normal(mean, math.exp(-1.0)).log_prob(x).flatten(1).sum(-1)
    torch.testing.assert_close(model.log_likelihood(x, z)[0], expected)


def test_iwae_bound_tightens_with_k(digits: torch.Tensor) -> None:
    model = tiny_vae()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(40):  # a little training, so the posterior is not the prior
        loss, _ = model.loss(digits[(step % 4) * 64 : (step % 4 + 1) * 64])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x = digits[:64]
    with torch.no_grad():
        torch.manual_seed(1)
        neg_elbo = torch.stack([sum(model.elbo_terms(x)) for _ in range(20)]).mean(0)
        nll = {k: model.iwae_nll(x, k, chunk=7).mean().item() for k in (1, 10, 100)}
    assert nll[100] < nll[10] < nll[1]
    assert nll[1] == pytest.approx(neg_elbo.mean().item(), abs=2.0)
    assert nll[100] <= neg_elbo.mean().item() + 0.5
    with pytest.raises(ConfigError, match="k=0"):
        model.iwae_nll(x, 0)


def test_iwae_is_exact_when_the_posterior_is_the_prior_and_z_is_ignored(
    digits: torch.Tensor,
) -> None:
    # q(z|x) = p(z) and a decoder that ignores z: every weight p(x, z)/q(z|x) equals p(x), so the
    # bound is exactly -log p(x) for every k and every chunking, and the ELBO's KL is 0.
    model = tiny_vae()
    with torch.no_grad():
        for head in (model.q_mean, model.q_log_var):
            head.weight.zero_()
            head.bias.zero_()
        model.decoder.net[0].weight.zero_()
        x = digits[:8]
        exact = -model.log_likelihood(x, torch.zeros(1, 8, 4))[0]
        for k, chunk in [(1, 1), (5, 2), (12, 5), (12, 100)]:
            torch.testing.assert_close(model.iwae_nll(x, k, chunk), exact)
        recon, kl = model.elbo_terms(x)
    torch.testing.assert_close(recon, exact)
    torch.testing.assert_close(kl, torch.zeros(8))


def test_active_units_counts_dimensions_that_vary(digits: torch.Tensor) -> None:
    model = tiny_vae(latent_dim=4)
    with torch.no_grad():
        model.q_mean.weight.zero_()
        model.q_mean.bias.fill_(0.3)
        assert model.active_units([digits[:100], digits[100:]]) == 0
        model.q_mean.weight[1].fill_(0.5)
        model.q_mean.weight[3].fill_(0.5)
        assert model.active_units([digits[:100], digits[100:]]) == 2


def test_samples_and_reconstructions_are_images(digits: torch.Tensor) -> None:
    model = tiny_vae()
    recon = model.reconstruct(digits[:5])
    samples = model.sample(6, generator=torch.Generator().manual_seed(0))
    for images in (recon, samples):
        assert images.shape[1:] == (1, 28, 28)
        assert images.min() >= 0 and images.max() <= 1


def test_registry_model_and_bad_settings() -> None:
    model = build_image_vae(ImageVAEConfig(encoder="seed_global", latent_dim=3, feature_dim=16))
    x = torch.rand(2, 1, 28, 28)
    loss, _ = model.loss(x)
    assert torch.isfinite(loss)
    with pytest.raises(ConfigError, match="unknown encoder"):
        build_image_vae(ImageVAEConfig(encoder="no-such-encoder"))
    with pytest.raises(ConfigError, match="likelihood"):
        ImageVAEConfig(likelihood="poisson")  # type: ignore[arg-type]


def _tiny_experiment(**train: object) -> MnistExperimentConfig:
    settings: dict[str, object] = {"epochs": 1, "max_steps": 6, "batch_size": 32, "progress": False}
    settings.update(train)
    return MnistExperimentConfig(
        model=ImageVAEConfig(encoder="seed_global", latent_dim=2, feature_dim=32),
        train=TrainConfig(**settings),  # type: ignore[arg-type]
        binarize="dynamic",
        eval_iw_k=3,
    )


def test_train_and_evaluate_then_reload(tmp_path: Path) -> None:
    config = _tiny_experiment()
    metrics = train_and_evaluate(config, tmp_path)
    assert metrics["steps"] == 6 and metrics["stopped"] == "max_steps"
    assert metrics["nll"] <= metrics["test_loss"] + 1.0
    assert metrics["test_loss"] == pytest.approx(metrics["recon"] + metrics["kl"])
    assert json.loads((tmp_path / "metrics.json").read_text())["params"] == metrics["params"]
    saved, model = load_run(tmp_path)
    assert saved == config
    trained = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[name])


def test_train_and_eval_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train-mnist", "--encoder", "seed_global", "--latent-dim", "2", "--binarize", "static"]
    args += ["--epochs", "1", "--max-steps", "4", "--batch-size", "32", "--out", str(out)]
    args += ["--iw", "2", "--no-progress"]
    assert cli_main(args) == 0
    capsys.readouterr()
    assert cli_main(["eval-mnist", str(out), "--iw", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"test_loss", "nll", "kl", "recon", "active_units", "iw_k"} <= set(result)
    assert result["iw_k"] == 4
    for name in ("reconstructions.png", "samples.png", "latent_scatter.png", "eval.json"):
        assert (out / name).stat().st_size > 0, name
    assert cli_main(["eval-mnist", str(out), "--iw", "3", "--first", "7"]) == 0
    assert json.loads(capsys.readouterr().out)["test_images"] == 7
    assert json.loads((out / "eval.json").read_text())["iw_k"] == 3
    assert cli_main(["eval-mnist", str(out), "--first", "0"]) == 2
    assert cli_main(["eval-mnist", str(tmp_path / "absent")]) == 2
