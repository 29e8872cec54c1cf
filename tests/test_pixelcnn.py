"""The autoregressive decoder: causal masks (one and several image channels), the windowed
sampler against the full pass, the VAE with it (loss, bound, pictures) and its command option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mapenc.cli import main as cli_main
from mapenc.encoders import build_decoder
from mapenc.encoders.pixelcnn import MaskedConv2d, PixelCNNDecoder
from mapenc.errors import ConfigError
from mapenc.vae.image import ImageVAE, ImageVAEConfig, build_image_vae


def pixel_decoder(
    channels: int = 1, size: tuple[int, int] = (8, 7), **settings: object
) -> PixelCNNDecoder:
    torch.manual_seed(0)
    decoder = build_decoder(
        "pixelcnn", latent_dim=3, out_channels=channels, output_size=size, **settings
    )
    assert isinstance(decoder, PixelCNNDecoder)
    return decoder


def raster_positions(channels: int, height: int, width: int) -> torch.Tensor:
    """``[C, H, W]``: each value's place in the decoder's order (rows, then columns, then channels)."""
    return torch.arange(channels * height * width).view(height, width, channels).permute(2, 0, 1)


@pytest.mark.parametrize("channels", [1, 3])
def test_each_logit_depends_only_on_earlier_values(channels: int) -> None:
    decoder = pixel_decoder(channels, first_kernel=5, masked_layers=2, hidden=12).double().eval()
    z = torch.randn(1, 3, dtype=torch.float64)
    x = torch.rand(1, channels, 8, 7, dtype=torch.float64, requires_grad=True)
    positions = raster_positions(channels, 8, 7)
    for c, r, w in [(0, 0, 0), (channels - 1, 0, 3), (0, 4, 3), (channels - 1, 7, 6), (0, 5, 0)]:
        (grad,) = torch.autograd.grad(decoder(z, x)[0, c, r, w], x)
        assert grad[0][positions >= positions[c, r, w]].abs().max() == 0, (c, r, w)
    # ... and a logit does see the values just before it (left and above).
    (grad,) = torch.autograd.grad(decoder(z, x)[0, 0, 4, 3], x)
    assert grad[0, :, 4, 2].abs().sum() > 0 and grad[0, :, 3, 3].abs().sum() > 0


def test_masks_of_type_a_hide_the_centre_and_type_b_show_it_per_channel_group() -> None:
    a = MaskedConv2d(3, 6, 3, "A", image_channels=3)
    b = MaskedConv2d(6, 6, 3, "B", image_channels=3)
    # Output groups of 2 channels; A: group g sees image channels < g at the centre.
    assert a.mask[:, :, 1, 1].tolist() == [
        [0, 0, 0],
        [0, 0, 0],
        [1, 0, 0],
        [1, 0, 0],
        [1, 1, 0],
        [1, 1, 0],
    ]
    assert b.mask[:, :, 1, 1][4].tolist() == [1, 1, 1, 1, 1, 1]
    assert b.mask[:, :, 1, 1][0].tolist() == [1, 1, 0, 0, 0, 0]
    assert a.mask[:, :, 2].sum() == 0 and a.mask[:, :, 1, 2].sum() == 0
    with pytest.raises(ConfigError, match="odd"):
        MaskedConv2d(1, 4, 4, "A", image_channels=1)
    with pytest.raises(ConfigError, match="channel group"):
        MaskedConv2d(3, 2, 3, "A", image_channels=3)


def test_windowed_rows_give_the_same_logits_as_the_whole_image() -> None:
    decoder = pixel_decoder(2, size=(12, 5), first_kernel=5, masked_layers=2, hidden=8).eval()
    z = torch.randn(2, 3)
    x = torch.rand(2, 2, 12, 5)
    with torch.no_grad():
        condition = decoder.conditioning(z)
        full = decoder.logits(condition, x)
        for row in range(12):
            top = max(0, row - decoder.vertical_reach)
            window = decoder.logits(condition[:, :, top : row + 1], x[:, :, top : row + 1])
            torch.testing.assert_close(window[:, :, -1], full[:, :, row])


def test_samples_are_binary_reproducible_and_follow_the_model() -> None:
    decoder = pixel_decoder(1, size=(6, 6), first_kernel=3, masked_layers=1).eval()
    z = torch.randn(400, 3)
    first = decoder.sample(z, torch.Generator().manual_seed(3))
    again = decoder.sample(z, torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    # The first value has no context: its frequency matches the model's probability.
    with torch.no_grad():
        p = decoder(z, torch.zeros_like(first))[:, 0, 0, 0].sigmoid().mean().item()
    assert first[:, 0, 0, 0].mean().item() == pytest.approx(p, abs=0.08)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="conditioning"):
        pixel_decoder(conditioning="pixelcnn")
    with pytest.raises(ConfigError, match="masked_layers"):
        pixel_decoder(masked_layers=-1)
    with pytest.raises(ConfigError, match="bernoulli"):
        ImageVAE(
            build_image_vae(ImageVAEConfig(latent_dim=3, feature_dim=16)).encoder,
            pixel_decoder(size=(28, 28)),
            3,
            "gaussian",
        )


def test_vae_with_the_autoregressive_decoder_trains_and_bounds() -> None:
    torch.manual_seed(0)
    config = ImageVAEConfig(
        latent_dim=3,
        feature_dim=16,
        decoder="pixelcnn",
        decoder_settings={"first_kernel": 3, "masked_layers": 0},
    )
    model = build_image_vae(config)
    assert model.autoregressive
    x = (torch.rand(16, 1, 28, 28) < 0.2).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss, _ = model.loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 50
    with torch.no_grad():
        nll = model.iwae_nll(x, 6, chunk=4)
    assert nll.shape == (16,) and torch.isfinite(nll).all()
    pictures = model.sample(2, torch.Generator().manual_seed(0))
    assert pictures.shape == (2, 1, 28, 28) and set(pictures.unique().tolist()) <= {0.0, 1.0}


def test_train_mnist_takes_decoder_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train-mnist", "--encoder", "seed_global", "--latent-dim", "2", "--feature-dim", "16"]
    args += ["--decoder", "pixelcnn", "--decoder-setting", "first_kernel=3"]
    args += ["--decoder-setting", "masked_layers=0", "--decoder-setting", "conditioning=conv"]
    args += ["--epochs", "1", "--max-steps", "2", "--batch-size", "16", "--out", str(out)]
    args += ["--iw", "2", "--no-progress", "--binarize", "dynamic"]
    assert cli_main(args) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["decoder"] == "pixelcnn"
    saved = json.loads((out / "config.json").read_text())
    assert saved["decoder"]["first_kernel"] == 3 and saved["decoder"]["masked_layers"] == 0
    assert cli_main([*args, "--binarize", "none", "--out", str(tmp_path / "grey")]) == 2
    assert "needs binary targets" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main([*args[:8], "--decoder-setting", "no-equals-sign", "--out", str(out)])
