"""Draw the layers of mapenc and the imports between them into ``docs/architecture.png``.

    python docs/architecture.py            # needs the dev extra (import-linter brings grimp)

The layers are those of the import-linter contract in ``pyproject.toml`` (what ``make lint``
checks), top to bottom; each box is one package or module (wider: more code), each arrow
the imports from one box to another (thicker: more importing modules; the imports of
``mapenc.errors``, which every layer raises, are left out). An arrow that ran upwards would break
the contract, so every arrow points down.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import grimp
import matplotlib
import tomllib  # Python 3.11+

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "architecture.png"
# What each layer is for, shown beside it.
ROLES = {
    "mapenc.cli": "the `mapenc` command (loads a subcommand by name)",
    "mapenc.commands": "one module per subcommand: flags from configs -> experiment -> JSON",
    "mapenc.study": "the encoder study: tasks x encoders x seeds",
    "mapenc.experiments": "train -> run folder, evaluate -> result, load_run -> (config, model)",
    "mapenc.vae": "models: ImageVAE, TrajectoryCVAE; evaluation: baselines, reports",
    "mapenc.pipeline": "data and evaluation: datasets, raster caches, metrics",
    "mapenc.raster": "rasters, encoders (tensors only), the training loop",
    "mapenc.maps": "vector maps and scenes: readers, synthetic towns",
    "mapenc.geometry": "SE2 poses and batched frame changes",
    "mapenc.safeio": "atomic files, progress lines, range checks of config fields",
    "mapenc.errors": "MapencError and its kinds",
}


def layers() -> list[list[str]]:
    """The contract's layers, top first, each a list of its packages or modules."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    rows = [
        [name.strip(" ()") for name in layer.replace(":", "|").split("|")]
        for layer in contract["layers"]
    ]
    # A name in parentheses is an optional layer: drawn once its package exists.
    return [[name for name in row if exists(name)] for row in rows]


def exists(name: str) -> bool:
    """Whether the package or module ``name`` is in the tree."""
    path = ROOT / Path(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def lines_of(name: str) -> int:
    """Non-blank lines of the package or module ``name``."""
    path = ROOT / Path(*name.split("."))
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    return sum(1 for f in files for line in f.read_text().splitlines() if line.strip())


def box_of(module: str, boxes: list[str]) -> str | None:
    """The box (package or module) that holds ``module``."""
    return next((b for b in boxes if module == b or module.startswith(b + ".")), None)


def imports_between(boxes: list[str]) -> Counter[tuple[str, str]]:
    """(importer box, imported box) -> number of importing modules."""
    graph = grimp.build_graph("mapenc", include_external_packages=False)
    counts: Counter[tuple[str, str]] = Counter()
    for module in graph.modules:
        source = box_of(module, boxes)
        targets = {box_of(t, boxes) for t in graph.find_modules_directly_imported_by(module)}
        for target in targets - {source, None}:
            if source is not None and target is not None:
                counts[source, target] += 1
    return counts


def main() -> None:
    rows = layers()
    boxes = [name for row in rows for name in row]
    sizes = {name: lines_of(name) for name in boxes}
    width, row_height = 10.0, 1.0
    figure, axes = plt.subplots(figsize=(13, 0.9 * len(rows) + 1))
    centres: dict[str, tuple[float, float, float]] = {}
    for level, row in enumerate(rows):
        y = (len(rows) - 1 - level) * row_height
        weights = [math.sqrt(sizes[name]) for name in row]
        gap = 0.25
        scale = (width - gap * (len(row) - 1)) / sum(weights) if len(row) > 1 else 1.0
        x = 0.0
        for name, weight in zip(row, weights, strict=True):
            w = weight * scale if len(row) > 1 else min(width, max(2.2, weight * 0.12))
            left = x if len(row) > 1 else (width - w) / 2
            axes.add_patch(
                FancyBboxPatch(
                    (left, y - 0.3),
                    w,
                    0.6,
                    boxstyle="round,pad=0.02",
                    facecolor="#dbe8f5",
                    edgecolor="#2f5d8a",
                )
            )
            label = name.removeprefix("mapenc.")
            axes.text(left + w / 2, y, label, ha="center", va="center", fontsize=9)
            centres[name] = (left + w / 2, y, w)
            x += w + gap
        axes.text(width + 0.3, y, ROLES.get(row[0], ""), va="center", fontsize=8, color="#444")
    for (source, target), count in imports_between(boxes).items():
        if target == "mapenc.errors":
            continue
        (x0, y0, _), (x1, y1, _) = centres[source], centres[target]
        skip = round((y0 - y1) / row_height)
        axes.add_patch(
            FancyArrowPatch(
                (x0, y0 - 0.3),
                (x1, y1 + 0.3),
                arrowstyle="-|>",
                mutation_scale=8,
                linewidth=0.3 + 0.4 * math.log1p(count),
                color="#c0392b" if y1 > y0 else "#5d6d7e",
                alpha=0.45,
                connectionstyle=f"arc3,rad={0.06 * (skip - 1) * (1 if x1 >= x0 else -1)}",
            )
        )
    axes.set_xlim(-0.3, width + 5.5)
    axes.set_ylim(-0.6, (len(rows) - 1) * row_height + 0.6)
    axes.set_axis_off()
    axes.set_title("mapenc: layers (top imports down only) and the imports between them")
    figure.tight_layout()
    figure.savefig(OUT, dpi=110)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
