"""Standalone repro: save_pretrained on a model offloaded with accelerate's own cpu_offload /
disk_offload (the path compressed-tensors and llm-compressor users take) raises
`NotImplementedError: Cannot copy out of meta tensor; no data!`.

Such a model has no hf_device_map, so save_pretrained does not treat it as offloaded and
hands the meta tensors to safetensors. Reported as compressed-tensors#357 (its offloading) and as
accelerate#2817 (cpu_offload, then a save: open since 2024). Needs only torch, transformers, accelerate.
Exit 1 while the bug is present.
"""

import os
import sys
import tempfile

import torch
from accelerate import cpu_offload
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
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    cpu_offload(model, execution_device=torch.device("cpu"))
    try:
        model.save_pretrained(os.path.join(tmp, "out"))
    except Exception as e:
        print(f"save_pretrained raised {type(e).__name__}: {e}")
        sys.exit(1)
    print("saved without error")
