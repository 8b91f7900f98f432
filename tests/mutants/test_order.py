"""The order a mutant meets its cells (harness.tools.mutants.analysis): with a cap on cells per mutant, the order
decides what a survivor has been tested against."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from offload_conformance.fixtures import DEFAULT_FIXTURES, registry
from offload_conformance.harness.plan import selection
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import by_name
from offload_conformance.harness.tools.mutants import killers
from offload_conformance.harness.tools.mutants.analysis import (
    NEAR,
    Options,
    Reach,
    _ahead,
    _axes,
    _by_fixture,
    _covering,
    _erring,
    _firsts,
    _in_memory,
    _near,
    _offloads_least,
    _path,
    _paths,
    _second_look,
    _varied,
    _without_runs,
    stale,
)
from offload_conformance.harness.tools.mutants.model import Mutant, Target

IMPLS = ("upstream", "reference")


def test_every_distinct_path_through_the_target_comes_before_any_repeat() -> None:
    order = ["a", "b", "c", "d", "e"]
    path = {"a": (1, 2), "b": (1, 2), "c": (1, 3), "d": (1, 2), "e": (4,)}
    assert _paths(order, path.__getitem__) == ["c", "e", "a", "b", "d"]  # the paths one cell takes first


def test_a_one_line_branch_among_many_paths_is_met_in_the_first_few_cells() -> None:
    """255 cells take every combination of eight branches (lines 10-17), each a path of its own; one quantized cell
    adds line 50 alone. Rarest paths first puts it last (every path is as rare); the cover takes it second."""
    branches = {i: tuple(10 + b for b in range(8) if i >> b & 1) for i in range(1, 256)}
    order = [f"p{i}" for i in branches] + ["quantized"]
    path = {f"p{i}": (1, 2, 3, *lines) for i, lines in branches.items()} | {"quantized": (1, 2, 3, 50)}
    assert _paths(order, path.__getitem__).index("quantized") == 255
    covered = _covering(order, path.__getitem__)
    assert covered[:2] == ["p255", "quantized"]  # every branch, then the one line no other cell executes
    assert covered[2:] == order[:-2]  # the rest as they were: none adds a line
    assert _covering(["a", "b"], {"a": (1,), "b": (1,)}.__getitem__) == ["a", "b"]


def test_cells_that_err_unmutated_are_not_in_the_cover() -> None:
    """A cell that errors unmutated cannot show a mutant that makes it raise another exception: the cover takes
    the passing cell of the quantized branch, not the erring one that executes more lines."""
    states = {"big": "pass", "q_err": "error", "q_ok": "pass", "plain": "fail shard-layout"}
    path = {"big": (1, 2, 3), "q_err": (1, 50, 60, 61), "q_ok": (1, 50), "plain": (1, 2)}
    erring = _erring(list(states), states)
    assert erring == {"q_err"}
    assert _covering(list(states), path.__getitem__, erring)[:2] == ["big", "q_ok"]
    assert _covering(list(states), path.__getitem__)[:2] == ["q_err", "big"]  # without: the erring cell leads


def test_the_way_past_a_line_is_the_path_within_near_lines_of_it() -> None:
    """Two cells whose paths differ only far from the mutated line go the same way past it."""
    quantized = (100, 101, 104, 105, 106, 300)
    plain = (100, 101, 104, 300, 301)
    assert _near(quantized, 103) != _near(plain, 103)  # 105, 106: the branch right after the line
    assert _near(plain, 200) == _near(quantized, 200) == ()  # nothing executed within NEAR lines: the same way
    assert (_near(quantized, 300 + NEAR), _near(plain, 300 + NEAR)) == ((300,), (300, 301))


def test_fixtures_take_turns_the_rarest_first() -> None:
    order = ["q1", "q2", "b1", "q3", "r1", "b2", "q4"]
    assert _by_fixture(order, lambda c: c[0]) == ["r1", "b1", "q1", "b2", "q2", "q3", "q4"]
    assert _by_fixture([], lambda c: c[0]) == []


def test_after_the_first_look_each_fixture_not_met_comes_once_the_rarest_first() -> None:
    """The first look, chosen by lines, met only fixture a; a cell of b and one of c (not the erring one) follow it,
    b first (one cell), before a's cells again. The qwen3_moe_as_float32 cells killed three survivors of
    `OffloadedWeightsLoader.__getitem__:186`-`187` (`dtype`, `offload-read`) that 16 cells of 960 had not met."""
    order = [f"a{i}" for i in range(1, 21)] + ["c0", "c1", "b1", "c2"]
    fixture = lambda c: (c[0],)  # noqa: E731
    same = lambda c: 0  # noqa: E731
    looked = _second_look(order, 16, fixture, frozenset({"c0"}), same)
    assert looked == [f"a{i}" for i in range(1, 17)] + ["b1", "c1", "a17", "a18", "a19", "a20", "c0", "c2"]
    assert _second_look(order, 24, fixture, frozenset(), same) == order  # every fixture met in the first look
    assert _second_look(order, 0, fixture, frozenset(), same) == ["b1", "c0"] + [
        c for c in order if c not in ("b1", "c0")
    ]


def test_the_second_look_meets_every_axis_the_rarest_values_first() -> None:
    """Modes, options and contexts too, not only fixtures: the killers of `init_hook:303`
    (`llama-accelerate-disk+remove-hooks-reference`) and of `accelerate_disk_offload:478:const:0`
    (`*-disk-full+existing_offload_folder`) are cells of a mode a few cells have, which a look at fixtures alone put
    beyond the cap (86th and 108th; 20th and 18th over every axis). A cell bringing two values not met outweighs one
    bringing one; a value of fewer cells outweighs one of more."""
    axes = {f"x{i}": ("llama", "disk-full", "", "upstream") for i in range(20)}
    axes |= {
        "hooks": ("llama", "accelerate-disk+remove-hooks", "", "upstream"),
        "moe-1": ("qwen3_moe", "disk-full", "", "upstream"),
        "moe-2": ("qwen3_moe", "disk-full", "", "reference"),
        "both": ("deepseek_v3", "disk-full", "variant=v1", "upstream"),
        "variant": ("llama", "disk-full", "variant=v1", "upstream"),
    }
    order = [f"x{i}" for i in range(16)] + ["moe-1", "moe-2", "variant", "x16", "hooks", "both", "x17"]
    looked = _second_look(order, 16, axes.__getitem__, frozenset(), lambda c: 0)
    # moe-2: reference (1 cell) + qwen3_moe (2 cells), as heavy as both: deepseek_v3 (1) + variant=v1 (2), and first
    # in the order; hooks: its mode (1 cell). Then no cell brings a value not met: the rest keep their order.
    assert looked[16:19] == ["moe-2", "both", "hooks"]
    assert looked[19:] == ["moe-1", "variant", "x16", "x17"]


def test_the_second_look_takes_the_cell_that_offloads_the_most_of_its_fixture() -> None:
    """qwen3_moe_as_float32's disk-full cell, not its first cell: that one kills `__getitem__:186`-`187` (a bf16
    weight read back from the checkpoint for a float32 model), its experts-on-disk cells resave those weights in
    float32. Then buffers: DeepSeek's bias reaches the hook only under offload_buffers."""
    modes = [by_name(m) for m in ("experts-on-disk", "disk-partial+offload_buffers", "disk-full", "map-all-disk")]
    assert sorted(modes, key=_offloads_least)[0].name == "disk-full"
    buffers = [by_name(m) for m in ("experts-on-disk", "experts-on-disk+offload_buffers")]
    assert min(buffers, key=_offloads_least).name == "experts-on-disk+offload_buffers"
    order = ["a1", "b-experts", "b-full", "b-partial"]
    rank = {"b-experts": 1, "b-full": 0, "b-partial": 1}
    looked = _second_look(order, 1, lambda c: (c[0],), frozenset(), lambda c: rank.get(c, 0))
    assert looked == ["a1", "b-full", "b-experts", "b-partial"]


