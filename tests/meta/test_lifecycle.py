"""The lifecycle checks' machinery without cells: model snapshots (model-changed), the checks of a save on its
own terms (shard-oversize, index bookkeeping, dropped-on-load), resave verdicts, and their place in verdicts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate import cpu_offload
from huggingface_hub.constants import SAFETENSORS_INDEX_FILE as INDEX
from safetensors.torch import save_file
from torch import nn

from offload_conformance.fixtures import DEFAULT_FIXTURES
from offload_conformance.fixtures.manifest import write_manifest
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.absolute import dropped_on_load, index_bookkeeping, shard_oversize
from offload_conformance.harness.judge.verdict import judge, offload_forward, resave_verdict
from offload_conformance.harness.outcomes import FailureClass, Grade, Outcome, Stage
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.faults import _change_a_weight, _strip_hooks
from offload_conformance.harness.plan.modes import Step, by_name
from offload_conformance.harness.results import SCHEMA_VERSION, Difference, Failure, Lifecycle
from offload_conformance.harness.run.cell import parameter_count
from offload_conformance.harness.run.lifecycle import (
    UNLISTED,
    Forward,
    _stored,
    before_save,
    changes,
    forked_forward,
    misread,
    snapshot,
    weights_maps,
)
from tests.ckpt import base_tensors, write

CELL = Cell(DEFAULT_FIXTURES[0], by_name("disk-full"), "upstream")
SMALL_SHARDS = Cell(DEFAULT_FIXTURES[0], by_name("disk-full"), "upstream", (("max_shard_size", 200),))
CHANGED = Difference(FailureClass.MODEL_CHANGED, "values changed: norm.weight", tensor="norm.weight")


class Toy(nn.Module):
    """A causal-LM-shaped module: input_ids in, logits out; an int64 buffer beside its float weights."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.config = SimpleNamespace(vocab_size=16)
        self.embed = nn.Embedding(16, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 16)
        self.register_buffer("table", torch.arange(4))

    def forward(self, input_ids: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.head(self.norm(self.embed(input_ids))))


def _offloaded() -> Toy:
    model = Toy()
    cpu_offload(model, execution_device=torch.device("cpu"), offload_buffers=True)
    return model


def test_snapshot_reads_offloaded_values_and_an_untouched_model_has_not_changed() -> None:
    model = _offloaded()
    before = snapshot(model)
    assert before.tensors["norm.weight"].device == "meta" and before.tensors["norm.weight"].sha256
    assert before.tensors["table"].dtype == "int64"
    assert before.forward.logits and before.forward.skipped is None and "norm" in before.hooks
    assert changes(before, snapshot(model)) == []


def test_an_offloaded_tensor_stored_as_another_dtype_or_shape_is_offload_read(tmp_path: Path) -> None:
    """accelerate's disk offload labels each `.dat` with a dtype and shape in its index: a wrong label (a lost
    float8 view, a 0-d tensor read back as one element) makes the model compute with another tensor than it
    declares, before any save."""
    from accelerate import disk_offload

    model = Toy()
    disk_offload(model, str(tmp_path), execution_device=torch.device("cpu"), offload_buffers=True)
    assert misread(snapshot(model)) == []  # as stored
    index = next(iter(weights_maps(model).values()))[0].dataset.index  # accelerate's one loader, shared
    index["norm.weight"]["dtype"] = "int32"  # the same 4 bytes per element, read as another dtype
    index["head.bias"]["shape"] = [4, 4]  # the same 16 elements, read as another shape
    found = misread(before := snapshot(model))
    assert [(d.cls, d.tensor) for d in found] == [(FailureClass.OFFLOAD_READ, "head.bias")]
    assert found[0].detail == (
        "offload storage gives head.bias as float32[4, 4], the model's tensor is float32[16] and 1 more"
    )
    assert changes(before, before) == found  # reported once, from the snapshot before the save


