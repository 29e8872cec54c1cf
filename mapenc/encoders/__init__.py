"""CNN encoders ``[N, C, H, W] -> [N, latent_dim]``, mirror decoders, and ``describe``.

>>> e = build_encoder("seed_global", latent_dim=16)      # [N, 1, 28, 28] -> [N, 16]
>>> d = build_decoder(default_decoder_for("seed_global"), latent_dim=16, out_channels=1,
...                   output_size=(28, 28))              # [N, 16] -> [N, 1, 28, 28] logits
"""

from mapenc.encoders import conv, decoders, pixelcnn, resnet, seed, vector  # noqa: F401  (register)
from mapenc.encoders.describe import Description, LayerRow, describe
from mapenc.encoders.registry import (
    build_decoder,
    build_encoder,
    default_decoder_for,
    encoder_input_kind,
    list_decoders,
    list_encoders,
)
from mapenc.encoders.vector import VectorDescription, VectorMapEncoder

__all__ = [
    "Description",
    "LayerRow",
    "VectorDescription",
    "VectorMapEncoder",
    "build_decoder",
    "build_encoder",
    "default_decoder_for",
    "describe",
    "encoder_input_kind",
    "list_decoders",
    "list_encoders",
]
