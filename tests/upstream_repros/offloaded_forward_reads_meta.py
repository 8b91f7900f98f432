"""Repro: JetMoE and Llama 4 (text) models loaded by transformers with their layers offloaded to disk cannot run a
forward pass, where the same checkpoint loaded in memory runs: JetMoE raises `RuntimeError: Tensor on device meta is
not on the expected device cpu!`, Llama 4 `NotImplementedError: Cannot copy out of meta tensor; no data!`.

accelerate's offloading hook loads a module's weights when that module's own forward runs; outside it they are the
`meta` placeholders the load left. JetMoE's attention calls its experts' `reduce` method, not their forward, and
`reduce` adds the module's `bias`; Llama 4 moves `input_ids` to `self.embed_tokens.weight.device`, which is `meta`
for an offloaded embedding.
The save is not affected (it reads every weight back from offload storage). Measured with accelerate 1.16.0 on
transformers 5.24.0 and 5.25.0 (found by the sweep's `offload-forward` check).

Needs torch, transformers, accelerate; the tiny checkpoints are written here. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from transformers import AutoModelForCausalLM, JetMoeConfig, Llama4TextConfig

CONFIGS = {
    "jetmoe": JetMoeConfig(
        vocab_size=128,
        hidden_size=64,
        num_hidden_layers=2,
        num_key_value_heads=2,
        kv_channels=16,
        intermediate_size=128,
        num_local_experts=4,
        num_experts_per_tok=2,
    ),
    "llama4_text": Llama4TextConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        intermediate_size_mlp=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_local_experts=4,
        num_experts_per_tok=1,
    ),
}
ids = torch.arange(8).unsqueeze(0)
broken = []
with tempfile.TemporaryDirectory() as tmp:
    for name, config in CONFIGS.items():
        torch.manual_seed(0)
        ckpt = Path(tmp, name)
        AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(ckpt)
        with torch.no_grad():
            expected = AutoModelForCausalLM.from_pretrained(ckpt)(input_ids=ids).logits
        offloaded = AutoModelForCausalLM.from_pretrained(
            ckpt, device_map="auto", max_memory={"cpu": 1}, offload_folder=Path(tmp, f"{name}-offload")
        )
        try:
            with torch.no_grad():
                got = offloaded(input_ids=ids).logits
        except (RuntimeError, NotImplementedError) as e:
            print(f"{name}: the forward pass of the disk-offloaded model raised {type(e).__name__}: {e}")
            broken.append(name)
            continue
        if not torch.equal(expected, got):
            print(f"{name}: the disk-offloaded model computes other logits than the model loaded in memory")
            broken.append(name)
        else:
            print(f"{name}: the disk-offloaded model computes the logits of the model loaded in memory")
sys.exit(1 if broken else 0)
