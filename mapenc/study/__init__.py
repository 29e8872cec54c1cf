"""The encoder study behind `mapenc compare`: train encoders alike, probe their latents, plot.

>>> rows = run_compare(CompareConfig(task="mnist", encoders=("conv-global", "conv-spatial"),
...                                  seeds=3, max_steps=1000), "runs/compare_mnist")
"""

from mapenc.study.compare import format_table, run_compare, summarise
from mapenc.study.config import CompareConfig
from mapenc.study.probes import ProbeConfig, probe_encoder

__all__ = [
    "CompareConfig",
    "ProbeConfig",
    "format_table",
    "probe_encoder",
    "run_compare",
    "summarise",
]
