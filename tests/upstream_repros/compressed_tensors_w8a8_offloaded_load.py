"""Repro: a compressed-tensors `int-quantized` (W8A8) checkpoint loads in memory but not disk-offloaded:
`from_pretrained(..., device_map="auto", max_memory={"cpu": 1}, offload_folder=...)` raises
`RuntimeError: expected a floating-point or complex dtype, but got dtype=torch.int8`.

Cause (transformers 5.24.0): parameters offloaded to disk stay in the model as meta tensors without
`_is_hf_initialized`, so `_initialize_missing_keys` -> `initialize_weights` -> `_init_weights` calls
`init.normal_` on every offloaded Linear weight. On float weights (bf16, fp8) that is a silent no-op on meta;
on W8A8's int8 `weight`, torch's meta `normal_` rejects the dtype. The in-memory load marks the loaded tensors
initialized and skips them.

Needs torch, transformers, accelerate, compressed-tensors; the tiny checkpoint is written here (int8 per-channel
weights, absmax / 127.5 scales). Exit 1 while the bug is present.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaConfig

os.environ["HF_HUB_OFFLINE"] = "1"
W8A8 = {
    "quant_method": "compressed-tensors",
    "format": "int-quantized",
    "quantization_status": "compressed",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel"},
            "input_activations": {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True},
            "output_activations": None,
            "format": "int-quantized",
        }
    },
    "ignore": ["lm_head"],
}
config = LlamaConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=128,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    src, ckpt = Path(tmp, "dense"), Path(tmp, "w8a8")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(src)
    tensors = {}
    for name, t in load_file(src / "model.safetensors").items():
        if t.ndim == 2 and name.endswith("proj.weight"):
            scale = (t.abs().amax(dim=1, keepdim=True).float() / 127.5).to(t.dtype)
            tensors[name] = torch.round(torch.clamp(t / scale, -128, 127)).to(torch.int8)
            tensors[name.removesuffix("weight") + "weight_scale"] = scale
        else:
            tensors[name] = t
    ckpt.mkdir()
    save_file(tensors, ckpt / "model.safetensors", metadata={"format": "pt"})
    cfg = json.loads((src / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**cfg, "quantization_config": W8A8}))

    AutoModelForCausalLM.from_pretrained(ckpt)  # in memory: loads, weights stay int8
    try:
        AutoModelForCausalLM.from_pretrained(
            ckpt, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "offload")
        )
    except Exception as e:
        print(f"disk-offloaded from_pretrained raised {type(e).__name__}: {e}")
        sys.exit(1)
    print("loaded disk-offloaded without error")
