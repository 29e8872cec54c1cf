"""Every package and top-level module of mapenc has its place in the layer contract, so that
`lint-imports` (make lint) checks the imports of everything, new code included."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def contract_names() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = next(
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    )
    return {name.strip(" ()") for layer in layers for name in layer.replace(":", "|").split("|")}


def test_every_package_and_module_is_in_a_layer() -> None:
    package = ROOT / "mapenc"
    names = {
        f"mapenc.{path.stem}"
        for path in package.iterdir()
        if (path.is_dir() and (path / "__init__.py").is_file())
        or (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
    }
    assert names, "mapenc's packages were found"
    assert sorted(names - contract_names()) == []
