"""Standalone repro: on a model with no fused weights at all (a dense Llama), an offloaded save with a small
max_shard_size still splits shards differently from the in-memory save (same tensors, other files and index).

The in-memory save reverts the conversion mapping over the whole state dict before planning shards, and that revert
sorts the names (core_model_loading.revert_weight_conversion: `sorted(state_dict.items(), key=dot_natural_key)`):
lm_head.weight is planned first. The offloaded save plans in module order (lm_head.weight last) and reverts shard
by shard. Found by the mutation analysis (a dense fixture added to close a gap it showed).
Needs only torch, transformers, accelerate. Exit 1 while the bug is present.
"""

import json
import os
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

os.environ["HF_HUB_OFFLINE"] = "1"
config = LlamaConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=256,
    tie_word_embeddings=False,
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
        f"in-memory: {len(set(in_memory.values()))} shards (lm_head.weight in {in_memory['lm_head.weight']}),"
        f" offloaded: {len(set(offloaded.values()))} shards (lm_head.weight in {offloaded['lm_head.weight']}),"
        f" {len(moved)} tensors in other files"
    )
    sys.exit(1 if moved else 0)
