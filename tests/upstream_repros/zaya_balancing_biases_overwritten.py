"""Repro: loading a Zaya checkpoint in memory overwrites the last entry of every router's `balancing_biases` (the
skip expert's bias) with -1.0, whatever the checkpoint holds. A disk-offloaded load that offloads buffers too
(`device_map="auto", max_memory={"cpu": 1}, offload_folder=..., offload_buffers=True`) keeps the loaded value, so
the in-memory and the offloaded `save_pretrained` of the same checkpoint differ. (Without `offload_buffers=True` the
buffer stays in CPU memory and is overwritten there too.)

Cause (transformers 5.24.0): `ZayaPreTrainedModel._init_weights` (models/zaya/modeling_zaya.py) runs on load for
every module (`_initialize_missing_keys` -> `initialize_weights`); its `ZayaRouter` branch calls
`init.zeros_(module.balancing_biases)`, which the `_is_hf_initialized` flag of the loaded buffer turns into a no-op,
and then `module.balancing_biases[-1] = -1.0`, a plain assignment that no flag guards, so the loaded value is
overwritten. Offloaded, the buffer is a meta tensor at that point and the assignment is a no-op.

Needs torch, transformers, accelerate, safetensors; the tiny checkpoint is written here (balancing biases set to
values other than the init's). Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, ZayaConfig

config = ZayaConfig(
    vocab_size=128,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    head_dim=16,
    moe_intermediate_size=64,
    num_experts=4,
    router_hidden_size=32,
    layer_types=["hybrid", "hybrid"],
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    ckpt = Path(tmp, "ckpt")
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("balancing_biases"):
                buf.copy_(torch.linspace(0.1, 0.5, buf.numel()))  # trained biases: last entry 0.5, not -1.0
    model.save_pretrained(ckpt)
    saved = {k: v for k, v in load_file(ckpt / "model.safetensors").items() if k.endswith("balancing_biases")}

    AutoModelForCausalLM.from_pretrained(ckpt).save_pretrained(Path(tmp, "in_memory"))
    AutoModelForCausalLM.from_pretrained(
        ckpt,
        device_map="auto",
        max_memory={"cpu": 1},
        offload_folder=os.path.join(tmp, "offload"),
        offload_buffers=True,
    ).save_pretrained(Path(tmp, "offloaded"))
    in_memory = load_file(Path(tmp, "in_memory", "model.safetensors"))
    offloaded = load_file(Path(tmp, "offloaded", "model.safetensors"))

    def fmt(t: torch.Tensor) -> list[float]:
        return [round(x, 4) for x in t.tolist()]

    bug = False
    for name, value in saved.items():
        print(f"{name}: checkpoint {fmt(value)}")
        print(f"    after the in-memory load + save {fmt(in_memory[name])}")
        print(f"    after the offloaded load + save {fmt(offloaded[name])}")
        bug |= not torch.equal(in_memory[name], value)
    print("in-memory load overwrote balancing_biases[-1]" if bug else "in-memory load kept balancing_biases")
    sys.exit(1 if bug else 0)
