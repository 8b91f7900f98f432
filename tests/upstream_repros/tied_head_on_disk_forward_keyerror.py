"""Repro: a tied-embedding model loaded by transformers with a hand-written device map that puts `lm_head` alone on
disk (the embedding it is tied to on cpu) cannot run a forward pass: `KeyError: 'lm_head.weight'`, where the same
checkpoint loaded in memory runs.

The checkpoint stores the tied weight once, as `model.embed_tokens.weight`. The load leaves the embedding on cpu and
gives `lm_head` an offloading hook whose weights map is asked for `lm_head.weight`, a name no file and no offload
index holds. The save is not affected: it drops the tie and writes the checkpoint loaded, byte for byte. Measured
with accelerate 1.16.0 on transformers 5.24.0 and 5.25.0.

Needs torch, transformers, accelerate; the tiny bf16 checkpoint (Qwen3, tied) is written here. Exit 1 while the bug
is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
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
    device_map = {"model": "cpu", "lm_head": "disk"}
    model = AutoModelForCausalLM.from_pretrained(
        ckpt, dtype=torch.bfloat16, device_map=device_map, offload_folder=Path(tmp, "off")
    )
    try:
        with torch.no_grad():
            got = model(input_ids=ids).logits
    except KeyError as e:
        print(f"the forward pass of the model with lm_head on disk raised KeyError: {e}; in memory it runs")
        sys.exit(1)
    if not torch.equal(expected, got):
        print("the model with lm_head on disk computes other logits than the model loaded in memory")
        sys.exit(1)
    print("the model with lm_head on disk computes the logits of the model loaded in memory")
