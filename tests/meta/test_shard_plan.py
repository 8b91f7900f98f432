"""`shard-plan`: the shard split a save must have, recomputed from its names and sizes (harness.judge.shard_plan).

Every expected split here is written out by hand; the faulty planners that must be caught are written here too
(a string sort, an off-by-one boundary, a shard size never reset), each as small as the fault it stands for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from offload_conformance.fixtures import DEFAULT_FIXTURES
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.absolute import shard_plan
from offload_conformance.harness.judge.shard_plan import GREEDY, NATURAL_ORDER, ONE_ITEM, greedy, items, natural_key
from offload_conformance.harness.judge.shard_plan import plan_differences as differences
from offload_conformance.harness.judge.verdict import judge
from offload_conformance.harness.outcomes import FailureClass, Grade, Outcome
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import by_name

Planner = Callable[[list[tuple[str, int]], int], list[list[str]]]

# Twelve layers of one 100-byte tensor each: where `layers.10` and `layers.2` sort apart.
LAYERS = [(f"model.layers.{i}.weight", 100) for i in range(12)]


def _located(shards: list[list[str]], sizes: dict[str, int]) -> dict[str, tuple[str, int]]:
    n = len(shards)
    return {name: (f"model-{k:05d}-of-{n:05d}.safetensors", sizes[name]) for k, s in enumerate(shards, 1) for name in s}


def _check(shards: list[list[str]], sizes: list[tuple[str, int]], limit: int) -> list[str]:
    return [d.detail for d in differences(_located(shards, dict(sizes)), limit)]


# --- the order and the packing, against hand-written values -------------------------------------------------------


def test_natural_order_sorts_numbers_as_numbers() -> None:
    names = ["model.norm.weight", "model.layers.10.w13", "model.layers.2.w2", "model.layers.2.norm1", "lm_head"]
    names += ["model.layers.2.norm", "model.layers.10.w2", "model.layers.0"]
    want = [
        "lm_head",
        "model.layers.0",
        "model.layers.2.norm",
        "model.layers.2.norm1",
        "model.layers.2.w2",
        "model.layers.10.w2",
        "model.layers.10.w13",
        "model.norm.weight",
    ]
    assert sorted(names, key=natural_key) == want


def test_greedy_packing_is_huggingface_hubs_documented_example() -> None:
    # huggingface_hub's docstring: limit 10, sizes [6, 6, 2, 6, 2, 2] -> [6], [6+2], [6+2+2].
    plan = items({f"t.{i}": size for i, size in enumerate([6, 6, 2, 6, 2, 2])})
    assert greedy(plan, 10) == [["t.0"], ["t.1", "t.2"], ["t.3", "t.4", "t.5"]]


def test_an_item_over_the_limit_gets_its_own_shard_ahead_of_the_open_one() -> None:
    plan = items({"t.0": 3, "t.1": 12, "t.2": 4, "t.3": 5})
    assert greedy(plan, 10) == [["t.1"], ["t.0", "t.2"], ["t.3"]]


def test_the_experts_of_one_projection_are_one_item_where_the_first_is() -> None:
    sizes = {"m.a": 10, "m.experts.0.down.weight": 4, "m.experts.1.down.weight": 4, "m.experts.0.up.weight": 4}
    sizes |= {"m.experts.1.up.weight": 4, "m.z": 1}
    plan = items(sizes)
    assert [(i.names, i.nbytes, i.block) for i in plan] == [
        (("m.a",), 10, None),
        (("m.experts.0.down.weight", "m.experts.1.down.weight"), 8, "m.experts"),
        (("m.experts.0.up.weight", "m.experts.1.up.weight"), 8, "m.experts"),
        (("m.z",), 1, None),
    ]
    down, up = (
        ["m.experts.0.down.weight", "m.experts.1.down.weight"],
        ["m.experts.0.up.weight", "m.experts.1.up.weight"],
    )
    assert greedy(plan, 12) == [["m.a"], down, [*up, "m.z"]]


# An FP8 layer's experts as transformers 5.24.0 plans them: fused in memory as down_proj, down_proj_scale_inv,
# gate_up_proj, gate_up_proj_scale_inv, so the gate and up scales come after both weights (not in checkpoint order).
# Each projection's two experts are one item: 80 bytes of weights, 10 of scales; limit 100.
PROJECTIONS = (("down.weight", 40), ("down.weight_scale_inv", 5), ("gate.weight", 40))
PROJECTIONS += (("gate.weight_scale_inv", 5), ("up.weight", 40), ("up.weight_scale_inv", 5))
FP8 = [("m.a", 60), *((f"m.experts.{e}.{p}", n) for p, n in PROJECTIONS for e in (0, 1)), ("m.z", 60)]


def _experts(*projections: str) -> list[str]:
    return [f"m.experts.{e}.{p}" for p in projections for e in (0, 1)]


def test_the_experts_of_a_layer_may_be_planned_in_any_order_of_theirs() -> None:
    """Their in-memory names, which the planner sorts, are not the saved ones: only the block's place is known."""
    # Greedy in the order down, down scales, gate, up, gate scales, up scales; worked out by hand.
    planned = [["m.a"], _experts("down.weight", "down.weight_scale_inv"), _experts("gate.weight")]
    planned += [_experts("up.weight", "gate.weight_scale_inv", "up.weight_scale_inv"), ["m.z"]]
    assert _check(planned, FP8, 100) == []
    # In checkpoint order it would be m.a | down, down scales | gate, gate scales | up, up scales | m.z: also fine.
    in_names = [["m.a"], _experts("down.weight", "down.weight_scale_inv")]
    in_names += [
        _experts("gate.weight", "gate.weight_scale_inv"),
        _experts("up.weight", "up.weight_scale_inv"),
        ["m.z"],
    ]
    assert _check(in_names, FP8, 100) == []
    # No order of the block puts m.z, which comes after it, in a shard before some of it.
    bad = [["m.a"], [*planned[1], "m.z"], planned[2], planned[3]]
    [detail] = _check(bad, FP8, 100)
    assert f"({NATURAL_ORDER}" in detail and detail.startswith("shard-plan: m.experts.0.gate.weight (shard 3)")


