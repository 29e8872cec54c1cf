"""The MNIST VAE experiment: train an ``ImageVAE`` into a run folder, evaluate it, reload it.

``train(config, run_dir)`` fits the model of a ``MnistExperimentConfig`` (the run folder then holds
``checkpoint.pt``, ``config.json`` and ``training.json``); ``evaluate(run_dir, data)`` scores the
run's test split (``MnistEvaluation``, nats per image); ``load_run(run_dir)`` gives back
``(config, model)``. ``train_and_evaluate`` does both and writes ``metrics.json``: what
``train-mnist``, the demo and the encoder study run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, Subset

from mapenc.checks import FieldChecks
from mapenc.data.mnist import BINARIZE_MODES, Binarize, MnistImages, mnist_datasets
from mapenc.encoders import default_decoder_for
from mapenc.errors import ConfigError, DataError
from mapenc.train import (
    TrainConfig,
    check_model_fits,
    config_from_dict,
    count_parameters,
    fit,
    seed_everything,
)
from mapenc.train.checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    load_model_weights,
    read_json,
    write_json,
)
from mapenc.train.distributed import DistContext, init_distributed, resolve_device
from mapenc.train.run_folder import claim_run_folder
from mapenc.vae.image import (
    ImageVAE,
    ImageVAEConfig,
    build_image_vae,
    evaluate_image_vae,
    heldout_loss,
)

PathType = str | PathLike[str]
METRICS_NAME = "metrics.json"
TRAINING_NAME = "training.json"


@dataclass(frozen=True)
class MnistExperimentConfig:
    """One MNIST run: data, binarisation, model, training, and the ``k`` of the test NLL.

    Attributes:
        model: the ImageVAE.
        train: the training loop's settings.
        data: mnist.npz, a folder of IDX files, or a CSV (None: the embedded 5,000 images).
        binarize: none (grey-level targets), dynamic (resampled each epoch) or static.
        eval_iw_k: importance samples of the test NLL bound.
    """

    model: ImageVAEConfig = field(default_factory=ImageVAEConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: str | None = None
    binarize: Binarize = "none"
    eval_iw_k: int = 100

    def __post_init__(self) -> None:
        if self.binarize not in BINARIZE_MODES:
            raise ConfigError(f"binarize={self.binarize!r}: expected one of {BINARIZE_MODES}")
        FieldChecks(self).number("eval_iw_k", integer=True, minimum=1).done()


@dataclass(frozen=True)
class MnistEvaluation:
    """Test metrics of a run, nats per image (lower is better) unless said otherwise.

    Attributes:
        test_loss: negative ELBO (one sample); ``recon`` + ``kl``.
        recon: reconstruction term.
        kl: KL term.
        nll: importance-weighted bound with ``iw_k`` samples.
        active_units: latent dimensions the posterior uses.
        iw_k: samples of the ``nll`` bound.
        test_images: images scored (the whole test split or its first ``first``).
        eval_seconds: wall time of the evaluation.
    """

    test_loss: float
    recon: float
    kl: float
    nll: float
    active_units: int
    iw_k: int
    test_images: int
    eval_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready fields."""
        return dataclasses.asdict(self)


def check_trainable(config: MnistExperimentConfig, model: ImageVAE) -> None:
    """Refuse an autoregressive decoder on grey-level targets (its bound would mean nothing)."""
    if model.autoregressive and config.binarize == "none":
        raise ConfigError(
            "an autoregressive decoder needs binary targets (binarize='dynamic' or 'static'): "
            "with grey levels it reads grey context values in training but draws binary ones, "
            "so its bound is not the likelihood of anything it can sample"
        )


