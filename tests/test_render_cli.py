"""`mapenc render`: a PNG for a map pose and for a scenario track; bad requests fail cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from mapenc.cli import main

AV2_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "av2_sample"

pytest.importorskip("matplotlib")


def test_render_a_map_pose(tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    status = main(
        [
            "render",
            str(next(AV2_SAMPLE.glob("log_map_archive_*.json"))),
            "--pose", "-420", "1440", "1.5",
            "--layers", "drivable_area", "centerlines",
            "--size", "64", "96",
            "--mode", "fast",
            "-o", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_a_scenario_track(tmp_path: Path) -> None:
    out = tmp_path / "track.png"
    status = main(
        [
            "render",
            str(AV2_SAMPLE),
            "--track",
            "138951",
            "--t",
            "40",
            "--size",
            "64",
            "64",
            "-o",
            str(out),
        ]
    )
    assert status == 0 and out.stat().st_size > 1000


def test_render_unknown_track_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["render", str(AV2_SAMPLE), "--track", "nobody", "-o", str(tmp_path / "x.png")])
    assert status == 2
    assert "nobody" in capsys.readouterr().err


def test_render_track_on_a_map_only_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    map_file = next(AV2_SAMPLE.glob("log_map_archive_*.json"))
    status = main(["render", str(map_file), "--track", "1", "-o", str(tmp_path / "x.png")])
    assert status == 2
    assert "scenario" in capsys.readouterr().err


def test_render_beyond_memory_is_one_line_with_the_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "render",
            str(next(AV2_SAMPLE.glob("log_map_archive_*.json"))),
            "--pose", "-420", "1440", "1.5",
            "--size", "30000", "30000",
            "-o", str(tmp_path / "huge.png"),
        ]
    )  # fmt: skip
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert "GiB" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "huge.png").exists()