def test_an_offloaded_float_stored_in_another_width_is_read_as_the_hook_casts_it(tmp_path: Path) -> None:
    """accelerate's load with `dtype=` keeps a checkpoint's bf16 in offload storage for a float32 parameter and its
    hooks cast every read: that is no offload-read, and the value read is the cast one, the in-memory model's."""
    from accelerate import disk_offload

    model = Toy()
    expected = snapshot(model).tensors["norm.weight"].sha256  # LayerNorm's ones: exact in bf16
    disk_offload(model, str(tmp_path), execution_device=torch.device("cpu"), offload_buffers=True)
    index = next(iter(weights_maps(model).values()))[0].dataset.index
    index["norm.weight"]["dtype"] = "bfloat16"  # as load_checkpoint_in_model(dtype=float32) writes a bf16 weight
    (tmp_path / "norm.weight.dat").write_bytes(torch.ones(8, dtype=torch.bfloat16).view(torch.int16).numpy().tobytes())
    after = snapshot(model)
    assert misread(after) == []
    assert after.tensors["norm.weight"].sha256 == expected


def test_an_offloaded_tensor_its_storage_lists_but_cannot_read_is_offload_read(tmp_path: Path) -> None:
    """A key the index lists whose read raises (an index entry without its dtype) or gives something not a tensor is
    what storage gives: a forward pass would fail on it."""
    from accelerate import disk_offload

    model = Toy()
    disk_offload(model, str(tmp_path), execution_device=torch.device("cpu"), offload_buffers=True)
    maps = weights_maps(model)
    # The norm module's own map is a PrefixedDataset("norm.") over the loader: it lists the loader's full keys.
    assert isinstance(_stored("norm.weight", {"norm": maps["norm"]}, {}), torch.Tensor)
    loader = next(iter(maps.values()))[0].dataset
    del loader.index["norm.weight"]["dtype"]
    loader.state_dict["table"] = "a dtype"  # an entry of the loader's in-memory part that is not a tensor
    loader.all_keys.append("table")
    found = misread(snapshot(model))
    assert [(d.cls, d.tensor) for d in found] == [(FailureClass.OFFLOAD_READ, "norm.weight")]
    assert found[0].detail == (
        "offload storage gives norm.weight as unreadable (KeyError: 'dtype'), the model's tensor is float32[8]"
        " and 1 more"
    )
    assert snapshot(model).tensors["table"].stored == "not a tensor (str)"


def test_an_offloaded_tensor_its_storage_does_not_list_is_offload_read(tmp_path: Path) -> None:
    """accelerate's OffloadedWeightsLoader lists its index's keys (`all_keys`); one that holds a tensor but does not
    list it loses it to whatever walks the storage (the mutant OffloadedWeightsLoader.__init__:167:remove-stmt:0
    lists none). A meta tensor under no hook with storage is not this check's (placement's)."""
    from accelerate import disk_offload

    model = Toy()
    disk_offload(model, str(tmp_path), execution_device=torch.device("cpu"), offload_buffers=True)
    loader = next(iter(weights_maps(model).values()))[0].dataset
    loader.all_keys.remove("norm.weight")
    found = misread(snapshot(model))
    assert [(d.cls, d.tensor) for d in found] == [(FailureClass.OFFLOAD_READ, "norm.weight")]
    assert found[0].detail == f"offload storage gives norm.weight as {UNLISTED}, the model's tensor is float32[8]"
    assert _stored("norm.weight", {}, {}) is None


def test_a_weight_changed_in_offload_storage_is_model_changed() -> None:
    model = _offloaded()
    before = snapshot(model)
    _change_a_weight(model)
    found = changes(before, snapshot(model))
    assert {d.cls for d in found} == {FailureClass.MODEL_CHANGED}
    assert [d.detail for d in found] == [
        "values changed: norm.weight",
        "the forward pass gives other logits after the save",
    ]


