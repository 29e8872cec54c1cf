"""The encoder study behind `mapenc compare`: train encoders alike, probe their latents, plot.

>>> rows = run_compare(CompareConfig(task="mnist", encoders=("conv-global", "conv-spatial"),
...                                  seeds=3, max_minutes=1.0), "runs/compare_mnist")
"""

from mapenc.study.compare import (
    STUDY_ENCODERS,
    CompareConfig,
    StudyEncoder,
    format_table,
    run_compare,
    summarise,
)
from mapenc.study.probes import ProbeConfig, probe_encoder

__all__ = [
    "STUDY_ENCODERS",
    "CompareConfig",
    "ProbeConfig",
    "StudyEncoder",
    "format_table",
    "probe_encoder",
    "run_compare",
    "summarise",
]
