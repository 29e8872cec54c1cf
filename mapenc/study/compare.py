"""The encoder study: train every encoder under one protocol with several seeds, probe, summarise.

``run_compare(CompareConfig(...), out_dir)`` trains run ``<encoder>-s<seed>`` (with ``-r<px>`` when
several raster sizes are compared) of the task (``mapenc.study.tasks``) into ``out_dir/runs/``,
skipping runs whose metrics file exists, so an interrupted study resumes. Every run takes the same
number of optimiser steps. Each run gives one row of ``out_dir/results.json``:

- ``encoder``, ``seed`` (and for ``traj`` ``raster_size``, ``pixel_size_m``);
- the task's metrics: MNIST ``test_loss``, ``nll``, ``kl``, ``recon`` (nats per image),
  ``active_units``; trajectories ``minADE``, ``minFDE``, ``miss_rate``, ``offroad_rate`` (metres,
  rates; best of ``k`` = 6) and the constant-velocity baseline's ``cv_ADE``, ``cv_FDE``;
- ``params`` (the whole model), ``encoder_params``, ``steps``, ``train_seconds``,
  ``eval_seconds`` and ``seconds`` (their sum); MNIST ``test_images`` (the fixed test subset),
  trajectories ``n_test``;
  ``bottleneck_shape`` (the ``[C, h, w]`` maps entering the fc), ``bottleneck_elements`` and
  ``encoder_macs`` (multiply-accumulates per sample);
- the probes of ``mapenc.study.probes`` on the trained encoder, prefixed ``probe_``.

``summary.json`` holds mean and std (over seeds) per encoder; ``format_table`` prints it.

``out_dir/compare_config.json`` records the study's settings. A folder whose runs were made under
another protocol (any setting but those in ``CELL_CHOICE_FIELDS``, e.g. ``max_steps``) is refused:
its finished cells would otherwise be reused as they are, beside a config that says otherwise.

Encoders are registry names (``mapenc.encoders.list_encoders()``, among them the seed designs at
any input size, ``seed_spatial_conv`` and ``seed_global_conv``) or (trajectories only) ``none``:
the same model without its map branch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mapenc.errors import ConfigError, printable
from mapenc.evaluation.trajectory_types import TRAJECTORY_TYPES
from mapenc.progress import progress_bar
from mapenc.study.config import CompareConfig
from mapenc.study.protocol import PROBE_COLUMNS, Run, StudyTask
from mapenc.study.tasks import study_task
from mapenc.train.checkpoint import read_json, write_json
from mapenc.train.logs import TRAIN_LOG_NAME, read_log

PathType = str | PathLike[str]
STUDY_CONFIG_NAME = "compare_config.json"
RESULTS_NAME = "results.json"
# Settings that choose which cells run, where and how they are shown, not how a cell is trained
# or scored: a study may be resumed with other values. Every other field is its protocol.
CELL_CHOICE_FIELDS = frozenset(
    (
        "encoders",
        "seeds",
        "raster_sizes",
        "references",
        "device",
        "progress",
        "workers",
        "cache_dir",
    )
)
SUMMARY_NAME = "summary.json"
# Seconds between two progress lines while cells train in worker processes.
POLL_SECONDS = 60.0


def refuse_changed_protocol(config: CompareConfig, out_dir: Path) -> None:
    """ConfigError when ``out_dir`` holds runs of a study made under another protocol than
    ``config``'s (the settings outside ``CELL_CHOICE_FIELDS``), naming each changed setting.

    Settings the saved config lacks (written before they existed) are not compared.
    """
    saved_path = out_dir / STUDY_CONFIG_NAME
    runs = out_dir / "runs"
    if not saved_path.is_file() or not runs.is_dir() or not any(runs.iterdir()):
        return
    saved = read_json(saved_path)
    if not isinstance(saved, dict):
        raise ConfigError(f"{saved_path}: not a study config (a JSON object)")
    # Through JSON, so tuples compare equal to the lists they were saved as.
    current = json.loads(json.dumps(dataclasses.asdict(config)))
    changed = [
        f"{name} {saved[name]!r} -> {value!r}"
        for name, value in current.items()
        if name not in CELL_CHOICE_FIELDS and name in saved and saved[name] != value
    ]
    if changed:
        raise ConfigError(
            f"{out_dir}: holds a study run under another protocol ({'; '.join(changed)}); its "
            "finished cells would be reused as they are: use another --out, or the same "
            "settings to resume it"
        )


def run_dir_of(out_dir: Path, run: Run) -> Path:
    """Where a run of the study lives."""
    return out_dir / "runs" / run.folder_name()


def _train_cell(config: CompareConfig, run: Run, run_dir: Path) -> float:
    """Train one run in a worker process (one thread, no bars); returns its wall seconds."""
    torch.set_num_threads(1)
    started = time.monotonic()
    study_task(dataclasses.replace(config, progress=False)).train(run, run_dir)
    return time.monotonic() - started


def _logged_step(run_dir: Path) -> int | None:
    """The last step in a run's ``train_log.csv`` (None before its first row)."""
    log = run_dir / TRAIN_LOG_NAME
    if not log.is_file():
        return None
    rows = read_log(log)[1]  # a worker may be writing the last line
    return int(rows[-1]["step"]) if rows else None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