def test_stripped_hooks_are_model_changed() -> None:
    model = _offloaded()
    before = snapshot(model)
    _strip_hooks(model)
    # accelerate puts cpu_offload's weights back on the cpu as it detaches: same values, no longer offloaded.
    assert [d.detail for d in changes(before, snapshot(model))] == [
        "moved to another device: embed.weight, head.bias, head.weight and 3 more",
        "accelerate hooks removed: <model>, embed, head and 1 more",
    ]


def test_a_forward_pass_that_leaves_offloaded_weights_loaded_is_model_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """accelerate's post_forward puts offloaded weights back on `meta`; a hook that does not (found by the mutation
    analysis: `set_module_tensor_to_device(module, name, "meta")` removed survived) keeps the whole model in RAM."""
    from accelerate.hooks import AlignDevicesHook

    model = _offloaded()
    before = snapshot(model)
    monkeypatch.setattr(AlignDevicesHook, "post_forward", lambda self, module, output: output)
    details = [d.detail for d in changes(before, snapshot(model, before))]
    assert details == ["moved to another device: embed.weight, head.bias, head.weight and 3 more"]


def test_device_and_dtype_changes_are_named() -> None:
    model = Toy()
    before = snapshot(model)
    model.table = model.table.float()  # an int buffer cast to float
    model.head.to("meta")
    details = [d.detail for d in changes(before, snapshot(model))]
    assert "dtype changed: table" in details
    assert any(d.startswith("moved to another device: head.bias, head.weight") for d in details), details


def test_a_model_that_cannot_run_forward_says_why_and_is_still_compared() -> None:
    model = Toy()
    model.forward = lambda input_ids: (_ for _ in ()).throw(RuntimeError("needs a GPU kernel"))  # type: ignore[method-assign]
    before = snapshot(model)
    assert before.forward == Forward(None, "forward pass raised RuntimeError: needs a GPU kernel")
    with torch.no_grad():
        model.norm.weight += 1
    assert [d.detail for d in changes(before, snapshot(model))] == ["values changed: norm.weight"]


def test_the_offloaded_forward_computes_the_in_memory_logits_until_a_hook_skips_a_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """offload-forward's two digests: the in-memory model's and the offloaded one's are equal, bit for bit; a hook
    that does not load the offloaded weights (the mutant pre_forward:416, `self._onload_weights(module)` -> pass)
    leaves the pass without them."""
    from accelerate.hooks import AlignDevicesHook

    in_memory = forked_forward(Toy())
    assert in_memory.logits and forked_forward(_offloaded()).logits == in_memory.logits
    monkeypatch.setattr(AlignDevicesHook, "pre_forward", lambda self, module, *args, **kwargs: (args, kwargs))
    broken = forked_forward(_offloaded())
    assert broken.logits is None and broken.skipped and not broken.refused


def test_a_forward_pass_the_harness_stops_is_refused_not_failed(tmp_path: Path) -> None:
    """A forward pass that would remove a file (compressed-tensors converting accelerate's disk offload) is stopped
    in the child: refused, which offload-forward does not hold against the model."""
    doomed = tmp_path / "offload.dat"
    doomed.write_text("x")
    model = Toy()
    model.forward = lambda input_ids: os.remove(doomed)  # type: ignore[method-assign,assignment]
    refused = snapshot(model).forward
    assert (refused.logits, refused.refused) == (None, True) and doomed.exists()
    os.remove(doomed)  # the guard is the child's only


@pytest.mark.parametrize(("step", "modes_seen"), [(Step.FORWARD, [False]), (Step.TRAIN_EVAL, [True])])
def test_each_step_runs_its_forward_in_its_mode_and_leaves_the_model_in_eval(step: Step, modes_seen: list) -> None:
    """+train-eval is the forward pass in train mode between train() and eval(); +forward stays in eval mode."""
    model = Toy().eval()
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(module.training), with_kwargs=True)
    before_save(model, step)
    assert seen == modes_seen and not model.training
    before_save(model, Step.NONE)
    assert seen == modes_seen  # no step, no forward


