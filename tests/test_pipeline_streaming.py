"""Streaming samples from shards: each rank and DataLoader worker reads its own shards (disjoint,
together all of them), a resumed stream continues bit-identically, peak memory does not grow
with the number of shards, and two torchrun ranks split the scenarios."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from traj_scenes import store_shards

from mapenc.data.streaming import StreamingSamples, scenario_key
from mapenc.data.trajectory import TrajTask, extract_samples
from mapenc.errors import ConfigError
from mapenc.maps import iter_scenarios
from mapenc.raster import RasterSpec

TASK = TrajTask(stride_steps=40)
SPEC = RasterSpec(size_px=(32, 32), pixel_size_m=1.0)
SHARDS = 4
PER_SHARD = 2


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """SHARDS store shards of PER_SHARD synthetic scenes each."""
    return store_shards(tmp_path_factory.mktemp("shards"), SHARDS, PER_SHARD)


def _all_keys(shards: list[Path]) -> set[int]:
    """Keys of every scenario of the shards that has samples."""
    return {
        scenario_key(sc)
        for shard in shards
        for sc in iter_scenarios(shard)
        if len(extract_samples(sc, TASK))
    }


def _keys(batches: list[dict[str, torch.Tensor]]) -> set[int]:
    return {int(k) for b in batches for k in b["scenario_key"]}


def _epoch(dataset: StreamingSamples, workers: int) -> list[dict[str, torch.Tensor]]:
    loader = DataLoader(dataset, batch_size=None, num_workers=workers)
    return list(loader)


def test_ranks_and_workers_read_disjoint_scenarios_that_cover_all(
    shards: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
        dataset = StreamingSamples(shards, TASK, SPEC, batch_size=16, seed=3)
        seen.append(_keys(_epoch(dataset, workers=2)))
    assert seen[0] and seen[1]
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == _all_keys(shards)


def test_an_epoch_gives_every_sample_once_shuffled_and_counts_progress(shards: list[Path]) -> None:
    dataset = StreamingSamples(shards, TASK, SPEC, batch_size=16, seed=3, shuffle_buffer=64)
    batches = _epoch(dataset, workers=2)
    for batch in batches:
        dataset.mark_consumed(batch)
    total = sum(len(extract_samples(sc, TASK)) for s in shards for sc in iter_scenarios(s))
    assert sum(len(b["past"]) for b in batches) == total == dataset.progress.samples
    assert dataset.progress.scenarios == SHARDS * PER_SHARD
    state = dataset.state_dict()
    assert state["epoch"] == 0 and state["consumed"] == len(batches)
    assert sum(state["consumed_by_worker"]) == len(batches)
    assert batches[0]["raster"].shape[1:] == (SPEC.num_channels, *SPEC.size_px)
    in_order = _epoch(
        StreamingSamples(shards, TASK, SPEC, batch_size=16, seed=3, shuffle_buffer=1), 0
    )
    assert not torch.equal(batches[0]["future"], in_order[0]["future"])


@pytest.mark.parametrize("workers", [2, 3])
def test_resumed_stream_continues_bit_identically(shards: list[Path], workers: int) -> None:
    full = _epoch(StreamingSamples(shards, TASK, SPEC, batch_size=8, seed=1), workers)
    # Three workers share four shards unevenly: near the end only one of them has batches left.
    for done in (3, len(full) - 2):
        consumed = StreamingSamples(shards, TASK, SPEC, batch_size=8, seed=1)
        for batch in full[:done]:
            consumed.mark_consumed(batch)
        resumed = StreamingSamples(shards, TASK, SPEC, batch_size=8, seed=1)
        resumed.load_state_dict(consumed.state_dict())
        rest = _epoch(resumed, workers)
        assert len(rest) == len(full) - done
        for got, want in zip(rest, full[done:], strict=True):
            for key in want:
                assert torch.equal(got[key], want[key]), key
    for other in (workers - 1, workers + 1):  # fewer or more workers than made the batches
        with pytest.raises(ConfigError, match=f"{workers} DataLoader worker"):
            _epoch(resumed, other)
    other_epoch = StreamingSamples(shards, TASK, SPEC, batch_size=8, seed=1)
    other_epoch.set_epoch(1)
    assert not torch.equal(_epoch(other_epoch, workers)[0]["future"], full[0]["future"])


PEAK_RSS_SCRIPT = """
import resource, sys
from mapenc.data.streaming import StreamingSamples
from mapenc.data.trajectory import TrajTask
from mapenc.raster import RasterSpec
shards = sys.argv[1:]
dataset = StreamingSamples(shards, TrajTask(stride_steps=40), RasterSpec(size_px=(32, 32), pixel_size_m=1.0), batch_size=16)
for _ in dataset:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kib(shards: list[Path]) -> int:
    run = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, *map(str, shards)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(run.stdout.split()[-1])


def test_peak_memory_does_not_grow_with_the_number_of_shards(shards: list[Path]) -> None:
    one, four = _peak_rss_kib(shards[:1]), _peak_rss_kib(shards)
    assert four <= 1.10 * one, (one, four)


TORCHRUN_SCRIPT = """
import sys
import torch.distributed as dist
from torch.utils.data import DataLoader
from mapenc.data.streaming import StreamingSamples
from mapenc.data.trajectory import TrajTask
from mapenc.raster import RasterSpec
dist.init_process_group("gloo")
out, shards = sys.argv[1], sys.argv[2:]
dataset = StreamingSamples(shards, TrajTask(stride_steps=40), RasterSpec(size_px=(32, 32), pixel_size_m=1.0), batch_size=16)
keys = {int(k) for b in DataLoader(dataset, batch_size=None) for k in b["scenario_key"]}
with open(f"{out}/rank{dist.get_rank()}.txt", "w") as f:
    f.write("\\n".join(map(str, sorted(keys))))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_torchrun_ranks_split_the_scenarios(shards: list[Path], tmp_path: Path) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(textwrap.dedent(TORCHRUN_SCRIPT))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29561",
            str(script),
            str(tmp_path),
            *map(str, shards),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    ranks = [{int(k) for k in (tmp_path / f"rank{r}.txt").read_text().split()} for r in (0, 1)]
    assert ranks[0] and ranks[1] and not ranks[0] & ranks[1]
    assert ranks[0] | ranks[1] == _all_keys(shards)
