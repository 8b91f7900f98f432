"""keep_fp8_quantized(): a fine-grained FP8 (block 16) tiny Qwen3-MoE loads on CPU with its float8 weights and
`weight_scale_inv`, the in-memory save gives back the input's tensors, and disk-offloaded saves equal it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, Qwen3MoeConfig

from offload_conformance.harness.run.fp8_on_cpu import fp8_parameters, keep_fp8_quantized

BLOCK = 16
PLACEMENTS = {
    "in-memory": {},
    "disk-full": {"device_map": "auto", "max_memory": {"cpu": 1}},
    "disk-full+offload_buffers": {"device_map": "auto", "max_memory": {"cpu": 1}, "offload_buffers": True},
}


@pytest.fixture(scope="module")
def fp8_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture generator's fp8-block layout: float8 weight + float32 weight_scale_inv (absmax / 448) per block,
    on every Linear but the head and the routers."""
    root = tmp_path_factory.mktemp("fp8")
    config = Qwen3MoeConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(root / "dense")
    tensors = {}
    for name, t in load_file(root / "dense" / "model.safetensors").items():
        if t.ndim == 2 and name.endswith("proj.weight"):
            rows, cols = t.shape
            blocks = t.float().reshape(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK)
            scale = blocks.abs().amax(dim=(1, 3)) / torch.finfo(torch.float8_e4m3fn).max
            tensors[name] = (blocks / scale[:, None, :, None]).reshape(rows, cols).to(torch.float8_e4m3fn)
            tensors[f"{name}_scale_inv"] = scale
        else:
            tensors[name] = t
    out = root / "fp8"
    out.mkdir()
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    cfg = json.loads((root / "dense" / "config.json").read_text())
    cfg["quantization_config"] = {
        "quant_method": "fp8",
        "fmt": "e4m3",
        "activation_scheme": "dynamic",
        "weight_block_size": [BLOCK, BLOCK],
    }
    (out / "config.json").write_text(json.dumps(cfg))
    return out


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
