"""Repro: compressed-tensors MoE checkpoints whose experts are FP8 *block*-quantized (`float-quantized`,
strategy "block") or int8 (`int-quantized`, W8A8) do not load, even in memory: `from_pretrained` raises
`RuntimeError: We encountered some issues during automatic conversion of the weights.`

Cause (transformers 5.24.0, integrations/compressed_tensors.py, `CompressedTensorsDequantize.convert`): routed
experts are always dequantized into the fused `gate_up_proj` / `down_proj`. Its FP8 branch computes
`weight * weight_scale`, which broadcasts only per-channel / per-tensor scales ("The size of tensor a (32) must
match the size of tensor b (2)" for [out/16, in/16] block scales); int8 experts fall through to the packed-int
branch, which only collects `weight_packed` keys, so the following Concatenate gets no tensors
("torch.cat(): expected a non-empty list of Tensors"). Per-channel FP8, W4A16 and NVFP4 experts load (and are
dequantized; their save then fails: see compressed_tensors_int4_save.py).

Needs torch, transformers, compressed-tensors; the tiny checkpoints are written here. Exit 1 while the bug is
present.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, Qwen3MoeConfig

os.environ["HF_HUB_OFFLINE"] = "1"
BLOCK = 16


def fp8_block(w: torch.Tensor) -> dict[str, torch.Tensor]:
    rows, cols = w.shape
    blocks = w.float().reshape(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK)
    scale = (blocks.abs().amax(dim=(1, 3)) / 448).to(w.dtype)
    q = (blocks / scale.float()[:, None, :, None]).reshape(rows, cols).to(torch.float8_e4m3fn)
    return {"weight": q, "weight_scale": scale}


def int8_channel(w: torch.Tensor) -> dict[str, torch.Tensor]:
    scale = (w.abs().amax(dim=1, keepdim=True).float() / 127.5).to(w.dtype)
    return {"weight": torch.round(torch.clamp(w / scale, -128, 127)).to(torch.int8), "weight_scale": scale}


def scheme(fmt: str, weights: dict, inputs: dict) -> dict:
    return {
        "quant_method": "compressed-tensors",
        "format": fmt,
        "quantization_status": "compressed",
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {"symmetric": True, "dynamic": False, **weights},
                "input_activations": {"symmetric": True, "dynamic": True, **inputs},
                "output_activations": None,
                "format": fmt,
            }
        },
        "ignore": ["lm_head", "re:.*mlp.gate$"],
    }


CASES = {
    "fp8-block": (
        fp8_block,
        scheme(
            "float-quantized",
            {"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [BLOCK, BLOCK]},
            {"num_bits": 8, "type": "float", "strategy": "group", "group_size": BLOCK},
        ),
    ),
    "w8a8": (
        int8_channel,
        scheme(
            "int-quantized",
            {"num_bits": 8, "type": "int", "strategy": "channel"},
            {"num_bits": 8, "type": "int", "strategy": "token"},
        ),
    ),
}
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
failed = False
with tempfile.TemporaryDirectory() as tmp:
    src = Path(tmp, "dense")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(src)
    dense = load_file(src / "model.safetensors")
    for name, (quantize, qconfig) in CASES.items():
        ckpt = Path(tmp, name)
        tensors = {}
        for key, t in dense.items():
            if t.ndim == 2 and key.endswith("proj.weight"):  # attention and per-expert projections
                for suffix, q in quantize(t).items():
                    tensors[key.removesuffix("weight") + suffix] = q
            else:
                tensors[key] = t
        ckpt.mkdir()
        save_file(tensors, ckpt / "model.safetensors", metadata={"format": "pt"})
        cfg = json.loads((src / "config.json").read_text())
        (ckpt / "config.json").write_text(json.dumps({**cfg, "quantization_config": qconfig}))
        try:
            AutoModelForCausalLM.from_pretrained(ckpt)
            print(f"{name}: loaded without error")
        except Exception as e:
            print(f"{name}: from_pretrained raised {type(e).__name__}: {str(e).splitlines()[0]}")
            failed = True
sys.exit(1 if failed else 0)
