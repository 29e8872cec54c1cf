"""Variational autoencoders built on the encoder registry."""

from mapenc.vae.image import (
    ImageVAE,
    ImageVAEConfig,
    MnistExperimentConfig,
    train_and_evaluate_mnist,
)
from mapenc.vae.trajectory import TrajCVAEConfig, TrajectoryCVAE

__all__ = [
    "ImageVAE",
    "ImageVAEConfig",
    "MnistExperimentConfig",
    "TrajCVAEConfig",
    "TrajectoryCVAE",
    "train_and_evaluate_mnist",
]
