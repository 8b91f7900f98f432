"""Standalone repro: a single-file save into a directory that holds an earlier sharded save deletes the old shards
but leaves the old `model.safetensors.index.json`, whose weight_map now names files that do not exist.

transformers itself prefers `model.safetensors` and loads the new weights; a reader that starts from the index
(it is the documented entry point of a sharded checkpoint: huggingface_hub's and other runtimes' loaders) finds
only missing files. Found by the harness's `over-earlier-sharded` save context. Needs only torch, transformers.
Exit 1 while present.
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
)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
with tempfile.TemporaryDirectory() as out:
    model.save_pretrained(out, max_shard_size="24KB")  # sharded
    model.save_pretrained(out)  # single file, same directory
    index = os.path.join(out, "model.safetensors.index.json")
    dangling = []
    if os.path.exists(index):
        with open(index) as f:
            dangling = sorted(
                {v for v in json.load(f)["weight_map"].values() if not os.path.exists(os.path.join(out, v))}
            )
    print(f"index left: {os.path.exists(index)}; it names {len(dangling)} files that do not exist, e.g. {dangling[:2]}")
    sys.exit(1 if dangling else 0)
