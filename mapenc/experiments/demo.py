"""The main job on embedded data: maps → rasters → encoders → MNIST VAE → trajectory VAE.

Everything lands under one folder (``runs/demo/`` from ``make demo``): JSON metrics, PNGs and an
``index.html`` that shows them together. Needs nothing beyond a fresh clone: the maps come from
``data/`` (Argoverse 2 sample, Lanelet2 Karlsruhe) and the synthetic town generator, the digits
from the embedded 5,000-image MNIST subset.
"""

from __future__ import annotations

import dataclasses
import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mapenc.encoders import build_encoder, describe
from mapenc.experiments import mnist, plots, trajectory
from mapenc.experiments.render import RenderConfig, render_loaded
from mapenc.maps import write_generic_scene
from mapenc.maps.io import load_map_or_scenario, summarize
from mapenc.maps.plot import draw_map_png
from mapenc.maps.synthetic import ScenarioConfig, TownConfig, make_scenario, make_town
from mapenc.maps.types import VectorMap
from mapenc.train import TrainConfig
from mapenc.vae.image import ImageVAEConfig

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo.

    Attributes:
        out: output folder.
        mnist_minutes: training budget of the MNIST VAE (wall clock).
        traj_minutes: training budget of each trajectory VAE (map and no-map).
        traj_scenes: number of synthetic scenes (towns) for the trajectory task.
        seed: seed of everything random.
    """

    out: Path = Path("runs/demo")
    mnist_minutes: float = 1.0
    traj_minutes: float = 2.5
    traj_scenes: int = 16
    seed: int = 0


@dataclass
class Section:
    """One block of the index page: a title, a short text, figures and JSON."""

    title: str
    text: str
    images: list[Path] = dataclasses.field(default_factory=list)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


def embedded_scenes(out: Path, seed: int) -> list[tuple[str, Path]]:
    """(name, path) of the scenes to draw: the committed real maps that are present, and a
    synthetic town written in the generic format under ``out``."""
    scenes: list[tuple[str, Path]] = []
    av2 = DATA_DIR / "av2_sample"
    if av2.is_dir():
        scenes.append(("av2_austin", av2))
    karlsruhe = DATA_DIR / "lanelet2_karlsruhe" / "mapping_example.osm"
    if karlsruhe.is_file():
        scenes.append(("lanelet2_karlsruhe", karlsruhe))
    town = make_town(TownConfig(seed=seed))
    synthetic = write_generic_scene(
        make_scenario(ScenarioConfig(seed=seed), town), out / "synthetic_scene"
    )
    scenes.append(("synthetic_town", synthetic))
    return scenes


def pose_on_a_lane(vector_map: VectorMap) -> tuple[float, float, float]:
    """City-frame pose in the middle of the longest lane, facing along it."""
    lane = max(vector_map.lanes, key=lambda lane: lane.length_m)
    k = len(lane.centerline) // 2
    before, after = (
        lane.centerline[max(k - 1, 0)],
        lane.centerline[min(k + 1, len(lane.centerline) - 1)],
    )
    dx, dy = after - before
    return float(lane.centerline[k][0]), float(lane.centerline[k][1]), float(np.arctan2(dy, dx))


def maps_section(out: Path, seed: int) -> Section:
    """Overview pictures and agent-centred rasters of every embedded map and a synthetic town."""
    folder = out / "maps"
    folder.mkdir(parents=True, exist_ok=True)
    section = Section(
        "Maps and rasters",
        "Each map with its tracks, then the agent-centred raster of one agent: one panel per "
        "layer and an RGB composite with the agent's box, history and future (the agent faces "
        "right, its left is up; 224×224 at 0.5 m/px).",
    )
    for name, path in embedded_scenes(folder, seed):
        vector_map, scenario = load_map_or_scenario(path)
        overview = folder / f"{name}_map.png"
        draw_map_png(vector_map, scenario, overview)
        raster_png = folder / f"{name}_raster.png"
        # Scenes are drawn around their focal agent, maps around a pose on their longest lane.
        focal = scenario.focal_track_id if scenario is not None else None
        if focal is not None:
            config = RenderConfig(path=path, out=raster_png, track=focal)
        else:
            config = RenderConfig(path=path, out=raster_png, pose=pose_on_a_lane(vector_map))
        render_loaded(config, vector_map, scenario)
        section.images += [overview, raster_png]
        section.data[name] = summarize(vector_map, scenario)
    return section


def encoders_section(out: Path) -> Section:
    """``describe`` tables of the two seed encoders, printed and saved."""
    section = Section(
        "The two seed encoders",
        "Global vector (every spatial dimension collapsed to 1×1 before the fc) versus a small "
        "spatial map (Trajectron++'s 14×14 single-channel map, flattened into the fc).",
    )
    for name in ("seed_global", "seed_spatial"):
        encoder = build_encoder(name, latent_dim=16)
        table = describe(encoder, encoder.input_shape)
        print(table)
        (out / f"describe_{name}.txt").write_text(str(table) + "\n")
        section.data[name] = table.to_dict()
    return section


def mnist_section(out: Path, minutes: float, seed: int) -> Section:
    """The MNIST VAE baseline (seed_global) trained briefly on the embedded digits."""
    run_dir = out / "mnist"
    config = mnist.MnistExperimentConfig(
        model=ImageVAEConfig(encoder="seed_global", latent_dim=16),
        train=TrainConfig(epochs=1000, max_minutes=minutes, seed=seed),
        eval_iw_k=20,
    )
    metrics = mnist.train_and_evaluate(config, run_dir, overwrite=True)  # the demo redoes its runs
    images = plots.save_mnist_run_pictures(run_dir)
    return Section(
        "MNIST VAE baseline",
        f"seed_global encoder and its mirror decoder, {minutes:g} min of training on the embedded "
        "5,000 digits (grey-level Bernoulli targets); nats per image, test split.",
        images,
        {
            key: metrics[key]
            for key in (
                "test_loss",
                "nll",
                "kl",
                "recon",
                "active_units",
                "iw_k",
                "params",
                "epochs",
            )
        },
    )


def trajectory_section(out: Path, minutes: float, scenes: int, seed: int) -> Section:
    """The map-conditioned trajectory VAE and its no-map twin on synthetic towns."""
    section = Section(
        "Trajectory VAE: with and without the map",
        f"{scenes} synthetic towns, 1 s of history → 3 s of future at 10 Hz, {minutes:g} min of "
        "training each; test split, K = 6 futures from the learned prior. In the pictures: the "
        "raster, the past (white), the true future (green), constant velocity (grey dashed) and "
        "the K forecasts.",
    )
    train = dataclasses.replace(
        trajectory.TrajExperimentConfig().train, epochs=1000, max_minutes=minutes, seed=seed
    )
    for name, use_map in (("map", True), ("no_map", False)):
        config = trajectory.make_experiment_config(
            [f"synthetic:{scenes}"],
            use_map=use_map,
            raster=trajectory.SYNTHETIC_RASTER,
            train=train,
        )
        config = dataclasses.replace(config, cache_dir=str(out / "traj_cache"))
        run_dir = trajectory.train(config, out / f"traj_{name}", overwrite=True)
        result = trajectory.evaluate(run_dir, figures=3, seed=seed).to_dict()
        section.images += [Path(p) for p in result.pop("figures", [])]
        section.data[name] = result
    return section


def write_index(out: Path, sections: list[Section]) -> Path:
    """``out/index.html``: every section's text, pictures and JSON on one page."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>mapenc demo</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}img{max-width:100%;"
        "border:1px solid #ccc;margin:4px}pre{background:#f4f4f4;padding:8px;overflow:auto}</style>",
        "<h1>mapenc demo</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.text)}</p>")
        parts += [f"<img src='{html.escape(str(p.relative_to(out)))}'>" for p in section.images]
        if section.data:
            parts.append(f"<pre>{html.escape(json.dumps(section.data, indent=1))}</pre>")
    index = out / "index.html"
    index.write_text("\n".join(parts))
    return index


def run_demo(config: DemoConfig) -> Path:
    """Run every step, write ``metrics.json`` and ``index.html`` under ``config.out``; returns the index."""
    out = config.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    steps: list[tuple[str, Callable[[], Section]]] = [
        ("maps and rasters", lambda: maps_section(out, config.seed)),
        ("encoders", lambda: encoders_section(out)),
        ("MNIST VAE", lambda: mnist_section(out, config.mnist_minutes, config.seed)),
        (
            "trajectory VAE",
            lambda: trajectory_section(out, config.traj_minutes, config.traj_scenes, config.seed),
        ),
    ]
    sections = []
    for number, (name, step) in enumerate(steps, start=1):
        started = time.monotonic()
        print(f"[{number}/{len(steps)}] {name} ...", flush=True)
        sections.append(step())
        print(
            f"[{number}/{len(steps)}] {name} done in {time.monotonic() - started:.0f} s", flush=True
        )
    (out / "metrics.json").write_text(
        json.dumps({s.title: s.data for s in sections}, indent=1, default=str)
    )
    return write_index(out, sections)
