"""Print the README's forecasting tables (markdown) from the eval-traj JSON files in this folder.

Run from the repository root: ``python docs/forecasting/make_tables.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = ("cv_last_step", "cv_least_squares", "cv_recorded", "kinematic", "lane_following")


def interval(entry: dict) -> str:
    low, high = entry["ci95"]
    return f"{entry['mean']:+.3f} [{low:+.3f}, {high:+.3f}]"


def table(name: str) -> None:
    result = json.loads((HERE / name).read_text())
    print(
        f"\n{name}: n = {result['n']} samples, {result['scenes']} scenes, split {result['split']}"
        f", zero-shot {result['zero_shot']}, ground-truth off-road {result['ground_truth']['offroad_rate']}"
    )
    print("| method | minADE6 | minFDE6 | miss rate | off-road | minFDE6 model − method, 95 % CI |")
    print("|---|---|---|---|---|---|")
    rows = [("map model", result["model"], None)]
    if "versus" in result:
        rows.append(("no-map twin", result["versus"], result["model_minus_versus"]["minFDE"]))
    rows += [
        (row, result["baselines"][row], result["model_minus_baseline"][row]["minFDE"])
        for row in ROWS
    ]
    for label, scores, diff in rows:
        cells = [f"{scores[m]:.3f}" for m in ("minADE", "minFDE", "miss_rate")]
        cells.append(f"{scores['offroad_rate']:.4f}")
        print(f"| {label} | {' | '.join(cells)} | {interval(diff) if diff else '–'} |")
    for group in ("by_location", "by_kind"):
        print(
            f"\n{group}: "
            + "; ".join(
                f"{key} (n={v['n']}): map {v['model']['minFDE']:.2f}, no-map {v.get('versus', {}).get('minFDE', float('nan')):.2f}, "
                f"kinematic {v['kinematic']['minFDE']:.2f}, lane {v['lane_following']['minFDE']:.2f}, CV {v['cv_recorded']['minFDE']:.2f}"
                for key, v in result[group].items()
            )
        )


if __name__ == "__main__":
    for path in sorted(HERE.glob("*.json")):
        if "split_summary" not in path.name:
            table(path.name)
