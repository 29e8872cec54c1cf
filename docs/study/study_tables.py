"""Print the README's tables of a trajectory study from its ``summary.json`` and ``results.json``.

    python docs/study/study_tables.py docs/study/urban

Tables (markdown): minFDE6 of all, moving and turning agents per method with the paired
differences to ``none``; the same per data set (``by_source``); the family of differences with
Holm-adjusted p-values; and what each encoder costs and keeps (parameters, MACs, bottleneck,
training time, probes; means over seeds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GROUPS = ("all", "moving", "turning")
PROBES = ("probe_where_r2", "probe_sensitivity_shift", "probe_sensitivity_rotate")


def interval(entry: dict[str, Any] | None, signed: bool = False) -> str:
    """``mean [low, high]`` of an interval dict, or a dash."""
    if not entry:
        return "–"
    low, high = entry["ci95"]
    form = "{:+.3f}" if signed else "{:.3f}"
    return f"{form.format(entry['mean'])} [{form.format(low)}, {form.format(high)}]".replace(
        "-", "−"
    )


def methods_of(summary: dict[str, Any]) -> list[str]:
    """Encoders in study order, then the baselines."""
    return [e["encoder"] for e in summary["encoders"]] + [
        b["baseline"] for b in summary["baselines"]
    ]


def group_entries(scope: dict[str, Any], pooled: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per group of ``GROUPS``: ``{"n", "intervals"}`` of a scope (``by_trajectory_type`` of the
    summary or of one data set) with ``all`` from ``pooled``."""
    return {"all": pooled, **{g: scope.get(g, {}) for g in GROUPS[1:]}}


def type_table(summary: dict[str, Any], groups: dict[str, dict[str, Any]], metric: str) -> str:
    """One row per method: ``metric`` and its difference to none within every group."""
    head = ["method"]
    for group in GROUPS:
        head += [f"{group} (n={groups[group].get('n', 0):,})", "− none"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in methods_of(summary):
        cells = [name]
        for group in GROUPS:
            entry = groups[group].get("intervals", {}).get(name)
            cells.append(interval(entry["metrics"][metric] if entry else None))
            difference = (entry or {}).get("minus_none", {}).get(metric)
            cells.append(interval(difference, signed=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pooled_scope(summary: dict[str, Any]) -> dict[str, Any]:
    """The pooled intervals in the shape of a group entry."""
    intervals = {e["encoder"]: e for e in summary["encoders"]}
    intervals.update({b["baseline"]: b for b in summary["baselines"]})
    n = sum(
        summary["by_trajectory_type"][t]["n"]
        for t in summary["by_trajectory_type"]
        if t not in ("moving", "turning")
    )
    return {"n": n, "intervals": intervals}


def family_table(summary: dict[str, Any]) -> str:
    """The multiple-comparison family: every difference shown after Holm's correction, and the
    count of the others."""
    family = summary["multiple_comparisons"]
    lines = ["| agents | difference | minFDE6 (m) | p | p, Holm |", "|---|---|---|---|---|"]
    for c in family["comparisons"]:
        if c["shown"]:
            mean = f"{c['mean']:+.3f}".replace("-", "−")
            lines.append(
                f"| {c['group']} | {c['encoder']} − {c['reference']} | {mean} | "
                f"{c['p']:.4f} | {c['p_holm']:.4f} |"
            )
    hidden = sum(not c["shown"] for c in family["comparisons"])
    return "\n".join(lines) + f"\n\n{hidden} of {len(family['comparisons'])} not shown."


def cost_table(rows: list[dict[str, Any]]) -> str:
    """Per encoder, means over seeds of its size, cost and probes."""
    by_encoder: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_encoder.setdefault(row["encoder"], []).append(row)
    head = ["encoder", "raster", "params (encoder)", "MACs / sample", "bottleneck"]
    head += ["train min", "where-R²", "shift / 15° sensitivity"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, members in by_encoder.items():

        def mean(key: str, runs: list[dict[str, Any]] = members) -> float:
            values = [float(r[key]) for r in runs if key in r]
            return sum(values) / len(values) if values else float("nan")

        probes = "–"
        if "probe_where_r2" in members[0]:
            probes = (
                f"{mean('probe_sensitivity_shift'):.2f} / {mean('probe_sensitivity_rotate'):.2f}"
            )
        cells = [
            name,
            f"{members[0]['raster_size']} px" if name not in ("none", "vector") else "–",
            f"{mean('encoder_params'):,.0f}",
            f"{mean('encoder_macs') / 1e6:.1f} M",
            f"{mean('bottleneck_elements'):,.0f}",
            f"{mean('train_seconds') / 60:.1f}",
            f"{mean('probe_where_r2'):.2f}" if "probe_where_r2" in members[0] else "–",
            probes,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="a study folder (summary.json, results.json)")
    parser.add_argument("--metric", default="minFDE")
    args = parser.parse_args()
    summary = json.loads((args.study / "summary.json").read_text())
    rows = json.loads((args.study / "results.json").read_text())
    pooled = pooled_scope(summary)
    print(f"## pooled {args.metric}\n")
    print(type_table(summary, group_entries(summary["by_trajectory_type"], pooled), args.metric))
    for source, entry in summary["by_source"].items():
        print(f"\n## {source} {args.metric}\n")
        print(type_table(summary, group_entries(entry["by_trajectory_type"], entry), args.metric))
    print("\n## shown after Holm's correction\n")
    print(family_table(summary))
    print("\n## cost\n")
    print(cost_table(rows))


if __name__ == "__main__":
    main()
