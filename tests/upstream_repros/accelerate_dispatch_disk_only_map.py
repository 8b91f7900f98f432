"""Repro: accelerate's `load_checkpoint_and_dispatch` (and `load_checkpoint_in_model`) with a device map whose only
device is "disk" (`{"": "disk"}`, or what `device_map="auto"` infers with no room in RAM) raises
`safetensors_rust.SafetensorError: device disk is invalid`.

With one device in the map, `accelerate.utils.modeling.load_state_dict` opens the safetensors file directly on that
device, and "disk" is not a torch device. Bad on accelerate 1.15.0; fixed in 1.16.0 (it reads such weights on the
CPU first), both with transformers 5.24.0 and 5.25.0.

Needs torch, transformers, accelerate, safetensors; the tiny bf16 checkpoint is written here. Exit 1 while the bug is
present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from accelerate import init_empty_weights, load_checkpoint_and_dispatch
from transformers import AutoModelForCausalLM, LlamaConfig

config = LlamaConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    ckpt = Path(tmp, "ckpt")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(ckpt)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    try:
        load_checkpoint_and_dispatch(model, str(ckpt), device_map={"": "disk"}, offload_folder=Path(tmp, "off"))
    except Exception as e:
        print(f"load_checkpoint_and_dispatch with everything on disk raised {type(e).__name__}: {e}")
        sys.exit(1)
    print("loaded with everything on disk")
