"""keep_fp8_quantized(): a fine-grained FP8 (block 16) tiny Qwen3-MoE loads on CPU with its float8 weights and
`weight_scale_inv`, the in-memory save gives back the input's tensors, and disk-offloaded saves equal it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import FixtureSpec, generate
from offload_conformance.harness.run.fp8_on_cpu import fp8_parameters, keep_fp8_quantized

PLACEMENTS = {
    "in-memory": {},
    "disk-full": {"device_map": "auto", "max_memory": {"cpu": 1}},
    "disk-full+offload_buffers": {"device_map": "auto", "max_memory": {"cpu": 1}, "offload_buffers": True},
}


@pytest.fixture(scope="module")
def fp8_checkpoint() -> Path:
    """The fixture generator's fp8-block layout: float8 weight + float32 weight_scale_inv (absmax / 448) per block,
    on every Linear but the head and the routers."""
    return generate(FixtureSpec(name="qwen3_moe_fp8_block", architecture="qwen3_moe", quantization="fp8-block"))


def _tensors(d: Path) -> dict[str, tuple[torch.dtype, bytes]]:
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        for name, t in load_file(f).items():
            out[name] = (t.dtype, t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return out


@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_saves_give_back_the_fp8_checkpoint(fp8_checkpoint: Path, tmp_path: Path, placement: str) -> None:
    kwargs = dict(PLACEMENTS[placement])
    if kwargs:
        kwargs["offload_folder"] = str(tmp_path / "offload")
    with keep_fp8_quantized():
        model = AutoModelForCausalLM.from_pretrained(fp8_checkpoint, **kwargs)
    # q/k/v/o and the fused experts' gate_up_proj / down_proj of both layers stay float8.
    assert fp8_parameters(model) == 12
    model.save_pretrained(tmp_path / "out")
    # The in-memory save gives back the input's tensors; an offloaded one therefore equals the in-memory save too.
    assert _tensors(tmp_path / "out") == _tensors(fp8_checkpoint)


def test_the_patch_is_scoped(fp8_checkpoint: Path) -> None:
    from transformers.quantizers.quantizer_finegrained_fp8 import FineGrainedFP8HfQuantizer

    original = FineGrainedFP8HfQuantizer.validate_environment
    with keep_fp8_quantized():
        assert FineGrainedFP8HfQuantizer.validate_environment is not original
    assert FineGrainedFP8HfQuantizer.validate_environment is original
    if torch.cuda.is_available():
        pytest.skip("with CUDA, transformers keeps FP8 weights by itself")
    # Without the helper, transformers 5.24.0 dequantizes on a CPU-only machine (why the helper exists).
    assert fp8_parameters(AutoModelForCausalLM.from_pretrained(fp8_checkpoint)) == 0
