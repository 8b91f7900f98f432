"""Repro: a tied-embedding model loaded the way accelerate's big-model guide does it (`init_empty_weights`,
`tie_weights()`, `load_checkpoint_and_dispatch`) with everything on disk cannot run a forward pass:
`KeyError: 'lm_head.weight'`, where the same checkpoint loaded in memory runs.

accelerate offloads a tied weight once, under its first name (`model.embed_tokens.weight`), in the offload folder's
index.json; the hook of `lm_head` reads its weight from the weights map by its own name, which the index never had.
The save fails on the same lookup (accelerate_dispatched_tied_disk_save_keyerror.py); this is the model itself.
transformers' own loading (`from_pretrained(device_map=...)`) records the tie and runs. Measured with accelerate
1.16.0 on transformers 5.24.0 and 5.25.0.

Needs torch, transformers, accelerate; the tiny bf16 checkpoint (Qwen3, tied) is written here. Exit 1 while the bug
is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from accelerate import init_empty_weights, load_checkpoint_and_dispatch
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
ids = torch.arange(8).unsqueeze(0)
with tempfile.TemporaryDirectory() as tmp:
    ckpt = Path(tmp, "ckpt")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(ckpt)
    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16)(input_ids=ids).logits
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.tie_weights()
    try:
        model = load_checkpoint_and_dispatch(model, str(ckpt), device_map={"": "disk"}, offload_folder=Path(tmp, "off"))
    except Exception as e:  # accelerate < 1.16: accelerate_dispatch_disk_only_map.py
        print(f"cannot reach the forward pass: the load raised {type(e).__name__}: {e}")
        sys.exit(2)
    try:
        with torch.no_grad():
            got = model(input_ids=ids).logits
    except KeyError as e:
        print(f"the forward pass of the dispatched model raised KeyError: {e}; in memory it runs")
        sys.exit(1)
    if not torch.equal(expected, got):
        print("the dispatched model computes other logits than the model loaded in memory")
        sys.exit(1)
    print("the dispatched model computes the logits of the model loaded in memory")
