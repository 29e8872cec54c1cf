"""What every study task shares: its name, the metrics its tables lead with, the probe columns."""

from __future__ import annotations

from typing import Literal, get_args

Task = Literal["mnist", "traj"]
STUDY_TASKS: tuple[str, ...] = get_args(Task)

# The metrics each task reports first (lower is better for all of them) and tables show.
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "mnist": ("test_loss", "nll"),
    "traj": ("minADE", "minFDE", "offroad_rate"),
}
PROBE_COLUMNS = (
    "probe_sensitivity_shift",
    "probe_sensitivity_rot90",
    "probe_sensitivity_flip",
    "probe_active_units",
    "probe_where_r2",
)
