"""Standalone repro: a save without a variant into a directory that holds a sharded save of another variant
deletes that variant's shards and keeps its index: the other variant no longer loads.

save_pretrained's cleanup removes every file that starts with `model` and matches `(.*?)-\\d{5}-of-\\d{5}`, which
`model.fp16-00001-of-00003.safetensors` does, though it is not a file of the save being made. The Hub convention
keeps variants side by side in one repository (`model.safetensors` beside `model.fp16.safetensors`), so saving the
default variant into a clone of such a repository loses the other one.
Found by the harness's `over-earlier-variant` save context. Needs only torch, transformers. Exit 1 while present.
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
)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
with tempfile.TemporaryDirectory() as out:
    model.save_pretrained(out, variant="fp16", max_shard_size="24KB")  # the other variant, sharded
    before = sorted(f for f in os.listdir(out) if f.startswith("model.fp16"))
    model.save_pretrained(out)  # the default variant, same directory
    after = sorted(f for f in os.listdir(out) if f.startswith("model.fp16"))
    try:
        AutoModelForCausalLM.from_pretrained(out, variant="fp16", dtype=torch.bfloat16)
        loads = "loads"
    except Exception as e:
        loads = f"does not load: {type(e).__name__}"
    print(f"variant fp16 files: {len(before)} before, {len(after)} after; from_pretrained(variant='fp16') {loads}")
    sys.exit(1 if after != before else 0)
