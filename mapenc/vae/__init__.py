"""Variational autoencoders built on the encoder registry."""

from mapenc.vae.image import (
    ImageVAE,
    ImageVAEConfig,
    MnistExperimentConfig,
    train_and_evaluate_mnist,
)

__all__ = ["ImageVAE", "ImageVAEConfig", "MnistExperimentConfig", "train_and_evaluate_mnist"]