def test_the_resize_step_resizes_the_embeddings_to_the_vocabulary_s_own_size() -> None:
    model = Toy()
    sizes: list[int] = []
    model.resize_token_embeddings = sizes.append  # type: ignore[attr-defined, assignment]
    before_save(model, Step.RESIZE)
    assert sizes == [16]


def test_parameter_count_counts_a_tie_once() -> None:
    model = Toy()
    assert parameter_count(model) == sum(p.numel() for p in model.parameters())
    model.head.weight = model.embed.weight  # tied: one parameter object, two names
    model.head.bias = nn.Parameter(torch.zeros(16))
    assert parameter_count(model) == 16 * 8 + 2 * 8 + 16


# --- a save on its own terms --------------------------------------------------------------------


def test_shard_oversize_only_where_a_shard_holds_several_tensors(tmp_path: Path) -> None:
    small = write(tmp_path / "small", base_tensors(), max_shard_size=200)
    assert shard_oversize(small, 200) == []
    big = write(tmp_path / "big", base_tensors(), max_shard_size=400)
    (found, *_) = shard_oversize(big, 200)
    assert found.cls is FailureClass.SHARD_OVERSIZE and "over max_shard_size (200 bytes)" in found.detail
    # A tensor larger than the limit has a shard of its own: not oversize.
    assert shard_oversize(write(tmp_path / "one", {"w": torch.zeros(100)}), 200) == []
    assert shard_oversize(small, "50GB") == shard_oversize(small, None) == []


def _index(d: Path) -> dict:
    return json.loads((d / INDEX).read_text())


def test_index_bookkeeping_is_checked_against_the_shards(tmp_path: Path) -> None:
    d = write(tmp_path / "s", base_tensors(), max_shard_size=200)
    assert index_bookkeeping(d, None) == []
    index = _index(d)
    index["metadata"]["total_parameters"] = 5
    (d / INDEX).write_text(json.dumps(index))
    assert [x.detail for x in index_bookkeeping(d, 5)] == []
    assert [x.detail for x in index_bookkeeping(d, 6)] == ["index metadata.total_parameters 5, the model has 6"]
    index["metadata"]["total_size"] += 2
    index["weight_map"]["ghost"] = next(iter(index["weight_map"].values()))
    (d / INDEX).write_text(json.dumps(index))
    found = index_bookkeeping(d, 5)
    assert {x.cls for x in found} == {FailureClass.INDEX}
    assert found[0].detail.startswith("1 index entries disagree with the files, e.g. ghost")
    assert found[1].detail.endswith(f"the shards hold {index['metadata']['total_size'] - 2} bytes of tensors")


def test_a_shard_the_index_does_not_name_is_an_index_difference(tmp_path: Path) -> None:
    """An empty shard (the planner closed one with nothing in it) is no tensor's file: only the file set shows it."""
    d = write(tmp_path / "s", base_tensors(), max_shard_size=200)
    last = sorted(p.name for p in d.glob("*.safetensors"))[-1]
    empty = last.replace(".safetensors", "-extra.safetensors")
    save_file({}, d / empty)
    (found,) = index_bookkeeping(d, None)
    assert (found.cls, found.file) == (FailureClass.INDEX, empty)
    assert found.detail == f"{empty} is a shard the index does not name (0 tensors)"
    assert index_bookkeeping(d, None, ignore=frozenset({empty})) == []  # a file from before the save: judged apart


