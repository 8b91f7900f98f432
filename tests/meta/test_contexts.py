"""Save contexts, save options and forced shard sizes: planned, named and judged, without running a cell."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from offload_conformance.fixtures import by_name as fixture
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.checkpoint import file_digests
from offload_conformance.harness.judge.verdict import judge
from offload_conformance.harness.outcomes import FailureClass as C
from offload_conformance.harness.outcomes import Grade, Outcome, Stage
from offload_conformance.harness.plan import selection
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.contexts import Context
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.harness.plan.shards import PER_TENSOR, SPLIT_GROUPS, ShardSizeError, fused_groups, resolve
from offload_conformance.harness.results import Failure, FusedGroups
from tests.ckpt import base_tensors, write

QWEN = fixture("qwen3_moe")
DISK = mode("disk-full")


def test_context_is_last_in_the_cell_id_and_the_baseline_saves_into_an_empty_directory() -> None:
    cell = Cell(QWEN, DISK, "upstream", (("max_shard_size", "24KB"),), Context.OVER_SINGLE)
    assert cell.cell_id == "qwen3_moe-disk-full-upstream-max_shard_size=24KB-over-earlier-single"
    assert cell.baseline.context is Context.EMPTY and cell.baseline.save_options == cell.save_options
    assert cell.earlier is not None and cell.earlier.save_options == () and cell.earlier.impl == "upstream"
    assert Cell(QWEN, DISK, "upstream", (), Context.IN_PLACE).earlier is None
    assert Cell(QWEN, DISK, "upstream").cell_id == "qwen3_moe-disk-full-upstream"


def test_default_matrix_has_every_context_option_and_forced_size() -> None:
    ids = [c.cell_id for c in selection.plan(selection.Selection())]
    assert len(ids) == len(set(ids))
    for needle in ("-over-earlier-single", "-over-earlier-sharded", "-over-earlier-variant", "-in-place"):
        assert any(i.endswith(needle) for i in ids), needle
    for needle in ("variant=v1", "save_original_format=False", "state_dict=own", "=per-tensor", "=split-groups"):
        assert any(needle in i for i in ids), needle


def test_asked_axes_apply_to_every_selected_cell() -> None:
    wanted = selection.Selection(
        fixtures=("llama",), modes=("disk-full",), impls=("reference",), contexts=("in-place",)
    )
    cells = selection.plan(wanted)
    assert [c.cell_id for c in cells] == [
        "llama-disk-full-reference-in-place",
        "llama-disk-full-reference-max_shard_size=24KB-in-place",
    ]
    wanted = dataclasses.replace(wanted, contexts=(), save_options=("variant=v2",), shard_sizes=(PER_TENSOR,))
    assert [c.cell_id for c in selection.plan(wanted)] == [
        "llama-disk-full-reference-max_shard_size=per-tensor,variant=v2"
    ]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("contexts", ("over",), "unknown save context 'over'"),
        ("save_options", ("colour=red",), "unknown option 'colour'"),
        ("save_options", ("state_dict=mine",), "only state_dict=own"),
        ("save_options", ("save_original_format=no",), "expected True or False"),
        ("save_options", ("variant=a/b",), "a variant is letters"),
        ("shard_sizes", ("lots",), "--max-shard-size 'lots'"),
    ],
)
def test_bad_axis_values_are_one_line_plan_errors(field: str, value: tuple[str, ...], says: str) -> None:
    with pytest.raises(selection.PlanError, match=says) as e:
        selection.plan(dataclasses.replace(selection.Selection(fixtures=("llama",)), **{field: value}))
    assert "\n" not in str(e.value)


def _manifest(d: Path, tensors: dict[str, tuple[str, list[int]]]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    entries = {
        n: {"dtype": dt, "shape": shape, "sha256": "", "file": "model.safetensors"}
        for n, (dt, shape) in tensors.items()
    }
    (d / "manifest.json").write_text(json.dumps({"spec": {}, "tensors": entries, "files": {}, "digest": ""}))
    return d


def test_a_selection_that_plans_nothing_is_a_one_line_error() -> None:
    wanted = selection.Selection(fixtures=("llama",), shard_sizes=(SPLIT_GROUPS,))  # a dense model: no fused group
    with pytest.raises(selection.PlanError, match="plans no cell"):
        selection.plan(wanted)


def test_forced_sizes_are_derived_from_the_fixture(tmp_path: Path) -> None:
    moe = _manifest(
        tmp_path / "moe",
        {
            "m.layers.0.mlp.experts.0.up_proj.weight": ("bfloat16", [4, 8]),  # 64 bytes
            "m.layers.0.mlp.experts.1.up_proj.weight": ("bfloat16", [4, 8]),  # group: 128 bytes
            "m.layers.0.mlp.experts.0.down_proj.weight": ("float32", [8, 4]),
            "m.layers.0.mlp.experts.1.down_proj.weight": ("float32", [8, 4]),  # group: 256 bytes
            "m.layers.0.attn.qkv_proj.weight": ("bfloat16", [12, 8]),  # split on load: 192 bytes
            "m.embed.weight": ("bfloat16", [2, 2]),
        },
    )
    assert resolve(SPLIT_GROUPS, moe) == 127 and resolve(PER_TENSOR, moe) == 1 and resolve("24KB", moe) == "24KB"
    dense = _manifest(tmp_path / "dense", {"m.embed.weight": ("bfloat16", [2, 2])})
    with pytest.raises(ShardSizeError, match="no fused group"):
        resolve(SPLIT_GROUPS, dense)


def test_fused_groups_counts_groups_split_across_files_and_over_the_limit() -> None:
    located = {
        "a.experts.0.up_proj.weight": ("f1", 10),
        "a.experts.1.up_proj.weight": ("f2", 10),  # split; 20 bytes
        "a.experts.0.down_proj.weight": ("f2", 30),
        "a.experts.1.down_proj.weight": ("f2", 30),  # whole; 60 bytes
        "a.norm.weight": ("f1", 1000),
    }
    assert fused_groups(located, 50) == FusedGroups(split=1, over_limit=1, total=2)
    assert fused_groups(located, 10**6) == FusedGroups(split=1, over_limit=0, total=2)
    assert fused_groups({"a.norm.weight": ("f1", 2)}, 1) is None


# --- judging a save into a directory that held files ---------------------------------------------------------


def _run(save_dir: Path, before: dict[str, str], failure: Failure | None = None) -> Execution:
    return Execution(save_dir, "", 1.0, failure=failure, before=before)


CONTEXT_CELL = Cell(QWEN, DISK, "upstream", (("max_shard_size", 200),), Context.OVER_SINGLE)


def _over_earlier(tmp_path: Path, earlier_sharded: bool) -> tuple[Path, Path, dict[str, str]]:
    """(baseline: a sharded save into an empty directory, the cell's directory holding an earlier save, before)."""
    baseline = write(tmp_path / "baseline", base_tensors(), max_shard_size=200)
    cell_dir = write(tmp_path / "cell", base_tensors(), max_shard_size=10 if earlier_sharded else 10**9)
    (cell_dir / "tokenizer.json").write_text("{}")
    return baseline, cell_dir, file_digests(cell_dir)


def test_a_save_that_cleans_up_passes_and_keeps_what_is_not_its_own(tmp_path: Path) -> None:
    baseline, cell_dir, before = _over_earlier(tmp_path, earlier_sharded=False)
    (cell_dir / "model.safetensors").unlink()  # what a correct save does with the earlier single file
    write(cell_dir, base_tensors(), max_shard_size=200)
    result = judge(CONTEXT_CELL, _run(cell_dir, before), _run(baseline, {}), Grade.BYTES)
    assert (result.outcome, result.grade, result.context) == (Outcome.PASS, Grade.BYTES, "over-earlier-single")


def test_a_weight_file_left_from_the_earlier_save_is_file_set(tmp_path: Path) -> None:
    baseline, cell_dir, before = _over_earlier(tmp_path, earlier_sharded=False)
    write(cell_dir, base_tensors(), max_shard_size=200)  # the earlier model.safetensors stays
    result = judge(CONTEXT_CELL, _run(cell_dir, before), _run(baseline, {}), Grade.BYTES)
    assert result.outcome is Outcome.FAIL and result.classes == (C.FILE_SET,)
    assert "model.safetensors is left from before the save" in result.detail


def test_another_file_deleted_or_changed_by_the_save_is_file_set(tmp_path: Path) -> None:
    baseline, cell_dir, before = _over_earlier(tmp_path, earlier_sharded=False)
    (cell_dir / "model.safetensors").unlink()
    write(cell_dir, base_tensors(), max_shard_size=200)
    (cell_dir / "tokenizer.json").unlink()
    result = judge(CONTEXT_CELL, _run(cell_dir, before), _run(baseline, {}), Grade.BYTES)
    assert (
        result.classes == (C.FILE_SET,)
        and "1 files this save does not write were deleted by it: tokenizer.json" in result.detail
    )


def test_a_file_the_save_wrote_is_compared_whatever_its_name(tmp_path: Path) -> None:
    baseline, cell_dir, before = _over_earlier(tmp_path, earlier_sharded=False)
    (cell_dir / "model.safetensors").unlink()
    tensors = base_tensors()
    tensors["model.norm.weight"] = tensors["model.norm.weight"] + 1
    write(cell_dir, tensors, max_shard_size=100)  # other shard names than the baseline's, other values
    result = judge(CONTEXT_CELL, _run(cell_dir, before), _run(baseline, {}), Grade.BYTES)
    assert result.outcome is Outcome.FAIL and C.VALUES in result.classes and C.FILE_SET not in result.classes


def test_a_save_that_raised_must_leave_the_directory_as_it_was(tmp_path: Path) -> None:
    baseline, cell_dir, before = _over_earlier(tmp_path, earlier_sharded=True)
    raised = Failure(Stage.SAVE, "FileNotFoundError", "gone", "x.py:1")
    untouched = judge(CONTEXT_CELL, _run(cell_dir, before, raised), _run(baseline, {}), Grade.BYTES)
    assert untouched.outcome is Outcome.ERROR and untouched.classes == ()
    shutil.rmtree(cell_dir)
    cell_dir.mkdir()
    damaged = judge(CONTEXT_CELL, _run(cell_dir, before, raised), _run(baseline, {}), Grade.BYTES)
    assert damaged.outcome is Outcome.ERROR and damaged.classes == (C.DIRECTORY_CHANGED,)
    assert "left the directory changed: config.json removed" in damaged.detail


def test_a_reload_that_differs_is_its_own_class(tmp_path: Path) -> None:
    baseline, cell_dir, before = _over_earlier(tmp_path, earlier_sharded=False)
    (cell_dir / "model.safetensors").unlink()
    write(cell_dir, base_tensors(), max_shard_size=200)
    run = dataclasses.replace(_run(cell_dir, before), reloaded="model.norm.weight differs in the reloaded model")
    result = judge(CONTEXT_CELL, run, _run(baseline, {}), Grade.BYTES)
    assert result.classes == (C.RELOAD,) and "loaded back with from_pretrained" in result.detail


# --- hand-written device maps ---------------------------------------------------------------------------------


def test_hand_written_maps_put_on_disk_what_they_say() -> None:
    import torch
    import transformers

    from offload_conformance.fixtures.catalog import layout_for

    config = transformers.AutoConfig.for_model(**layout_for(fixture("qwen3_moe_tied")).config)
    with torch.device("meta"):
        skeleton = transformers.AutoModelForCausalLM.from_config(config)

    def disk(name: str) -> dict[str, str]:
        device_map = mode(name).load_kwargs(skeleton, Path("/nowhere"))["device_map"]
        return {k: v for k, v in device_map.items() if v == "disk"}  # type: ignore[union-attr]

    assert disk("map-head-on-disk") == {"lm_head": "disk"}  # the tied embedding stays on cpu
    assert disk("map-routers-on-disk") == {f"model.layers.{i}.mlp.gate": "disk" for i in range(2)}
    assert disk("map-all-disk") == {"": "disk"}
    assert disk("map-layer-split") == {"model.layers.0.self_attn": "disk"}
    split = mode("map-layer-split").load_kwargs(skeleton, Path("/nowhere"))["device_map"]
    assert split["model.layers.0.mlp"] == "cpu"  # type: ignore[index]  # the same layer's other half
    in_place = mode("map-all-disk+no_offload_folder").load_kwargs(skeleton, Path("/nowhere"))
    assert in_place == {"device_map": {"": "disk"}, "offload_buffers": False}  # no offload_folder at all
    assert mode("map-all-disk").load_kwargs(skeleton, Path("/nowhere"))["offload_folder"] == "/nowhere"


def test_a_router_map_is_not_planned_for_a_model_without_experts() -> None:
    ids = [c.cell_id for c in selection.plan(selection.Selection(fixtures=("llama", "qwen3_moe")))]
    assert any(i.startswith("qwen3_moe-map-routers-on-disk") for i in ids)
    assert not any(i.startswith("llama-map-routers-on-disk") for i in ids)
    assert any(i.startswith("llama-map-layer-split") for i in ids)


def test_a_variant_save_under_the_plain_names_is_shard_layout_though_its_baseline_agrees(tmp_path: Path) -> None:
    """The in-memory save of the same release names its files the same way (a variant dropped everywhere): only the
    names transformers gives a variant show it (`save_pretrained:3548:remove-stmt:0`)."""
    cell = Cell(QWEN, mode("in-memory"), "upstream", (("max_shard_size", 200), ("variant", "v1")))
    plain = write(tmp_path / "plain", base_tensors(), max_shard_size=200)
    result = judge(cell, _run(plain, None), _run(plain, None), Grade.BYTES)
    assert result.outcome is Outcome.FAIL and result.classes == (C.SHARD_LAYOUT,)
    assert "model.safetensors.index.json: not a name of a save with variant='v1'" in result.detail
    named = tmp_path / "named"
    named.mkdir()
    for f in plain.iterdir():  # the names _add_variant gives, written out (the index's weight_map too)
        name = f.name.replace("model-", "model.v1-").replace("index.json", "index.v1.json")
        (named / name).write_bytes(f.read_bytes().replace(b'"model-', b'"model.v1-'))
    renamed = judge(cell, _run(named, None), _run(named, None), Grade.BYTES)
    assert renamed.outcome is Outcome.PASS, renamed.detail
    unnamed = dataclasses.replace(cell, save_options=(("max_shard_size", 200),))
    assert judge(unnamed, _run(plain, None), _run(plain, None), Grade.BYTES).outcome is Outcome.PASS


def test_a_save_that_wrote_no_directory_is_judged_by_the_comparison(tmp_path: Path) -> None:
    """No target directory at all (a save that wrote nothing): what is missing, not an error of the judge."""
    baseline = write(tmp_path / "baseline", base_tensors())
    cell = Cell(QWEN, DISK, "upstream", (("variant", "v1"),))
    result = judge(cell, _run(tmp_path / "never-written", None), _run(baseline, None), Grade.BYTES)
    assert result.outcome is Outcome.FAIL and C.FILE_SET in result.classes
