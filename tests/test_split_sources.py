"""Splits over several data sets at once: each data path is split on its own, then merged."""

from __future__ import annotations

from pathlib import Path

import pytest

from mapenc.data.split import SplitPlan, merge_plans
from mapenc.data.traj_sources import LastMadeFor, load_scenarios, plan_for
from mapenc.errors import DataError


def _plan(names: list[str], split: list[str], recording: list[int]) -> SplitPlan:
    return SplitPlan(
        names=tuple(names),
        split=dict(zip(names, split, strict=True)),
        dropped={},
        recording=dict(zip(names, recording, strict=True)),
        location=dict.fromkeys(names, ""),
        samples=dict.fromkeys(names, 1),
        source="computed",
    )


def test_merged_plans_keep_each_split_and_never_share_a_recording() -> None:
    first = _plan(["a/1", "a/2", "a/3"], ["train", "val", "test"], [0, 1, 2])
    second = _plan(["b/1", "b/2"], ["train", "test"], [0, 0])
    merged = merge_plans([first, second])
    assert merged.split == {**first.split, **second.split}
    assert merged.recording["b/1"] == merged.recording["b/2"]
    assert merged.recording["b/1"] not in {merged.recording[n] for n in first.names}
    assert merged.source == "computed + computed"
    with pytest.raises(DataError, match="same name"):
        merge_plans([first, first])


@pytest.mark.real_data
@pytest.mark.slow
def test_each_data_set_keeps_its_own_split_when_loaded_together(real_data: Path) -> None:
    ngsim = str(real_data / "commonroad_ngsim" / "Lankershim")
    recorded = str(real_data / "commonroad_recorded" / "inD_converted")
    alone = {p: plan_for(load_scenarios([p]), [p]) for p in (ngsim, recorded)}
    together = plan_for(load_scenarios([ngsim, recorded]), [ngsim, recorded])
    for plan in alone.values():
        assert {n: together.split[n] for n in plan.split} == plan.split
        assert {together.split[n] for n in plan.split} == {"train", "val", "test"}
    assert alone[ngsim].source.startswith("fixed:")
    assert together.source == f"{alone[ngsim].source} + computed"


def test_a_kept_result_is_given_again_only_for_the_very_same_scenes_and_key() -> None:
    scenes = load_scenarios(["synthetic:2"])
    made: list[int] = []

    def make() -> int:
        made.append(len(made))
        return made[-1]

    kept: LastMadeFor[str, int] = LastMadeFor()
    assert kept.get("a", scenes, make) == 0
    assert kept.get("a", list(scenes), make) == 0  # the same objects in another list
    assert kept.get("b", scenes, make) == 1  # another key
    assert kept.get("b", scenes[::-1], make) == 2  # another order
    assert kept.get("b", scenes[:1], make) == 3  # fewer scenes
    assert plan_for(scenes, ["synthetic:2"]) is plan_for(scenes, ["synthetic:2"])
