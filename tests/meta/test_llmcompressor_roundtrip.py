"""The llm-compressor round trip's judgements on tensors (roundtrip.py), without loading anything."""

from __future__ import annotations

import pytest

from offload_conformance.harness.tools.llmcompressor import roundtrip

torch = pytest.importorskip("torch")


def test_a_dequantized_weight_off_by_its_global_scale_is_far_from_the_source() -> None:
    source = {"w": torch.full((4, 4), 0.5, dtype=torch.bfloat16), "norm": torch.ones(4, dtype=torch.bfloat16)}
    near = {"w": source["w"] * 0.9, "norm": source["norm"], "scale": torch.ones(1)}  # quantization noise; no source
    assert roundtrip._far_from_source(near, source) == ""
    far = {"w": source["w"] * 5376}  # NVFP4 without dividing by weight_global_scale
    assert roundtrip._far_from_source(far, source).startswith("w is 2688 away")
    fp8 = {"w": source["w"].to(torch.float8_e4m3fn)}  # still compressed: not compared
    assert roundtrip._far_from_source(fp8, source) == ""


def test_offloaded_load_is_held_to_the_in_memory_load_byte_for_byte() -> None:
    a = {"x": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5])}
    assert roundtrip._difference(a, {k: v.clone() for k, v in a.items()}) == ""
    assert "differs" in roundtrip._difference(a, {**a, "b": torch.tensor([0.5], dtype=torch.bfloat16)})
    assert roundtrip._difference(a, {"x": a["x"]}) == "b is missing from the offloaded load"


def test_loading_info_names_only_what_went_wrong() -> None:
    info = {"missing_keys": set(), "unexpected_keys": {"a", "b", "c", "d"}, "mismatched_keys": [], "error_msgs": []}
    assert roundtrip._loading_problems(info) == "unexpected_keys ['a', 'b', 'c'] ..."
