"""Checkpoints and run JSON: damage is found on load, a full disk leaves the old file intact."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from mapenc.errors import TrainingError
from mapenc.train.checkpoint import load_checkpoint, read_json, save_checkpoint, write_json


def small_state() -> dict[str, object]:
    torch.manual_seed(0)
    return {"model": {"weight": torch.randn(64, 8), "bias": torch.randn(8)}, "step": 3}


def test_flipped_byte_in_the_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    state = small_state()
    save_checkpoint(path, state)
    raw = bytearray(path.read_bytes())
    weights = state["model"]["weight"].numpy().tobytes()  # type: ignore[index]
    at = bytes(raw).find(weights[:64])
    assert at > 0
    raw[at + 100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(TrainingError, match="damaged checkpoint \\(CRC mismatch"):
        load_checkpoint(path)


def test_any_flipped_byte_is_refused_or_harmless(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    state = small_state()
    save_checkpoint(path, state)
    clean = path.read_bytes()
    for at in range(0, len(clean), 61):
        damaged = bytearray(clean)
        damaged[at] ^= 0x10
        path.write_bytes(bytes(damaged))
        try:
            loaded = load_checkpoint(path)
        except TrainingError as err:
            assert "\n" not in str(err)
            continue
        # Bytes no CRC covers (zip padding, names torch does not read) must not change content.
        assert loaded["step"] == 3
        for name, tensor in state["model"].items():  # type: ignore[attr-defined]
            assert torch.equal(loaded["model"][name], tensor), f"flip at byte {at}"


def test_pickled_objects_refused_in_one_line_without_advice(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {}, "hook": Path("x")}, path)
    with pytest.raises(TrainingError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and "weights_only" not in message
    assert "refused" in message


def test_full_disk_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, small_state())
    before = path.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(TrainingError, match="No space left on device"):
        save_checkpoint(path, {"model": {}, "step": 4})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfe{}", "not UTF-8"), (b'{"lr": NaN}', "NaN is not JSON"), (b"{", "malformed JSON")],
)
def test_bad_run_json_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(TrainingError, match=message):
        read_json(path)


def test_folder_in_place_of_run_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(TrainingError, match="cannot be read"):
        read_json(tmp_path / "config.json")


def test_nan_is_never_written_as_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        write_json(tmp_path / "config.json", {"max_minutes": float("nan")})
    assert not (tmp_path / "config.json").exists()