class CellProgress:
    """One line per started and finished cell, with the time spent and an estimate of what is
    left: each pending cell's timed-step estimate, scaled by how far the finished cells' real
    times (data loading, scoring and the machine's load included) ran from theirs."""

    def __init__(self, workers: int, expected_s: dict[Run, float]) -> None:
        self.workers, self.expected_s = workers, expected_s
        self.done: dict[Run, float] = {}
        self.started = time.monotonic()

    def finished(self, run: Run, seconds: float) -> None:
        self.done[run] = seconds
        pending = [cell for cell in self.expected_s if cell not in self.done]
        scale = sum(self.done.values()) / max(sum(self.expected_s[c] for c in self.done), 1e-9)
        eta = scale * sum(self.expected_s[cell] for cell in pending) / self.workers
        elapsed = time.monotonic() - self.started
        print(
            f"[{len(self.done)}/{len(self.expected_s)}] {run.folder_name()} done in "
            f"{_minutes(seconds)}; elapsed {_minutes(elapsed)}, about {_minutes(eta)} left "
            f"(cells take {scale:.1f}x their timed steps)",
            flush=True,
        )

    @staticmethod
    def running(cells: dict[Run, Path], max_steps: int) -> None:
        states = []
        for run, run_dir in cells.items():
            step = _logged_step(run_dir)
            states.append(f"{run.folder_name()} step {step if step is not None else 0}/{max_steps}")
        print("running: " + "; ".join(states), flush=True)


def expected_seconds(
    study: StudyTask, pending: Sequence[Run], config: CompareConfig
) -> dict[Run, float]:
    """Training seconds of each pending run: a few steps per encoder timed on one thread, as
    each worker trains, times the step budget."""
    per_step: dict[str, float] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for run in pending:
            if run.encoder not in per_step:
                per_step[run.encoder] = study.seconds_per_step(run)
    finally:
        torch.set_num_threads(threads)
    return {run: per_step[run.encoder] * config.max_steps for run in pending}


