"""Standalone repro: saving a disk-offloaded model back into the directory it was loaded from (sharded there)
deletes the user's checkpoint, then fails: the save raises, the model is broken and the directory keeps neither
the old checkpoint nor a new one.

transformers 5.x does not copy an unconverted weight into `offload_folder`: accelerate's offload index points into
the checkpoint's own safetensors files. save_pretrained first "cleans the folder from a previous save" (every
`model-XXXXX-of-YYYYY.safetensors` the new save does not write), which removes exactly those files, and then
reads the offloaded weights from them (load_offloaded_parameter -> safe_open): FileNotFoundError.
Found by the harness's `in-place` save context. Needs only torch, transformers, accelerate. Exit 1 while present.
"""

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
    ckpt = os.path.join(tmp, "ckpt")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(ckpt, max_shard_size="24KB")
    shards = sorted(f for f in os.listdir(ckpt) if f.endswith(".safetensors"))
    model = AutoModelForCausalLM.from_pretrained(
        ckpt, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    try:
        model.save_pretrained(ckpt)  # back where it came from, upstream's default max_shard_size: one file
        raised = None
    except Exception as e:
        raised = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    left = sorted(f for f in os.listdir(ckpt) if f.endswith(".safetensors"))
    lost = [f for f in shards if f not in left]
    print(f"before: {len(shards)} shards; save raised: {raised}; after: {left}; {len(lost)} of the user's shards gone")
    sys.exit(1 if raised or (lost and "model.safetensors" not in left) else 0)
