"""Splitting a run over CI jobs (`run --shard K/N`) and merging the parts back, on planned cells only."""

from __future__ import annotations

import dataclasses

import pytest

from offload_conformance.harness.merge import MergeError, merge
from offload_conformance.harness.plan import selection
from offload_conformance.harness.results import Shard
from tests.meta.documents import CAND

WANTED = selection.Selection(fixtures=("qwen3_moe", "mixtral", "deepseek_v3"), modes=("disk-full", "experts-on-disk"))


def test_parts_cover_the_run_once_and_keep_baselines_together() -> None:
    everything = selection.plan(WANTED)
    parts = [selection.plan(dataclasses.replace(WANTED, shard=f"{k}/4")) for k in range(1, 5)]
    ids = [c.cell_id for part in parts for c in part]
    assert sorted(ids) == sorted(c.cell_id for c in everything) and len(set(ids)) == len(ids)
    for part in parts:  # a baseline is run by one job only
        others = [c for p in parts if p is not part for c in p]
        assert not {c.baseline for c in part} & {c.baseline for c in others}
    sizes = sorted(len(p) for p in parts)
    assert sizes[-1] - sizes[0] <= len(everything) // 6  # balanced: 6 equal baseline groups over 4 jobs
    again = [selection.plan(dataclasses.replace(WANTED, shard=f"{k}/4")) for k in range(1, 5)]
    assert again == parts  # deterministic


@pytest.mark.parametrize("bad", ["0/2", "3/2", "two", "1/0"])
def test_bad_shard_is_a_plan_error(bad: str) -> None:
    with pytest.raises(selection.PlanError, match="--shard"):
        selection.plan(dataclasses.replace(WANTED, shard=bad))


def _parts() -> list[tuple[str, object]]:
    planned = tuple(c.cell_id for c in CAND.cells)
    first, second = CAND.cells[:1], CAND.cells[1:]
    return [
        ("a", dataclasses.replace(CAND, cells=first, shard=Shard(1, 2, planned))),
        ("b", dataclasses.replace(CAND, cells=second, shard=Shard(2, 2, planned))),
    ]


def test_merged_parts_give_back_the_run_in_planned_order() -> None:
    a, b = _parts()
    merged = merge([b, a])  # in any order
    assert merged.cells == CAND.cells and merged.shard is None


def test_gaps_overlaps_and_foreign_parts_are_refused() -> None:
    a, b = _parts()
    with pytest.raises(MergeError, match="a gap: shard\\(s\\) 2/2 missing"):
        merge([a])
    with pytest.raises(MergeError, match="shard 1/2 is in both a and again"):
        merge([a, ("again", a[1]), b])
    foreign = ("c", dataclasses.replace(b[1], shard=Shard(2, 2, ("other",))))
    with pytest.raises(MergeError, match="parts of different runs"):
        merge([a, foreign])
    with pytest.raises(MergeError, match="is not a part of a split run"):
        merge([a, ("whole", CAND)])
