"""Repro: the documented save of a model offloaded with accelerate's own `disk_offload`
(`save_pretrained(dir, state_dict=get_state_dict_offloaded_model(model))`) writes a tied `lm_head.weight` as a tensor
of its own: the checkpoint has one tensor more than the in-memory save, and the tie is lost on reload.

`disk_offload` gives each tied name a meta parameter of its own; `get_state_dict_offloaded_model` reads each back from
the offload folder into a tensor of its own, so transformers' storage-based tie detection sees two tensors, where the
in-memory state dict (and `cpu_offload`, which keeps one parameter) has one. Measured on transformers 5.24.0 with
accelerate 1.15.0 and transformers 5.25.0 with accelerate 1.16.0.

Needs torch, transformers, accelerate, safetensors; the tiny tied bf16 Qwen3 is built here. Exit 1 while the bug is
present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from accelerate import disk_offload
from accelerate.utils.modeling import get_state_dict_offloaded_model
from safetensors import safe_open
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


def names(directory: Path) -> set[str]:
    with safe_open(directory / "model.safetensors", "pt") as f:
        return set(f.keys())


torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    ckpt = Path(tmp, "ckpt")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(ckpt)
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    model.save_pretrained(Path(tmp, "in-memory"))
    disk_offload(model, os.path.join(tmp, "offload"), execution_device=torch.device("cpu"))
    model.save_pretrained(Path(tmp, "offloaded"), state_dict=get_state_dict_offloaded_model(model))
    extra = sorted(names(Path(tmp, "offloaded")) - names(Path(tmp, "in-memory")))
    if extra:
        print(f"the disk-offloaded save writes {extra} beside what the in-memory save writes (the tie is lost)")
        sys.exit(1)
    print("the same tensors as the in-memory save")