# --- a correct split passes; each faulty planner fails, naming the rule it broke ----------------------------------


def _correct(sizes: list[tuple[str, int]], limit: int) -> list[list[str]]:
    """Written from the rule, by hand: the natural order of LAYERS is 0..11, two 100-byte tensors to 250 bytes."""
    del sizes, limit
    return [[f"model.layers.{i}.weight", f"model.layers.{i + 1}.weight"] for i in range(0, 12, 2)]


def _string_order(sizes: list[tuple[str, int]], limit: int) -> list[list[str]]:
    """Greedy, but in plain string order: layers.10 and layers.11 come before layers.2."""
    return _packed(sorted(sizes), limit, close_at_full=False, reset=True)


def _closes_when_full(sizes: list[tuple[str, int]], limit: int) -> list[list[str]]:
    """Off by one: a shard is closed when the next tensor would make it exactly full (`>=` for `>`)."""
    return _packed(sorted(sizes, key=lambda s: natural_key(s[0])), limit, close_at_full=True, reset=True)


def _never_reset(sizes: list[tuple[str, int]], limit: int) -> list[list[str]]:
    """The size of the open shard is not reset when it is closed: every later tensor closes one."""
    return _packed(sorted(sizes, key=lambda s: natural_key(s[0])), limit, close_at_full=False, reset=False)


def _packed(order: list[tuple[str, int]], limit: int, *, close_at_full: bool, reset: bool) -> list[list[str]]:
    shards: list[list[str]] = []
    current: list[str] = []
    size = 0
    for name, nbytes in order:
        over = size + nbytes >= limit if close_at_full else size + nbytes > limit
        if current and over:
            shards.append(current)
            current = []
            size = 0 if reset else size
        current.append(name)
        size += nbytes
    return [*shards, current] if current else shards


def test_the_correct_split_passes() -> None:
    assert _check(_correct(LAYERS, 250), LAYERS, 250) == []
    assert _check(_correct(LAYERS, 250), LAYERS, 200) == []  # exactly full: 100 + 100 <= 200 still fits


@pytest.mark.parametrize(
    ("planner", "limit", "rule", "named"),
    [
        (_string_order, 250, NATURAL_ORDER, "model.layers.2.weight (shard 3) comes before model.layers.11.weight"),
        (_closes_when_full, 200, GREEDY, "shard 1 is closed at 100 bytes though the next item"),
        (_never_reset, 250, GREEDY, "shard 2 is closed at 100 bytes though the next item, model.layers.3.weight"),
    ],
    ids=["string-order", "off-by-one", "not-reset"],
)
def test_a_faulty_planner_is_named_by_the_rule_it_breaks(planner: Planner, limit: int, rule: str, named: str) -> None:
    split = planner(LAYERS, limit)
    assert split != _correct(LAYERS, limit)  # the fault shows in this input at all
    [detail] = _check(split, LAYERS, limit)
    assert detail.startswith("shard-plan: ") and f"({rule}" in detail and named in detail


