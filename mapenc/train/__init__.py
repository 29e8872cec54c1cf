"""The training machinery every mapenc model uses: ``fit``, checkpoints, resume, DDP."""

from mapenc.train.checkpoint import load_checkpoint, save_checkpoint
from mapenc.train.config import TrainConfig, config_from_dict, config_to_dict
from mapenc.train.distributed import DistContext, init_distributed
from mapenc.train.loop import FitResult, Trainer, count_parameters, fit, seed_everything
from mapenc.train.parts import check_model_fits

__all__ = [
    "DistContext",
    "FitResult",
    "TrainConfig",
    "Trainer",
    "check_model_fits",
    "config_from_dict",
    "config_to_dict",
    "count_parameters",
    "fit",
    "init_distributed",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
]