def test_a_fixture_met_in_part_is_met_again_whole_on_disk() -> None:
    """The sixth analysis: qwen3_moe_as_float32's experts-on-disk cell came 6th (by its lines), so its fixture was met,
    and the disk-full cell that kills `__getitem__:186`-`187` came 120th of 805, past the cap, every value of it met
    by then. Whole on disk is a value of its own: the second look takes a cell of it first (which one, upstream's or
    the reference's, the other axes decide: killers.txt names the one that kills)."""
    as_float32, llama = (registry.by_name(n) for n in ("qwen3_moe_as_float32", "llama"))
    partial, whole = (Cell(as_float32, by_name(m), "upstream") for m in ("experts-on-disk", "disk-full"))
    first = [partial, *(Cell(llama, by_name(m), i) for m in ("disk-full", "disk-partial") for i in IMPLS)]
    later = [Cell(llama, by_name("in-memory"), i) for i in IMPLS]
    cells = {c.cell_id: c for c in [*first, *later, whole]}
    order = list(cells)
    looked = _second_look(order, len(first), lambda c: _axes(cells[c]), frozenset(), lambda c: 0)
    assert looked[len(first)] == whole.cell_id
    # By fixture name alone (the rule before), the cell brings nothing not met: it stays last.
    named = lambda c: (cells[c].fixture.name, *_axes(cells[c])[1:])  # noqa: E731
    assert _second_look(order, len(first), named, frozenset(), lambda c: 0)[-1] == whole.cell_id