def test_dropped_on_load_is_a_fixture_tensor_in_no_save(tmp_path: Path) -> None:
    tensors = base_tensors()
    fixture = write(tmp_path / "fixture", {**tensors, "model.layers.3.eh_proj.weight": torch.ones(2, 2)})
    write_manifest(fixture, DEFAULT_FIXTURES[0], frozenset(), "digest")
    baseline = write(tmp_path / "baseline", tensors)
    everything = write(tmp_path / "all", {**tensors, "model.layers.3.eh_proj.weight": torch.ones(2, 2)})
    assert dropped_on_load(fixture, everything, baseline) == []  # the baseline has it: not dropped on load
    # Renamed, the values still count as saved (e.g. a rename left unreverted: permuted, not dropped).
    renamed = {**tensors, "mtp.eh_proj": torch.ones(2, 2)}
    assert dropped_on_load(fixture, baseline, write(tmp_path / "renamed", renamed)) == []
    (found,) = dropped_on_load(fixture, baseline, write(tmp_path / "cell", tensors))
    assert (found.cls, found.tensor) == (FailureClass.DROPPED_ON_LOAD, "model.layers.3.eh_proj.weight")


# --- verdicts -----------------------------------------------------------------------------------


def _saved(tmp: Path, name: str, **kw: object) -> Execution:
    return Execution(write(tmp / name, base_tensors()), "", 1.0, **kw)  # type: ignore[arg-type]


def test_a_correct_save_that_changed_the_model_fails_with_its_grade(tmp_path: Path) -> None:
    run = _saved(tmp_path, "a", model_changes=(CHANGED,), lifecycle=Lifecycle(True))
    result = judge(CELL, run, _saved(tmp_path, "b"), Grade.BYTES)
    assert (result.outcome, result.grade, result.classes) == (Outcome.FAIL, Grade.BYTES, ("model-changed",))
    assert result.lifecycle == Lifecycle(True)


def test_a_save_that_raised_and_changed_the_model_is_an_error_with_the_class(tmp_path: Path) -> None:
    raised = Failure(Stage.SAVE, "RuntimeError", "boom", "x.py:1")
    run = Execution(tmp_path / "none", "log", 1.0, failure=raised, model_changes=(CHANGED,))
    result = judge(CELL, run, _saved(tmp_path, "b"), Grade.BYTES)
    assert (result.outcome, result.classes, result.failure) == (Outcome.ERROR, ("model-changed",), raised)
    assert result.detail == "save raised RuntimeError: boom (x.py:1); values changed: norm.weight"
    clean = judge(CELL, Execution(tmp_path / "none", "log", 1.0, failure=raised), _saved(tmp_path, "c"), Grade.BYTES)
    assert (clean.outcome, clean.classes) == (Outcome.ERROR, ())


def test_shard_oversize_holds_an_iut_to_the_limit_the_in_memory_save_keeps(tmp_path: Path) -> None:
    big = {"max_shard_size": 400}
    run = Execution(write(tmp_path / "a", base_tensors(), **big), "", 1.0)  # type: ignore[arg-type]
    kept = Execution(write(tmp_path / "b", base_tensors(), max_shard_size=200), "", 1.0)
    result = judge(SMALL_SHARDS, run, kept, Grade.BYTES)
    assert Outcome.FAIL is result.outcome and "shard-oversize" in result.classes
    # The in-memory save over the limit itself: huggingface_hub plans the views of one storage as one item (experts
    # split from one fused tensor, e.g. ernie4_5_vl_moe), which the files cannot show: that is not the IUT's doing.
    over = Execution(write(tmp_path / "c", base_tensors(), **big), "", 1.0)  # type: ignore[arg-type]
    result = judge(SMALL_SHARDS, run, over, Grade.BYTES)
    assert (result.outcome, result.grade, result.classes) == (Outcome.PASS, Grade.BYTES, ())


