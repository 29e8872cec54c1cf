"""Torch datasets: MNIST (``mapenc.data.mnist``) and trajectory samples."""