def test_a_path_is_the_lines_of_the_target_s_span_in_its_file() -> None:
    lines = frozenset({("f.py", 9), ("f.py", 10), ("f.py", 12), ("f.py", 30), ("g.py", 11)})
    assert _path(lines, "f.py", 10, 20) == (10, 12)


def test_early_cells_see_every_mode_then_every_mode_again_with_other_axes() -> None:
    cells = {c.cell_id: c for c in selection.plan(selection.Selection())}
    order = [cells[i] for i in _varied(list(cells.values()))]
    assert sorted(order, key=lambda c: c.cell_id) == sorted(cells.values(), key=lambda c: c.cell_id)  # each once
    modes = {c.mode.name for c in cells.values()}
    kind = lambda c: (c.mode.name, c.impl, c.save_options, c.context)  # noqa: E731
    early = order[: max(24, len(modes))]
    assert {c.mode.name for c in early} == modes
    assert len({kind(c) for c in early}) == len(early)  # as many kinds, none twice
    assert max(sum(c.mode.name == m for c in early) for m in modes) <= 3
    assert {c.impl for c in order[:12]} >= {"upstream", "reference"}  # and an extra's own IUT (accelerate-state-dict)
    assert {dict(c.save_options).get("max_shard_size") for c in order[:12]} >= {None, "24KB"}
    assert len({(c.context, c.save_options) for c in order[:24]}) >= 4  # contexts and options early, not last
    assert len({c.fixture.name for c in early}) <= 8  # a few models early: their baselines are rerun


def test_where_the_in_memory_save_runs_the_line_an_in_memory_cell_leads() -> None:
    """A fault on a line the in-memory save executes is in the baseline's save too: comparing with it shows nothing
    the two saves share, only an in-memory cell's round-trip to the fixture does. Those cells lead, one per way past
    the line; where only the offloaded save executes it (its baseline does not), nothing moves."""
    fixture = DEFAULT_FIXTURES[0]
    cells = [Cell(fixture, by_name(m), impl) for m in ("disk-full", "in-memory") for impl in ("upstream", "reference")]
    by_id = {c.cell_id: c for c in cells}
    order = list(by_id)
    saved = {cells[0].baseline.cell_id: frozenset({("f.py", 7)})}  # every cell here has that one baseline
    memory = _in_memory(order, by_id, saved, ("f.py", 7), frozenset())
    assert memory == [c.cell_id for c in cells[2:]]
    assert _ahead(order, _firsts(memory, lambda c: ()))[:1] == [cells[2].cell_id]  # one way past it: one leads
    assert _in_memory(order, by_id, saved, ("f.py", 8), frozenset()) == []  # the offloaded save's line only
    assert _in_memory(order, by_id, saved, ("f.py", 7), frozenset({cells[2].cell_id})) == [cells[3].cell_id]


