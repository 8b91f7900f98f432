"""Repro: a tied-embedding model loaded the way accelerate's big-model guide does it (`init_empty_weights`,
`tie_weights()`, `load_checkpoint_and_dispatch`) with everything on disk cannot be saved: `save_pretrained` raises
`KeyError: 'lm_head.weight'`.

accelerate offloads a tied weight once, under its first name (`model.embed_tokens.weight`), in the offload folder's
index.json. transformers' offloaded save reads every meta parameter back through `load_offloaded_parameter` by its
own name before it drops the tied duplicates, so it asks accelerate's weights map for `lm_head.weight`, which the
index never had. transformers' own loading (`from_pretrained(device_map=...)`) records the tie and passes; the same
weights dispatched by accelerate do not. Measured with accelerate 1.16.0 on transformers 5.24.0 and 5.25.0 (with
accelerate 1.15.0 this load fails before, on a map whose only device is "disk":
accelerate_dispatch_disk_only_map.py).

Needs torch, transformers, accelerate, safetensors; the tiny bf16 checkpoint (Qwen3, tied, no renaming) is written
here. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from accelerate import init_empty_weights, load_checkpoint_and_dispatch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, Qwen3Config

config = Qwen3Config(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    tie_word_embeddings=True,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    ckpt, saved = Path(tmp, "ckpt"), Path(tmp, "saved")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(ckpt)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.tie_weights()
    try:
        model = load_checkpoint_and_dispatch(model, str(ckpt), device_map={"": "disk"}, offload_folder=Path(tmp, "off"))
    except Exception as e:  # accelerate < 1.16: accelerate_dispatch_disk_only_map.py
        print(f"cannot reach the save: the load raised {type(e).__name__}: {e}")
        sys.exit(2)
    try:
        model.save_pretrained(saved)
    except KeyError as e:
        print(f"save_pretrained of the dispatched model raised KeyError: {e}")
        sys.exit(1)
    expected, got = load_file(ckpt / "model.safetensors"), load_file(saved / "model.safetensors")
    if expected.keys() != got.keys() or any(not torch.equal(expected[k], got[k]) for k in expected):
        print("saved, but not the checkpoint that was loaded")
        sys.exit(1)
    print("saved the checkpoint that was loaded")
