"""Variational autoencoders built on the encoder registry (their experiments: ``mapenc.experiments``)."""

from mapenc.vae.image import ImageVAE, ImageVAEConfig
from mapenc.vae.trajectory import TrajCVAEConfig, TrajectoryCVAE

__all__ = ["ImageVAE", "ImageVAEConfig", "TrajCVAEConfig", "TrajectoryCVAE"]
