"""describe(): hand-counted parameters, MACs, elements and receptive fields; the CLI command."""

from __future__ import annotations

import json

import pytest
from torch import nn

from mapenc.cli import main
from mapenc.encoders import build_decoder, build_encoder, describe
from mapenc.encoders.layers import BasicBlock
from mapenc.errors import ConfigError


def test_numbers_equal_a_hand_count() -> None:
    net = nn.Sequential(
        nn.Conv2d(2, 3, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
    )
    d = describe(net, (2, 8, 8))
    rows = {row.name: row for row in d.rows}
    assert [row.name for row in d.rows] == ["0", "1", "2", "3"]
    assert rows["0"].output_shape == (3, 4, 4)
    assert rows["0"].elements == 48
    assert rows["0"].params == 2 * 3 * 9 + 3
    assert rows["0"].macs == 48 * 2 * 9
    assert rows["1"].macs == 0 and rows["1"].params == 0
    assert rows["3"].params == 48 * 5 + 5
    assert rows["3"].macs == 48 * 5
    assert d.total_params == 57 + 245
    assert d.total_macs == 864 + 240
    assert d.bottleneck == (("1", (3, 4, 4)),)
    assert d.compression_ratio == pytest.approx(128 / 48)


def field_after(*layers: nn.Module, size: int = 32) -> float:
    """Receptive field (px) of the last row of ``layers`` on a one-channel ``size`` map."""
    field = describe(nn.Sequential(*layers), (1, size, size)).rows[-1].receptive_field_px
    assert field is not None and field[0] == field[1]
    return field[0]


def test_receptive_fields_of_known_stacks() -> None:
    assert field_after(*(nn.Conv2d(1, 1, 3, padding=1) for _ in range(3))) == 7
    assert field_after(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3)) == 7
    assert field_after(nn.Conv2d(1, 1, 3, dilation=2)) == 5
    assert field_after(nn.MaxPool2d(2), nn.Conv2d(1, 1, 3), nn.ReLU()) == 2 + 2 * 2
    assert field_after(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1), size=20) == 20


def test_residual_block_takes_the_larger_branch() -> None:
    block = BasicBlock(1, 2, stride=2, norm="none", act="relu")
    rows = describe(block, (1, 16, 16)).rows
    assert rows[-1].name == "out_activation"
    assert rows[-1].receptive_field_px == (3 + 2 * 2, 3 + 2 * 2)
    assert rows[-2].name == "shortcut.0" and rows[-2].receptive_field_px == (1, 1)


def test_transposed_conv_macs_and_shape() -> None:
    net = nn.Sequential(nn.Unflatten(1, (4, 5, 5)), nn.ConvTranspose2d(4, 2, 3, stride=2))
    d = describe(net, (100,))
    last = d.rows[-1]
    assert last.output_shape == (2, 11, 11)
    assert last.macs == 100 * 2 * 9
    assert last.receptive_field_px is None
    assert d.compression_ratio is None


def test_seed_designs_bottleneck_and_compression() -> None:
    glob = describe(build_encoder("seed_global"), (1, 28, 28))
    assert [r.output_shape for r in glob.rows if r.kind == "Conv2d"] == [
        (32, 14, 14),
        (64, 7, 7),
        (128, 1, 1),
    ]
    assert glob.bottleneck_elements == 128
    assert glob.compression_ratio == pytest.approx(784 / 128)
    spatial = describe(build_encoder("seed_spatial"), (1, 100, 100), pixel_size_m=0.5)
    assert spatial.bottleneck == (("features.5", (1, 14, 14)),)
    assert spatial.compression_ratio == pytest.approx(10000 / 196)
    conv_fields = [r.receptive_field_px for r in spatial.rows if r.kind == "Conv2d"]
    assert conv_fields == [(5, 5), (13, 13), (45, 45)]
    metres = spatial.to_dict()["layers"][4]["receptive_field_m"]
    assert metres == [22.5, 22.5]


def test_mixed_bottleneck_counts_both_branches() -> None:
    encoder = build_encoder("conv-mixed", input_size=(64, 48))
    d = describe(encoder, encoder.input_shape)
    assert len(d.bottleneck) == 2
    assert d.bottleneck_elements == encoder.fc[-1].in_features == 128 + 4 * 4 * 3


def test_table_and_json_agree() -> None:
    encoder = build_encoder("conv-global", widths=(4, 8), strides=(2, 2), input_size=32)
    d = describe(encoder, encoder.input_shape)
    data = json.loads(d.to_json())
    assert data["total_params"] == sum(p.numel() for p in encoder.parameters())
    assert [row["name"] for row in data["layers"]] == [r.name for r in d.rows]
    text = str(d)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["layer", "type", "output"]
    assert any("[N, 8, 8, 8]" in line for line in lines)
    assert f"compression 1,024 / {d.bottleneck_elements:,}" in text


def test_describe_keeps_training_mode_and_rejects_bad_shapes() -> None:
    encoder = build_encoder("seed_global")
    encoder.train()
    describe(encoder, (1, 28, 28))
    assert encoder.training
    with pytest.raises(ConfigError, match="28, 28"):
        describe(encoder, (1, 30, 30))
    with pytest.raises(ConfigError, match="positive"):
        describe(encoder, (1, 28, 28), pixel_size_m=0)


def test_decoder_description_has_no_bottleneck() -> None:
    decoder = build_decoder("seed_global", latent_dim=6, out_channels=1, output_size=28)
    d = describe(decoder, (6,))
    assert d.rows[-1].output_shape == (1, 28, 28)
    assert d.bottleneck == ()


def test_cli_prints_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "conv-spatial", "--input-shape", "6", "100", "80", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == [6, 100, 80]
    assert data["bottleneck_elements"] == 4 * 7 * 5
    assert main(["describe", "seed_spatial", "--latent-dim", "8", "--pixel-size", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "[N, 1, 14, 14]" in out and "RF m" in out
    assert main(["describe", "seed_global", "--input-shape", "1", "32", "32"]) == 2
    assert "fixed input shape" in capsys.readouterr().err
