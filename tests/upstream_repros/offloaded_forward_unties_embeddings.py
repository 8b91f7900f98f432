"""Standalone repro: after one forward pass, the save of a disk-offloaded model with tied embeddings writes
`lm_head.weight` too (the tie is not recognised any more), which the in-memory save, and the same offloaded
save without the forward pass, never write.

Calibrate or evaluate, then save, is the usual workflow. accelerate's hooks load each offloaded weight for the
forward and put a new meta parameter back after it, so `lm_head.weight` and `model.embed_tokens.weight` are no
longer one object. Needs only torch, transformers, accelerate. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile

import torch
from safetensors import safe_open
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
    tie_word_embeddings=True,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "src")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(src)

    def saved_names(out: str, forward: bool) -> set[str]:
        offload = {"device_map": "auto", "max_memory": {"cpu": 1}, "offload_buffers": True}
        model = AutoModelForCausalLM.from_pretrained(
            src, dtype=torch.bfloat16, offload_folder=os.path.join(out, "..", f"off-{forward}"), **offload
        )
        if forward:
            with torch.no_grad():
                model(input_ids=torch.arange(8).unsqueeze(0))
        model.save_pretrained(out)
        with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
            return set(f.keys())

    plain = saved_names(os.path.join(tmp, "plain"), forward=False)
    after = saved_names(os.path.join(tmp, "forward"), forward=True)
    extra = sorted(after - plain)
    print(f"without a forward pass: lm_head.weight saved: {'lm_head.weight' in plain}; after one: extra {extra}")
    sys.exit(1 if extra else 0)