def test_a_mutant_on_a_line_of_the_in_memory_save_meets_an_in_memory_cell_first(tmp_path: Path) -> None:
    """The whole order (_without_runs): the offloaded cells come first by the other rules (their rarer paths), until
    the baseline executes the mutated line; then the in-memory cell leads."""
    fixture = DEFAULT_FIXTURES[0]
    offloaded = [Cell(fixture, by_name(m), "upstream") for m in ("disk-full", "disk-partial")]
    memory = Cell(fixture, by_name("in-memory"), "upstream")
    cells = [*offloaded, memory]
    source = tmp_path / "pkg" / "mod.py"
    source.parent.mkdir()
    source.write_text("def f():\n" + "    x = 1\n" * 9)
    file = str(source)
    target = Target("pkg.mod.f", "pkg", "pkg/mod.py", "f", 1, 10)
    mutant = Mutant("pkg.mod.f:5:const:0", target.name, target.file, 5, "const", "`1` -> `2`", 0, 1, "2")
    overlay = SimpleNamespace(original=lambda name: source)

    def order(baseline_runs_it: bool) -> list[str]:
        base = memory.baseline.cell_id
        baseline_lines = {base: frozenset({(file, 5)} if baseline_runs_it else set())}
        lines = {c.cell_id: frozenset({(file, 5)}) for c in cells}  # every cell (or its baseline) executes line 5
        lines[offloaded[0].cell_id] |= {(file, 6)}  # a branch of its own past it
        reach = Reach({c.cell_id: "pass" for c in cells}, {}, lines, {}, baseline_lines, {}, {}, 0.0, cached=False)
        options = Options(out=tmp_path / "out")
        _, to_run = _without_runs(options, {target.name: target}, [mutant], cells, reach, {}, {}, {}, overlay)  # type: ignore[arg-type]
        return to_run[0][1]

    assert order(False)[0] != memory.cell_id
    assert order(True)[0] == memory.cell_id


def test_the_cell_that_killed_a_mutant_before_leads_its_cells(tmp_path: Path) -> None:
    """killers.txt: a mutant's listed killer comes first, ahead of every other rule, where it reaches the mutant; a
    listed cell that does not reach it (or no longer exists) is passed over; a malformed line is one error."""
    fixture = DEFAULT_FIXTURES[0]
    cells = [Cell(fixture, by_name(m), "upstream") for m in ("disk-full", "disk-partial", "in-memory")]
    source = tmp_path / "pkg" / "mod.py"
    source.parent.mkdir()
    source.write_text("def f():\n" + "    x = 1\n" * 9)
    target = Target("pkg.mod.f", "pkg", "pkg/mod.py", "f", 1, 10)
    mutant = Mutant("pkg.mod.f:5:const:0", target.name, target.file, 5, "const", "`1` -> `2`", 0, 1, "2")
    lines = {c.cell_id: frozenset({(str(source), 5)}) for c in cells[:2]}  # the in-memory cell does not reach it
    reach = Reach(
        {c.cell_id: "pass" for c in cells},
        {},
        lines | {cells[2].cell_id: frozenset()},
        {},
        {},
        {},
        {},
        0.0,
        cached=False,
    )
    overlay = SimpleNamespace(original=lambda name: source)

    def order(listed: str) -> list[str]:
        path = tmp_path / "killers.txt"
        path.write_text(listed)
        hints = killers.load(path)
        options = Options(out=tmp_path / "out")
        _, to_run = _without_runs(options, {target.name: target}, [mutant], cells, reach, {}, hints, {}, overlay)  # type: ignore[arg-type]
        return to_run[0][1]

    plain = order("")
    assert order(f"{mutant.id}  {plain[-1]}  # killed it in a targeted run\n") == [plain[-1], *plain[:-1]]
    assert order(f"{mutant.id}  {cells[2].cell_id}\n{mutant.id}  gone-cell\n") == plain
    assert killers.load(None) == {}
    (tmp_path / "bad.txt").write_text("one-field-only\n")
    with pytest.raises(killers.KillersError, match=r"bad.txt:1: expected `MUTANT-ID  CELL-ID`"):
        killers.load(tmp_path / "bad.txt")


def test_a_listed_id_no_mutant_has_is_stale_only_for_a_target_analysed() -> None:
    """equivalent.txt and killers.txt: an id of an analysed target that no mutant has any more (its line moved) is
    stale; one of a target the run leaves out (`--target`) is not."""
    target = Target("pkg.mod.f", "pkg", "pkg/mod.py", "f", 1, 10)
    mutant = Mutant("pkg.mod.f:5:const:0", target.name, target.file, 5, "const", "`1` -> `2`", 0, 1, "2")
    listed = [mutant.id, "pkg.mod.f:9:const:0", "pkg.mod.g:5:const:0", "pkg.mod.f_other:5:const:0"]
    assert stale(listed, [mutant], [target]) == ("pkg.mod.f:9:const:0",)
    assert stale(listed, [], []) == ()