def train(
    config: MnistExperimentConfig,
    run_dir: PathType,
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Fit the VAE of ``config`` on the training split into ``run_dir``; returns the run folder.

    ``run_dir/training.json`` holds ``params``, ``train_seconds``, ``steps``, ``epochs``,
    ``stopped`` and ``train_images``. Under torchrun every rank trains, rank 0 writes. The run
    folder is claimed (``mapenc.train.run_folder``) before the data is read.
    """
    context = init_distributed(config.train.device)
    with claim_run_folder(run_dir, resume, overwrite, main=context.is_main):
        return _train(config, Path(run_dir), resume, context)


def _train(
    config: MnistExperimentConfig, run_dir: Path, resume: bool, context: DistContext
) -> Path:
    """``train`` once the run folder is held."""
    check_model_fits(lambda: build_image_vae(config.model))
    seed_everything(config.train.seed)
    model = build_image_vae(config.model)
    check_trainable(config, model)
    train_set, test_set = mnist_datasets(config.data, config.binarize, config.train.seed)
    result = fit(
        model,
        train_set,
        config.train,
        run_dir,
        resume=resume,
        saved_configs={
            "experiment": config,
            "encoder": model.encoder.config,
            "decoder": model.decoder.config,
        },
        evaluate=lambda m: {"test_loss": heldout_loss(m, test_set)},  # type: ignore[arg-type]
        context=context,
    )
    if context.is_main:
        facts = {
            "params": count_parameters(model),
            "train_seconds": round(result.seconds, 2),
            "steps": result.steps,
            "epochs": result.epochs_completed,
            "stopped": result.stopped,
            "train_images": len(train_set),
        }
        write_json(Path(run_dir) / TRAINING_NAME, facts)
    return Path(run_dir)


def load_run(run_dir: PathType, device: str = "auto") -> tuple[MnistExperimentConfig, ImageVAE]:
    """The config and trained model (weights of ``checkpoint.pt``, in eval mode) of a run folder."""
    run = Path(run_dir)
    if not (run / CONFIG_NAME).is_file() or not (run / CHECKPOINT_NAME).is_file():
        raise DataError(f"{run}: not a train-mnist run (needs {CONFIG_NAME} and {CHECKPOINT_NAME})")
    saved = read_json(run / CONFIG_NAME)
    if not isinstance(saved, dict) or "experiment" not in saved:
        raise ConfigError(f"{run / CONFIG_NAME}: not the config of a train-mnist run")
    config = config_from_dict(MnistExperimentConfig, saved["experiment"])
    model = build_image_vae(config.model, saved.get("encoder"), saved.get("decoder"))
    load_model_weights(model, run / CHECKPOINT_NAME)
    model.to(resolve_device(device)).eval()
    return config, model


def test_split(config: MnistExperimentConfig, data: PathType | None = None) -> MnistImages:
    """The test split a run was trained against (or the one of ``data`` when given)."""
    return mnist_datasets(
        data if data is not None else config.data, config.binarize, config.train.seed
    )[1]


def first_images(dataset: MnistImages, first: int | None) -> Dataset[Any]:
    """``dataset``, or its first ``first`` images (all when ``first`` is None)."""
    if first is None:
        return dataset
    if first < 1:
        raise ConfigError(f"first={first}: must be at least 1")
    return Subset(dataset, range(min(first, len(dataset))))


def evaluate_model(
    model: ImageVAE, dataset: Dataset[Any], iw_k: int, progress: bool = False
) -> MnistEvaluation:
    """``evaluate_image_vae`` of ``model`` on ``dataset``, with its size and wall time."""
    started = time.monotonic()
    metrics = evaluate_image_vae(model, dataset, iw_k, progress=progress)
    return MnistEvaluation(
        test_loss=metrics["test_loss"],
        recon=metrics["recon"],
        kl=metrics["kl"],
        nll=metrics["nll"],
        active_units=int(metrics["active_units"]),
        iw_k=iw_k,
        test_images=len(dataset),  # type: ignore[arg-type]
        eval_seconds=round(time.monotonic() - started, 2),
    )


def evaluate(
    run_dir: PathType,
    data: PathType | None = None,
    *,
    iw_k: int | None = None,
    first: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> MnistEvaluation:
    """Scores of a train-mnist run on its test split (or the one of ``data``).

    ``iw_k`` defaults to the run's ``eval_iw_k``; ``first`` scores only the first images of the
    split (for a costly ``iw_k``).
    """
    config, model = load_run(run_dir, device)
    scored = first_images(test_split(config, data), first)
    return evaluate_model(model, scored, iw_k or config.eval_iw_k, progress)


def train_and_evaluate(
    config: MnistExperimentConfig,
    run_dir: PathType,
    resume: bool = False,
    eval_first: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train, then evaluate on the test split (or its first ``eval_first`` images).

    Returns (and writes as ``run_dir/metrics.json``) the ``MnistEvaluation`` fields plus the
    training facts of ``train``, ``encoder``, ``decoder``, ``latent_dim`` and ``binarize``. Under
    torchrun rank 0 alone evaluates; other ranks return an empty dict.
    """
    context = init_distributed(config.train.device)
    with claim_run_folder(run_dir, resume, overwrite, main=context.is_main):
        train(config, run_dir, resume=resume)
        return _evaluate_run(config, Path(run_dir), eval_first) if context.is_main else {}


def _evaluate_run(
    config: MnistExperimentConfig, run_dir: Path, eval_first: int | None
) -> dict[str, Any]:
    """The evaluation part of ``train_and_evaluate`` (rank 0)."""
    _, model = load_run(run_dir, config.train.device)
    scored = first_images(test_split(config), eval_first)
    metrics = evaluate_model(model, scored, config.eval_iw_k, config.train.progress).to_dict()
    metrics.update(read_json(Path(run_dir) / TRAINING_NAME))
    metrics.update(
        encoder=config.model.encoder,
        decoder=config.model.decoder or default_decoder_for(config.model.encoder),
        latent_dim=config.model.latent_dim,
        binarize=config.binarize,
    )
    write_json(Path(run_dir) / METRICS_NAME, metrics)
    return metrics
