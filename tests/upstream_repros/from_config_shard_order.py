"""Repro: two in-memory models holding the same tensors save another shard split, depending only on how they were
built: `from_pretrained` vs `from_config` (how accelerate's big-model loading and any training script build one).

With a small `max_shard_size`, the model `from_pretrained` loaded is saved in the order `revert_weight_conversion`
sorts its names (it has `_weight_conversions`, even on a model type with no conversion at all); the model built by
`from_config` and given the same state dict keeps module order. Same tensors, other files and index, no error.
Measured on transformers 5.24.0 and 5.25.0 with a dense Llama.

Needs torch, transformers, safetensors; the tiny bf16 checkpoint is written here. Exit 1 while the bug is present.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

config = LlamaConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=12,  # layers 10 and 11 sort before 2 by name
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    ckpt = Path(tmp, "ckpt")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(ckpt)
    loaded = AutoModelForCausalLM.from_pretrained(ckpt)
    built = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.bfloat16)
    built.load_state_dict(loaded.state_dict())
    maps = []
    for name, model in (("from_pretrained", loaded), ("from_config", built)):
        model.save_pretrained(Path(tmp, name), max_shard_size="64KB")
        maps.append(json.loads(Path(tmp, name, "model.safetensors.index.json").read_text())["weight_map"])
    moved = sorted(k for k in maps[0] if maps[0][k] != maps[1].get(k))
    if maps[0].keys() != maps[1].keys() or moved:
        first = moved[0]
        print(f"same tensors, {len(moved)} in other shards, e.g. {first}: {maps[0][first]} vs {maps[1][first]}")
        sys.exit(1)
    print("same shard split")