def train_pending(study: StudyTask, config: CompareConfig, out_dir: Path) -> None:
    """Train every run without metrics, ``config.workers`` at a time; say up front how many
    there are and how long they should take, then report each cell as it starts and ends."""
    runs = study.runs()
    pending = [run for run in runs if not (run_dir_of(out_dir, run) / study.metrics_name).is_file()]
    for run in runs:
        if run not in pending:
            where = printable(str(run_dir_of(out_dir, run)))
            print(f"{run.folder_name()}: finished earlier, metrics read from {where}")
    if not pending:
        return
    expected = expected_seconds(study, pending, config)
    workers = min(config.workers, len(pending))
    print(
        f"{len(pending)} of {len(runs)} cells to train, {config.max_steps} steps each, "
        f"{config.workers} at a time: about {_minutes(sum(expected.values()) / workers)} of "
        "training (from steps timed now on one thread; loading data, scoring and a busy machine "
        "add to it, and the estimate is corrected as cells finish)",
        flush=True,
    )
    progress = CellProgress(workers, expected)
    if config.workers == 1:
        for run in pending:
            print(f"start {run.folder_name()}", flush=True)
            started = time.monotonic()
            study.train(run, run_dir_of(out_dir, run))
            progress.finished(run, time.monotonic() - started)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=config.workers, mp_context=context) as pool:
        futures = {
            pool.submit(_train_cell, config, run, run_dir_of(out_dir, run)): run for run in pending
        }
        waiting = set(futures)
        while waiting:
            finished, waiting = wait(waiting, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in finished:
                progress.finished(futures[future], future.result())
            training = {
                futures[f]: run_dir_of(out_dir, futures[f])
                for f in waiting
                if (run_dir_of(out_dir, futures[f]) / TRAIN_LOG_NAME).is_file()
            }
            if training and not finished:
                progress.running(training, config.max_steps)


def iterate_runs(
    study: StudyTask, out_dir: Path, progress: bool = True
) -> Iterator[dict[str, Any]]:
    """Train (or skip, when its metrics exist) every run of ``study``; yield its results row."""
    runs = study.runs()
    bar = progress_bar(runs, desc="compare", unit="run", enabled=progress)
    for run in bar:
        run_dir = run_dir_of(out_dir, run)
        if not (run_dir / study.metrics_name).is_file():
            bar.set_postfix_str(run.folder_name())
            study.train(run, run_dir)
        yield {"encoder": run.encoder, "seed": run.seed, **study.row(run, run_dir)}


def group_key(row: dict[str, Any]) -> tuple[str, int | None]:
    """Rows of one encoder (and raster size) are the seeds of one summary entry."""
    return row["encoder"], row.get("raster_size")


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per encoder (and raster size): ``n`` seeds and ``{mean, std}`` of every numeric field.

    ``std`` is the sample standard deviation over seeds (0 for a single seed). Fields that are
    the same in every seed (``params``, ``bottleneck_elements``) keep std 0.
    """
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(group_key(row), []).append(row)
    summary = []
    for (encoder, raster_size), members in groups.items():
        entry: dict[str, Any] = {"encoder": encoder, "raster_size": raster_size, "n": len(members)}
        entry["bottleneck_shape"] = members[0].get("bottleneck_shape", [])
        numeric = [
            key
            for key, value in members[0].items()
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and key not in ("seed", "raster_size")
        ]
        for key in numeric:
            values = np.array([float(m[key]) for m in members if key in m])
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            entry[key] = {"mean": float(values.mean()), "std": std}
        summary.append(entry)
    return summary


def _cell(stat: dict[str, float] | None, digits: int) -> str:
    if stat is None or not math.isfinite(stat["mean"]):
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def format_table(summary: Sequence[dict[str, Any]], metrics: Sequence[str], digits: int = 3) -> str:
    """Aligned text table: one line per encoder, ``metrics`` (with ``digits`` decimals) and probes
    as mean ± std."""
    show_size = any(entry.get("raster_size") for entry in summary)
    header = ["encoder", *(["raster"] if show_size else []), "n", *metrics]
    header += ["params", "bottleneck", *[c.removeprefix("probe_") for c in PROBE_COLUMNS]]
    lines = [header]
    for entry in summary:
        cells = [entry["encoder"], *([str(entry["raster_size"])] if show_size else [])]
        cells.append(str(entry["n"]))
        cells += [_cell(entry.get(m), digits) for m in metrics]
        cells.append(f"{entry['params']['mean']:,.0f}")
        cells.append(f"{entry['bottleneck_elements']['mean']:,.0f}")
        cells += [_cell(entry.get(c), 2) for c in PROBE_COLUMNS]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def run_compare(config: CompareConfig, out_dir: PathType) -> list[dict[str, Any]]:
    """Run the study into ``out_dir``: ``results.json``, ``summary.json``, PNGs; returns the rows.

    Rows are rewritten to ``results.json`` after every run, so a partial study is readable.
    Raises ConfigError, before any work, when ``out_dir`` holds a study made under another
    protocol (``refuse_changed_protocol``).
    """
    from mapenc.study.plots import plot_learning_curves, plot_study

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    refuse_changed_protocol(config, out)
    write_json(out / STUDY_CONFIG_NAME, dataclasses.asdict(config))
    study = study_task(config)
    train_pending(study, config, out)
    rows: list[dict[str, Any]] = []
    for row in iterate_runs(study, out, config.progress):
        rows.append(row)
        write_json(out / RESULTS_NAME, rows)
    summary = summarise(rows)
    extras = study.summary_extras(out, rows)
    intervals = extras.pop("intervals", {})
    for entry in summary:
        entry.update(intervals.get(entry["encoder"], {}))
    baselines = [
        {"baseline": name, **v} for name, v in intervals.items() if name not in groups(rows)
    ]
    write_json(
        out / SUMMARY_NAME,
        {
            "task": config.task,
            "encoders": summary,
            **({"baselines": baselines} if baselines else {}),
            **extras,
        },
    )
    plot_study(summary, study.headline_metrics, config.task, out)
    logs: dict[str, list[Path]] = {}
    for run in study.runs():
        log = run_dir_of(out, run) / TRAIN_LOG_NAME
        if log.is_file():
            logs.setdefault(run.folder_name().rsplit("-s", 1)[0], []).append(log)
    plot_learning_curves(logs, out / "learning_curves.png")
    return rows


def _interval_cell(interval: dict[str, Any]) -> str:
    low, high = interval["ci95"]
    return f"{interval['mean']:.3f} [{low:.3f}, {high:.3f}]"


def _aligned(lines: Sequence[Sequence[str]]) -> str:
    """Rows of cells as left-aligned text columns."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def _interval_entries(saved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A summary's interval entries by method name: the encoders', then the baselines'."""
    entries = {e["encoder"]: e for e in saved.get("encoders", []) if "metrics" in e}
    return entries | {b["baseline"]: b for b in saved.get("baselines", [])}


def format_intervals(saved: dict[str, Any], reference: str) -> str:
    """Aligned text table of a ``summary.json`` with intervals: per encoder and baseline, each
    metric's mean [95 % interval] and its difference to the method ``reference`` (one of the
    summary's ``references``; empty without intervals)."""
    entries = _interval_entries(saved)
    if not entries:
        return ""
    metrics = list(next(iter(entries.values()))["metrics"])
    header = ["method", "seeds", *metrics, *(f"{m} - {reference}" for m in metrics)]
    lines = [header]
    for name, entry in entries.items():
        difference = entry.get(f"minus_{reference}", {})
        lines.append(
            [name, str(entry["seeds"])]
            + [_interval_cell(entry["metrics"][m]) for m in metrics]
            + [_interval_cell(difference[m]) if m in difference else "-" for m in metrics]
        )
    return _aligned(lines)


# The agents a study's by-type table shows, in its order: all of them, then the ones a map can
# help (standing and straight agents dominate the averages).
TYPE_TABLE_GROUPS = ("all", "moving", "turning")


def format_type_intervals(saved: dict[str, Any], reference: str, metric: str = "minFDE") -> str:
    """Aligned text table of ``metric`` for all, moving and turning agents (``by_trajectory_type``
    of a ``summary.json``): per encoder and baseline the mean [95 % interval] and the difference
    to ``reference``; empty when the summary has no types."""
    by_type = saved.get("by_trajectory_type")
    entries = _interval_entries(saved)
    if not by_type or not entries:
        return ""
    columns = {"all": (sum(by_type[t]["n"] for t in TRAJECTORY_TYPES), entries)}
    for group in TYPE_TABLE_GROUPS[1:]:
        columns[group] = (by_type[group]["n"], by_type[group].get("intervals", {}))
    header = ["method"]
    for group, (n, _) in columns.items():
        header += [f"{group} (n={n}) {metric}", f"- {reference}"]
    lines = [header]
    for name in entries:
        line = [name]
        for _, methods in columns.values():
            entry = methods.get(name, {})
            difference = entry.get(f"minus_{reference}", {})
            line.append(_interval_cell(entry["metrics"][metric]) if entry else "-")
            line.append(_interval_cell(difference[metric]) if metric in difference else "-")
        lines.append(line)
    return _aligned(lines)


def groups(rows: Sequence[dict[str, Any]]) -> set[str]:
    """The encoder names of the rows."""
    return {row["encoder"] for row in rows}


def format_corrected(saved: dict[str, Any]) -> str:
    """Aligned text table of a ``summary.json``'s ``multiple_comparisons``: per comparison the
    group, the pair, the mean difference, the p-value and the Holm-adjusted one; empty when the
    summary has none."""
    family = saved.get("multiple_comparisons") or {}
    comparisons = family.get("comparisons", [])
    if not comparisons:
        return ""
    lines = [["agents", "encoder - reference", f"{family['metric']} diff", "p", "p Holm", "shown"]]
    for c in comparisons:
        lines.append(
            [
                f"{c['group']} (n={c['n']})",
                f"{c['encoder']} - {c['reference']}",
                f"{c['mean']:+.3f}",
                f"{c['p']:.4f}",
                f"{c['p_holm']:.4f}",
                "yes" if c["shown"] else "no",
            ]
        )
    return _aligned(lines)
