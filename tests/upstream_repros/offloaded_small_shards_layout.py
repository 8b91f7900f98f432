"""Standalone repro: an offloaded save with a small max_shard_size splits shards differently
from the in-memory save of the same model (same tensors, other files and index).

transformers plans shards on the *fused* in-memory names when the model is offloaded
(reverting conversions per shard afterwards), but on the reverted per-expert names when it is
not; the two plans differ whenever a fused expert tensor is larger than a per-expert part.
Needs only torch, transformers, accelerate. Exit 1 while the bug is present.
"""

import json
import os
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, Qwen3MoeConfig

os.environ["HF_HUB_OFFLINE"] = "1"
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
    max_position_embeddings=256,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "src")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(src)

    def save(out: str, **load_kwargs: object) -> dict:
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16, **load_kwargs)
        model.save_pretrained(out, max_shard_size="24KB")
        with open(os.path.join(out, "model.safetensors.index.json")) as f:
            return json.load(f)["weight_map"]

    in_memory = save(os.path.join(tmp, "a"))
    offloaded = save(
        os.path.join(tmp, "b"), device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    moved = sorted(k for k in in_memory if in_memory[k] != offloaded.get(k))
    print(
        f"in-memory: {len(set(in_memory.values()))} shards, offloaded: {len(set(offloaded.values()))} shards,"
        f" {len(moved)} tensors in other files (e.g. {moved[:1]})"
    )
    sys.exit(1 if moved else 0)