def test_offload_forward_holds_the_cells_forward_to_its_baselines(tmp_path: Path) -> None:
    """The cell's logits (its lifecycle's forward pass) against its baseline's: other logits, or a pass that raises
    where the baseline's runs, fail the cell whatever its grade; nothing to compare passes nothing over."""
    base = _saved(tmp_path, "b", logits="aa")
    same = judge(CELL, _saved(tmp_path, "a", lifecycle=Lifecycle(True), logits="aa"), base, Grade.BYTES)
    assert (same.outcome, same.classes) == (Outcome.PASS, ())
    other = judge(CELL, _saved(tmp_path, "c", lifecycle=Lifecycle(True), logits="bb"), base, Grade.BYTES)
    assert (other.outcome, other.grade, other.classes) == (Outcome.FAIL, Grade.BYTES, ("offload-forward",))
    assert other.detail == "the forward pass gives other logits than on the model loaded in memory"
    raised = Lifecycle(True, forward_skipped="forward pass raised KeyError: 'lm_head.weight'")
    (found,) = offload_forward(CELL, _saved(tmp_path, "d", lifecycle=raised), base)
    assert found.cls is FailureClass.OFFLOAD_FORWARD and found.detail.endswith("KeyError: 'lm_head.weight'")
    refused = Lifecycle(True, forward_skipped="forward pass raised ForwardChangesFiles: ...", forward_refused=True)
    assert offload_forward(CELL, _saved(tmp_path, "e", lifecycle=refused), base) == []
    assert offload_forward(CELL, _saved(tmp_path, "f", lifecycle=raised), _saved(tmp_path, "g")) == []  # baseline: none
    assert offload_forward(CELL, _saved(tmp_path, "h", logits="bb"), base) == []  # no lifecycle check in this run


def test_resave_verdict(tmp_path: Path) -> None:
    passed = judge(CELL, _saved(tmp_path, "a"), _saved(tmp_path, "b"), Grade.BYTES)
    same = resave_verdict(passed, tmp_path / "a", _saved(tmp_path, "again"))
    assert same.outcome is Outcome.PASS and same.lifecycle is not None and same.lifecycle.resaved
    other = base_tensors()
    other["model.norm.weight"] = other["model.norm.weight"] + 1
    differs = resave_verdict(passed, tmp_path / "a", Execution(write(tmp_path / "c", other), "", 1.0))
    assert (differs.outcome, differs.classes, differs.grade) == (Outcome.FAIL, ("resave",), Grade.BYTES)
    assert differs.detail.startswith("saved again: values: model.norm.weight: max abs diff")
    unloadable = Execution(tmp_path / "none", "log", 1.0, failure=Failure(Stage.LOAD, "OSError", "no file"))
    broken = resave_verdict(passed, tmp_path / "a", unloadable)
    assert broken.classes == ("resave",) and "does not load back" in broken.detail


@pytest.mark.parametrize("cls", list(FailureClass))
def test_every_class_is_defined_once_and_round_trips(cls: FailureClass) -> None:
    assert FailureClass(str(cls)) is cls and Difference.from_json({"cls": str(cls), "detail": "x"}).cls is cls


# --- reports and the document -------------------------------------------------------------------


def test_reports_show_lifecycle_classes_also_on_error_cells(tmp_path: Path) -> None:
    from offload_conformance.harness.report import junit, markdown, terminal
    from tests.meta.documents import cell, doc

    checked = Lifecycle(True, forward_skipped="forward pass raised ImportError: no kernel", resaved=True)
    result = doc(
        "5.24.0",
        cell("fx-full-upstream", Outcome.ERROR, (FailureClass.MODEL_CHANGED,), lifecycle=checked),
        cell("fx-part-upstream", Outcome.FAIL, (FailureClass.SHARD_OVERSIZE, FailureClass.RESAVE)),
        cell("fx-acc-upstream", Outcome.FAIL, (FailureClass.DROPPED_ON_LOAD,)),
    )
    md = markdown.markdown(result)
    assert "! model-changed" in md and "✗ shard-oversize,resave" in md and "✗ dropped-on-load" in md
    assert "forward pass skipped in 1: 1x forward pass raised ImportError: no kernel" in md
    assert "saved again after loading back (resave) in 1" in terminal.render(result)
    junit.write(result, tmp_path / "junit.xml")
    assert 'message="model-changed: error detail' in (tmp_path / "junit.xml").read_text()


