"""The byte-range revert (reference_impl.views) against transformers' own revert, conversion kind by kind;
which conversions fall back; many-to-one groups per layer."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM
from transformers.core_model_loading import (
    Chunk,
    ConversionOps,
    Interleave,
    Transpose,
    WeightConverter,
    revert_weight_conversion,
)

from offload_conformance.fixtures import by_name, generate
from offload_conformance.reference_impl.schedule import _groups, saved_state, schedule
from offload_conformance.reference_impl.views import revert_traced
from offload_conformance.reference_impl.writer import tensor_bytes

# (fixture, conversion kinds it exercises)
KINDS = [
    ("qwen3_moe", "fused experts split per expert (Chunk dim 1 + SplitModulelist), down_proj (SplitModulelist)"),
    ("qwen3_moe_tied", "the same, with a tied head dropped"),
    ("mixtral", "rename (block_sparse_moe -> mlp) inside a converter, w1/w3 split"),
    ("deepseek_v3", "shared experts (plain), persistent buffer, fused experts"),
    ("deepseek_v4", "many renames, w1/w3 split"),
    ("hrm_text", "many-to-one Concatenate dim 0 (gqkv_proj, gate_up_proj), rename (attn.o_proj)"),
]


def _model(fixture: str) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(generate(by_name(fixture)), dtype=torch.bfloat16)


def _bytes(t: torch.Tensor) -> bytes:
    return bytes(tensor_bytes(t))


@pytest.mark.parametrize(("fixture", "kinds"), KINDS, ids=[k[0] for k in KINDS])
def test_byte_ranges_are_the_bytes_transformers_revert_writes(fixture: str, kinds: str) -> None:
    model = _model(fixture)
    state = saved_state(model)
    plan = schedule(model, "24KB")
    assert all(g.views is not None for g in plan.groups), f"{fixture}: every group should take the view path"
    written = 0
    for group in plan.groups:
        expected = revert_weight_conversion(model, {n: state[n] for n in group.sources})
        assert set(expected) == set(group.outputs)
        for name, pieces in group.views or ():
            got = b"".join(_bytes(state[p.source])[p.offset : p.offset + p.nbytes] for p in pieces)
            assert got == _bytes(expected[name]), f"{fixture}: {name}"
            written += 1
    assert written == len(plan.outputs)


def _hrm(layers: int) -> torch.nn.Module:
    spec = dataclasses.replace(by_name("hrm_text"), name=f"hrm_text-{layers}", num_hidden_layers=layers)
    return AutoModelForCausalLM.from_pretrained(generate(spec), dtype=torch.bfloat16)


@pytest.mark.parametrize("grouping", ["read off the byte ranges", "revert tensor by tensor"])
def test_many_to_one_groups_are_per_fused_tensor_whatever_the_depth(grouping: str) -> None:
    """Both ways of grouping: from one traced revert (every conversion a byte move), and tensor by
    tensor (what a model with any other conversion gets)."""
    sizes = {}
    for layers in (2, 5):
        model = _hrm(layers)
        if grouping == "revert tensor by tensor":
            meta = {n: torch.empty(t.shape, dtype=t.dtype, device="meta") for n, t in saved_state(model).items()}
            groups = _groups(model, meta, revert_weight_conversion(model, dict(meta)))
        else:
            groups = list(schedule(model, "50GB").groups)
        coupled = [g for g in groups if len(g.sources) > 1]
        # one group per fused checkpoint tensor: gqkv_proj (gate, q, k, v) and gate_up_proj (gate, up)
        assert len(coupled) == 2 * 2 * layers  # two stacks
        for g in coupled:
            assert len(g.outputs) == 1 and len({s.rsplit(".", 3)[0] for s in g.sources}) == 1, g
            assert g.views is not None
        sizes[layers] = max(len(g.sources) for g in groups)
    assert sizes[2] == sizes[5] == 4


class _Scale(ConversionOps):
    """Computes values (a dequantize-like op): must never be taken for a byte range."""

    def convert(self, input_dict, source_patterns, target_patterns, **kwargs):  # type: ignore[no-untyped-def]
        (tensor,) = (v[0] if isinstance(v, list) else v for v in input_dict.values())
        return {target_patterns[0]: tensor * 2}

    @property
    def reverse_op(self) -> ConversionOps:
        return _Scale()


@pytest.mark.parametrize(
    ("operations", "expect_views"),
    [
        ([Chunk(dim=0)], True),  # reverse: Concatenate(dim=0), a byte concatenation
        ([Chunk(dim=1)], False),  # reverse: Concatenate(dim=1), rows interleave
        ([Transpose(0, 1)], False),
        ([Interleave(dim=0)], False),
        ([_Scale()], False),
    ],
    ids=["concat-dim0", "concat-dim1", "transpose", "interleave", "computes-values"],
)
def test_only_pure_leading_byte_moves_take_the_view_path(operations: list, expect_views: bool) -> None:
    """The fallback choice, on a converter of HRM-Text's mlp swapped for each kind; where views are
    offered, their bytes are still transformers' own."""
    model = _model("hrm_text")
    fused = ["mlp.gate_proj.weight", "mlp.up_proj.weight"] if operations[0].__class__ is Chunk else None
    model._weight_conversions = [
        WeightConverter(
            source_patterns="mlp.fused.weight",
            target_patterns=fused or ["mlp.gate_proj.weight"],
            operations=operations,
        )
    ]
    state = saved_state(model)
    layer = "model.H_module.layers.0.mlp"
    group = {n: state[n] for n in state if n.startswith(layer) and ("gate_proj" in n or (fused and "up_proj" in n))}
    meta = {n: torch.empty(t.shape, dtype=t.dtype, device="meta") for n, t in group.items()}
    out, views = revert_traced(model, meta)
    assert [n for n in out if n.endswith("mlp.fused.weight")], out  # the swapped converter did apply
    assert (views is not None) == expect_views
    expected = revert_weight_conversion(model, dict(group))
    assert set(out) == set(expected) and all(out[n].shape == expected[n].shape for n in out)
    for name, pieces in (views or {}).items():
        got = b"".join(_bytes(state[p.source])[p.offset : p.offset + p.nbytes] for p in pieces)
        assert got == _bytes(expected[name])