def test_experts_of_one_projection_split_over_two_shards() -> None:
    sizes = [("m.experts.0.up.weight", 100), ("m.experts.1.up.weight", 100), ("m.z", 10)]
    [detail] = _check([["m.experts.0.up.weight"], ["m.experts.1.up.weight", "m.z"]], sizes, 150)
    assert f"({ONE_ITEM}" in detail


def test_an_empty_shard_is_not_the_plan() -> None:
    files = [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
    located = {"a": (files[0], 10), "b": (files[1], 10)}
    [found] = differences(located, 15, files)
    assert found.cls is FailureClass.SHARD_LAYOUT and "model-00003-of-00003.safetensors holds no tensor" in found.detail


# --- on files: the judge's entry point and where it applies -------------------------------------------------------


def _fixture(tmp: Path, kinds: list[str]) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "manifest.json").write_text(json.dumps({"kinds": kinds, "tensors": {}}))
    return tmp


def _save(directory: Path, shards: list[list[str]]) -> Path:
    """Shard files as a save writes them: 50 bf16 elements (100 bytes) per LAYERS tensor, valued by its layer."""
    directory.mkdir(parents=True, exist_ok=True)
    for k, names in enumerate(shards, 1):
        tensors = {n: torch.full((50,), float(n.split(".")[2]), dtype=torch.bfloat16) for n in names}
        save_file(tensors, directory / f"model-{k:05d}-of-{len(shards):05d}.safetensors", metadata={"format": "pt"})
    return directory


def test_on_files_a_string_ordered_save_fails_and_a_renaming_fixture_is_not_judged(tmp_path: Path) -> None:
    plain = _fixture(tmp_path / "plain", ["fused"])
    good = _save(tmp_path / "good", _correct(LAYERS, 250))
    bad = _save(tmp_path / "bad", _string_order(LAYERS, 250))
    assert shard_plan(plain, good, "0.25KB", None, frozenset()) == []
    [found] = shard_plan(plain, bad, 250, None, frozenset())
    assert found.cls is FailureClass.SHARD_LAYOUT and f"({NATURAL_ORDER}" in found.detail
    # The load renames: the planner sorted names the save does not have, so the saved ones do not give its order.
    assert shard_plan(_fixture(tmp_path / "renamed", ["renamed"]), bad, 250, None, frozenset()) == []
    # Nor a generated fixture (transformers' own class, written by its own save): no kind says whether it renames.
    assert shard_plan(_fixture(tmp_path / "generated", ["generated"]), bad, 250, None, frozenset()) == []
    # A file the save did not write (judged apart: harness.judge.context) is not one of its shards.
    bad_file = "model-00006-of-00006.safetensors"
    assert shard_plan(plain, bad, 250, None, frozenset({bad_file})) != []


def test_an_in_memory_cell_whose_save_breaks_the_plan_fails(tmp_path: Path) -> None:
    """The baseline is the cell's own save: only the recomputed plan shows a fault both share."""
    fixture = _save(_fixture(tmp_path / "fixture", []), _correct(LAYERS, 250))  # what the save must give back
    cell = Cell(DEFAULT_FIXTURES[0], by_name("in-memory"), "upstream", (("max_shard_size", 250),))
    bad = Execution(_save(tmp_path / "bad", _string_order(LAYERS, 250)), "", 1.0)
    result = judge(cell, bad, bad, Grade.BYTES, fixture_dir=fixture)
    assert result.outcome is Outcome.FAIL and result.classes == (FailureClass.SHARD_LAYOUT,)
    good = Execution(_save(tmp_path / "good", _correct(LAYERS, 250)), "", 1.0)
    assert judge(cell, good, good, Grade.BYTES, fixture_dir=fixture).outcome is Outcome.PASS
    # A model built from its config saves in module order: not upstream's plan to hold it to.
    built = Cell(DEFAULT_FIXTURES[0], by_name("from-config"), "upstream", (("max_shard_size", 250),))
    assert judge(built, bad, bad, Grade.BYTES, fixture_dir=fixture).outcome is Outcome.PASS
