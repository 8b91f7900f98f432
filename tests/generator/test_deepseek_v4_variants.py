"""DeepSeek-V4 under transformers' own names (deepseek_v4_transformers, and its fine-grained FP8 twin): the Hub
layout's tensors renamed one to one, and a checkpoint the installed transformers loads with nothing missing or
unexpected and saves with every value back."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import FixtureSpec, SpecError, by_name, generate
from offload_conformance.fixtures.architectures.deepseek_v4_names import transformers_name
from offload_conformance.fixtures.catalog import layout_for
from offload_conformance.harness.run.fp8_on_cpu import keep_fp8_quantized

NAMES = ("deepseek_v4_transformers", "deepseek_v4_transformers_fp8")


def _hub_twin(name: str) -> FixtureSpec:
    """The same spec in the Hub's naming."""
    spec = by_name(name)
    return dataclasses.replace(spec, extra=tuple(kv for kv in spec.extra if kv[0] != "naming"))


def test_the_transformers_naming_renames_the_hub_layout_one_to_one() -> None:
    spec = by_name("deepseek_v4_transformers")
    hub, ours = layout_for(_hub_twin(spec.name)), layout_for(spec)
    assert [dataclasses.replace(t, name=transformers_name(t.name)) for t in hub.tensors] == list(ours.tensors)
    assert len({t.name for t in ours.tensors}) == len(ours.tensors)
    names = {t.name for t in ours.tensors}
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.hc_head.hc_fn"} <= names
    assert "model.layers.1.mlp.shared_experts.down_proj.weight" in names  # what transformers#45782 split
    assert "model.layers.1.mlp.experts.3.w2.weight" in names  # per expert, as transformers' save writes them
    assert "model.layers.1.mlp.gate.e_score_correction_bias" in names and "model.layers.0.mlp.gate.tid2eid" in names
    assert not any(".compressor." in n or n.startswith("layers.") for n in names)
    assert hub.config == ours.config and all(r == 0 for r in ours.config["compress_ratios"])  # type: ignore[union-attr]
    assert "renamed" in hub.kinds and "renamed" not in ours.kinds


def test_the_fp8_twin_quantizes_linears_only() -> None:
    tensors = {t.name: t for t in layout_for(by_name("deepseek_v4_transformers_fp8")).tensors}
    w = "model.layers.1.mlp.experts.2.w1.weight"
    assert tensors[w].dtype == "float8_e4m3fn" and tensors[f"{w}_scale_inv"].shape == (2, 4)
    assert tensors["model.layers.1.self_attn.o_a_proj.weight"].dtype == "float8_e4m3fn"
    for plain in (
        "model.layers.1.mlp.gate.weight",
        "model.hc_head.hc_fn",
        "model.layers.0.attn_hc.fn",
        "lm_head.weight",
    ):
        assert f"{plain}_scale_inv" not in tensors and tensors[plain].dtype in (None, "float32")
    assert "model.layers.0.mlp.gate.tid2eid_scale_inv" not in tensors


def test_transformers_naming_refuses_compressor_layers() -> None:
    spec = dataclasses.replace(by_name("deepseek_v4_transformers"), extra=(("naming", "transformers"),))
    with pytest.raises(SpecError, match="sliding-window layers only"):
        layout_for(spec)
    with pytest.raises(SpecError, match="option naming='tf'"):
        layout_for(dataclasses.replace(spec, extra=(("naming", "tf"),)))


def _digests(tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    return {
        n: hashlib.sha256(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
        for n, t in tensors.items()
    }


@pytest.mark.parametrize("name", NAMES)
def test_loads_with_nothing_missing_and_saves_every_value_back(name: str, tmp_path: Path) -> None:
    d = generate(by_name(name))
    with keep_fp8_quantized():
        model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    experts = model.model.layers[1].mlp.experts
    assert experts.gate_up_proj.shape[0] == 4  # routed experts fused on load
    if name.endswith("fp8"):
        assert experts.gate_up_proj.dtype == torch.float8_e4m3fn and experts.down_proj_scale_inv.dtype == torch.float32
    model.save_pretrained(tmp_path / "saved")
    fixture = _digests(load_file(d / "model.safetensors"))
    saved = _digests(load_file(tmp_path / "saved" / "model.safetensors"))
    # Every value comes back, under some name: names are what releases disagree on (5.24.0 saves `self_attn.kv_norm`
    # as `self_attn.norm`, its unanchored `.norm.` -> `.kv_norm.` renaming reverted); the ledger judges them (row 20).
    assert set(fixture.values()) <= set(saved.values())