def test_byte_ranges_from_more_files_than_are_kept_open(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of HRM-Text's gqkv_proj tensors is joined from four offload files; with one file kept open
    at a time, every descriptor in a tensor's parts must still be the file it was opened for."""
    from offload_conformance.harness.judge.compare import compare
    from offload_conformance.harness.plan.modes import by_name as mode
    from offload_conformance.reference_impl import save_pretrained, sources

    monkeypatch.setattr(sources, "_OPEN_FILES", 1)
    disk_full = mode("disk-full+offload_buffers")
    model = AutoModelForCausalLM.from_pretrained(
        generate(by_name("hrm_text")), dtype=torch.bfloat16, **disk_full.load_kwargs(None, tmp_path / "offload")
    )  # type: ignore[arg-type]
    save_pretrained(model, tmp_path / "saved")
    _model("hrm_text").save_pretrained(tmp_path / "expected")
    assert compare(tmp_path / "expected", tmp_path / "saved").grade == "bytes"


@pytest.mark.parametrize("fixture", [k[0] for k in KINDS] + ["hrm_text-5", "llama"])  # llama: nothing to revert
@pytest.mark.parametrize("shards", ["24KB", "50GB"])
def test_run_by_run_schedule_is_the_whole_revert_s_checkpoint(fixture: str, shards: str) -> None:
    """schedule() reverts one layer's run of tensors at a time; its checkpoint (names, order, dtypes,
    shapes, shards) must be what one revert of the whole state plans (the in-memory save's way)."""
    from huggingface_hub import split_state_dict_into_shards_factory

    from offload_conformance.reference_impl.schedule import _runs

    if fixture == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, vocab_size=64
        )
        model = LlamaForCausalLM(config)
    else:
        model = _hrm(5) if fixture == "hrm_text-5" else _model(fixture)
    state = saved_state(model)
    assert len(_runs(list(state))) > 2  # the run-by-run path is taken, not the whole state at once
    full = revert_weight_conversion(model, {n: torch.empty_like(t, device="meta") for n, t in state.items()})
    # as the in-memory save's planner sees real tensors: views of one tensor share its storage
    expected = split_state_dict_into_shards_factory(
        full,
        get_storage_size=lambda t: t.untyped_storage().nbytes(),
        get_storage_id=lambda t: t.untyped_storage()._cdata,
        filename_pattern="model{suffix}.safetensors",
        max_shard_size=shards,
    )
    plan = schedule(model, shards)
    assert list(plan.outputs) == list(full)
    assert [(p.dtype, p.shape) for p in plan.outputs.values()] == [(t.dtype, tuple(t.shape)) for t in full.values()]
    assert plan.split.filename_to_tensors == expected.filename_to_tensors
