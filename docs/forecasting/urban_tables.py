"""Print the README's urban forecasting tables (markdown) and check them against the targets.

Reads eval-traj JSON files written with ``--versus`` (the map model scored beside its no-map
twin): the pooled test of all training sources (with ``by_source``) and zero-shot files. Run from
the repository root::

    python docs/forecasting/urban_tables.py runs/urban_test.json [runs/urban_av2.json ...]

Per data set and for all of them pooled, the rows are all agents, then the moving, turning and
stationary ones (Waymo Open Dataset trajectory types of the true future); minFDE6 in metres.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

GROUPS = ("all", "moving", "turning", "stationary")
BASELINES = ("kinematic", "lane_following", "cv_recorded")
# Targets: minFDE6 over the kinematic baseline's, all agents and moving ones; stationary agents
# at most this far above it (m); turning agents this much lower than without the map.
ALL_RATIO, MOVING_RATIO, STATIONARY_SLACK_M, TURNING_CUT = 0.85, 0.80, 0.05, 0.30


def interval(entry: dict[str, Any]) -> str:
    low, high = entry["ci95"]
    return f"{entry['mean']:+.3f} [{low:+.3f}, {high:+.3f}]"


def group(section: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``all`` row (the section itself) or one of its ``by_trajectory_type`` groups."""
    return section if name == "all" else section["by_trajectory_type"][name]


def rows(label: str, section: dict[str, Any]) -> list[str]:
    """Markdown rows of one data set: every group with samples."""
    out = []
    for name in GROUPS:
        entry = group(section, name)
        if not entry.get("n", section.get("n")):
            continue
        n = entry["n"]
        fde = entry["model"]["minFDE"]
        kin = entry["baselines"]["kinematic"]["minFDE"]
        cells = [
            label if name == "all" else "",
            name,
            f"{n:,}",
            f"**{fde:.3f}**",
            f"{entry['versus']['minFDE']:.3f}",
            *(f"{entry['baselines'][b]['minFDE']:.3f}" for b in BASELINES),
            f"{fde / kin:.2f}",
            interval(entry["model_minus_versus"]["minFDE"]),
            interval(entry["model_minus_baseline"]["kinematic"]["minFDE"]),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def table(sections: dict[str, dict[str, Any]]) -> None:
    print(
        "| data | agents | n | map model | no-map | kinematic | lane following | const. velocity "
        "| map / kinematic | map − no-map, 95 % CI | map − kinematic, 95 % CI |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, section in sections.items():
        for line in rows(label, section):
            print(line)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(label: str, section: dict[str, Any]) -> None:
    """Each per-source target: all and moving agents against the kinematic baseline, stationary
    agents within a few centimetres of it."""
    checks = []
    for name, ratio in (("all", ALL_RATIO), ("moving", MOVING_RATIO)):
        entry = group(section, name)
        got = entry["model"]["minFDE"] / entry["baselines"]["kinematic"]["minFDE"]
        checks.append(f"{name} {got:.2f} x kinematic (<= {ratio}: {verdict(got <= ratio)})")
    still = group(section, "stationary")
    if still.get("n"):
        excess = still["model"]["minFDE"] - still["baselines"]["kinematic"]["minFDE"]
        checks.append(
            f"stationary {excess:+.3f} m over kinematic (<= +{STATIONARY_SLACK_M}: "
            f"{verdict(excess <= STATIONARY_SLACK_M)})"
        )
    print(f"- {label}: " + "; ".join(checks))


def map_targets(section: dict[str, Any]) -> None:
    """Pooled: the map helps moving agents (interval below 0) and cuts turning agents' minFDE6
    by at least ``TURNING_CUT`` (interval below 0)."""
    moving = group(section, "moving")["model_minus_versus"]["minFDE"]
    turning = group(section, "turning")
    cut = 1 - turning["model"]["minFDE"] / turning["versus"]["minFDE"]
    diff = turning["model_minus_versus"]["minFDE"]
    print(
        f"- pooled moving: map − no-map {interval(moving)} "
        f"({verdict(moving['ci95'][1] < 0)}); turning: {cut:.0%} lower, {interval(diff)} "
        f"({verdict(cut >= TURNING_CUT and diff['ci95'][1] < 0)})"
    )


def main(paths: list[str]) -> None:
    for path in paths:
        result = json.loads(Path(path).read_text())
        print(
            f"\n{path}: split {result['split']}, zero-shot {result['zero_shot']}, "
            f"resampling {result.get('resampling')}"
        )
        sections = {"pooled" if len(result.get("by_source", {})) > 1 else "all": result}
        if len(result.get("by_source", {})) > 1:
            sections |= result["by_source"]
        table(sections)
        print()
        for label, section in sections.items():
            targets(label, section)
        map_targets(result)


if __name__ == "__main__":
    main(sys.argv[1:])
