"""mapenc: vector road maps to agent-centred rasters, CNN map encoders and map-conditioned VAEs."""

from mapenc.errors import (
    ConfigError,
    DataError,
    MapencError,
    MapFormatError,
    PoseError,
    ScenarioFormatError,
    TrainingError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "MapFormatError",
    "MapencError",
    "PoseError",
    "ScenarioFormatError",
    "TrainingError",
    "__version__",
]
