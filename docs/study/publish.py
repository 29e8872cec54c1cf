"""Copy a finished trajectory study into a folder fit to commit, leaving out per-sample rows of
data sets whose terms forbid it.

    python docs/study/publish.py runs/study_urban docs/study/urban --leave-out womd_210

Copies the study's tables, plots, ``compare_config.json``, ``results.json`` and
``summary.json`` (aggregates: means, intervals, probes), each run's ``training.json`` and
``epochs.csv``, and writes ``per_sample.npz``: one row per scored sample of every data set but
those left out, with its identity (``scene``, ``source``, ``track_id``, ``t_obs``,
``trajectory_type``, from the study's ``test_samples.npz``) and, per run, the float32 columns
``<cell>/minADE``, ``<cell>/minFDE`` and ``<cell>/offroad_rate`` (the ``per_sample.npz`` of
``runs/<cell>/``). Checkpoints and
forecasts are not copied: ``mapenc eval-traj runs/<cell> --predictions F.npz`` rebuilds the
forecasts of a run from the study folder.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from mapenc.study.compare import RESULTS_NAME, STUDY_CONFIG_NAME, SUMMARY_NAME
from mapenc.study.traj_scores import PER_SAMPLE_NAME, SAMPLES_NAME, SampleScores

COPIED = (STUDY_CONFIG_NAME, RESULTS_NAME, SUMMARY_NAME, "table.txt")
RUN_FILES = ("training.json", "epochs.csv")
PUBLISHED_METRICS = ("minADE", "minFDE", "offroad_rate")


def publish(study: Path, out: Path, leave_out: set[str], split: str = "test") -> int:
    """Write the committed copy of ``study`` into ``out``; returns the rows kept."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (*COPIED, *(p.name for p in study.glob("*.png"))):
        if (study / name).is_file():
            shutil.copyfile(study / name, out / name)
    with np.load(study / f"{split}_{SAMPLES_NAME}") as saved:
        identities = {key: saved[key] for key in saved.files}
    keep = ~np.isin(identities["source"], sorted(leave_out))
    columns = {key: values[keep] for key, values in identities.items()}
    for run_dir in sorted((study / "runs").iterdir()):
        scores = SampleScores.load(run_dir / PER_SAMPLE_NAME)
        if not np.array_equal(scores.scenes, identities["scene"]):
            raise SystemExit(f"{run_dir}: its samples are not those of {split}_{SAMPLES_NAME}")
        for metric in PUBLISHED_METRICS:
            columns[f"{run_dir.name}/{metric}"] = scores.values[metric][keep].astype(np.float32)
        (out / "runs" / run_dir.name).mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, out / "runs" / run_dir.name / name)
    np.savez_compressed(out / PER_SAMPLE_NAME, **columns)
    return int(keep.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="the study folder of mapenc compare --task traj")
    parser.add_argument("out", type=Path, help="the folder to write")
    parser.add_argument(
        "--leave-out", nargs="*", default=[], help="data sets whose per-sample rows stay out"
    )
    args = parser.parse_args()
    kept = publish(args.study, args.out, set(args.leave_out))
    print(f"{kept} samples per run written to {args.out / PER_SAMPLE_NAME}")


if __name__ == "__main__":
    main()