def test_a_version_2_document_reads_as_one_without_lifecycle_checks(tmp_path: Path) -> None:
    from offload_conformance.harness.results import RunResult
    from tests.meta.documents import BASE

    old = BASE.to_json()
    old["schema_version"] = 2
    for c in old["cells"]:
        del c["lifecycle"]
    read = RunResult.from_json(old)
    assert all(c.lifecycle is None for c in read.cells) and read.schema_version == SCHEMA_VERSION
    with pytest.raises(ValueError, match="schema_version 1"):
        RunResult.from_json({**old, "schema_version": 1})


def test_forward_modes_and_resave_where_the_default_matrix_has_them() -> None:
    from offload_conformance.harness.plan.selection import Selection, Settings, plan, resaves

    default = [c for c in plan(Selection(fixtures=("qwen3_moe",))) if c.mode.step]
    assert {(c.mode.name, c.save_options) for c in default} == {
        ("disk-full+offload_buffers+forward", ()),
        ("disk-full+offload_buffers+train-eval", ()),
        ("in-memory+train-eval", ()),  # plan.extras: the step alone, on a few fixtures
        ("accelerate-cpu+offload_buffers+remove-hooks", ()),  # plan.extras: accelerate's undo, on llama and qwen3_moe
        ("accelerate-disk+remove-hooks", ()),
    }
    asked = plan(Selection(fixtures=("qwen3_moe",), modes=("disk-full+forward",)))
    assert {c.save_options for c in asked} == {(), (("max_shard_size", "24KB"),)}
    assert not any(resaves(c, Settings()) for c in asked)  # resave: only with --lifecycle resave
    assert all(resaves(c, Settings(resave_everywhere=True)) for c in asked)
    mtp = plan(Selection(fixtures=("deepseek_v3_mtp",)))
    assert mtp and not any(c.save_options for c in mtp)
    assert {c.save_options for c in plan(Selection(fixtures=("deepseek_v3_mtp",), shard_sizes=("24KB",)))} == {
        (("max_shard_size", "24KB"),)
    }


def test_an_in_memory_save_that_does_not_give_the_fixture_back_fails_round_trip(tmp_path: Path) -> None:
    """The baseline of an in-memory cell is that same save: a wrong revert mapping shared by every save of the
    release (internal names written) passes the comparison with it, and only the fixture's own files show it."""
    tensors = base_tensors()
    fixture = write(tmp_path / "fixture", tensors)
    write_manifest(fixture, DEFAULT_FIXTURES[0], frozenset(), "digest")
    name = next(iter(tensors))
    internal = {("internal." + n if n == name else n): t for n, t in tensors.items()}
    save = Execution(write(tmp_path / "save", internal), "", 1.0)
    baseline = Execution(write(tmp_path / "baseline", internal), "", 1.0)  # the same wrong save
    in_memory = Cell(DEFAULT_FIXTURES[0], by_name("in-memory"), "upstream")
    result = judge(in_memory, save, baseline, Grade.BYTES, fixture_dir=fixture)
    assert result.outcome is Outcome.FAIL and FailureClass.ROUND_TRIP in result.classes
    assert any(d.tensor == name and "round trip: missing-tensor" in d.detail for d in result.differences)
    # weights dequantized on load on purpose (--fp8-on-cpu dequantize): the fixture is not what a save gives back
    assert judge(in_memory, save, baseline, Grade.BYTES, fixture_dir=fixture, dequantized=True).outcome is Outcome.PASS
    # an offloaded cell is judged against the in-memory save, as before: same save, same verdict
    assert judge(CELL, save, baseline, Grade.BYTES, fixture_dir=fixture).outcome is Outcome.PASS
    # a save that gives the fixture back passes
    good = Execution(write(tmp_path / "good", tensors), "", 1.0)
    assert judge(in_memory, good, good, Grade.BYTES, fixture_dir=fixture).outcome is Outcome.PASS
