"""Standalone repro (silent corruption under a damaged offload index): save_pretrained on a disk-offloaded model
writes, under a tensor's name, whatever tensor its offload index entry's `weight_name` names, with no error.

An entry of the offload index (weight_name: the tensor's name inside the file it points to) changed after the
load to another tensor of the same file: the save writes lm_head's [128, 64] bytes as
model.layers.0.mlp.down_proj.weight, a [64, 128] parameter of the model. Found by `offload-conformance fuzz
--damage` (kind index-name; docs/reliability.md); the reference refuses it ("... holds BF16[128, 64], the model
holds torch.bfloat16[64, 128]", and for a same-shape tensor "index reads 'lm_head.weight' of ..., which is
lm_head.weight's own storage").

Needs torch, transformers, accelerate; the tiny checkpoint is written by this repo's fixtures package. Exit 1 while
the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

NAME = "model.layers.0.mlp.down_proj.weight"
os.environ["HF_HUB_OFFLINE"] = "1"
with tempfile.TemporaryDirectory() as tmp:
    model = AutoModelForCausalLM.from_pretrained(
        generate(by_name("llama")),
        dtype=torch.bfloat16,
        device_map="auto",
        max_memory={"cpu": 1},
        offload_folder=os.path.join(tmp, "off"),
    )
    held = list(model.state_dict()[NAME].shape)
    hook = next(m._hf_hook for m in model.modules() if getattr(getattr(m, "_hf_hook", None), "weights_map", None))
    hook.weights_map.dataset.index[NAME]["weight_name"] = "lm_head.weight"  # the damage: one entry's weight_name
    try:
        model.save_pretrained(Path(tmp) / "out")
    except Exception as e:
        print(f"refused: {type(e).__name__}: {str(e).splitlines()[0]}")
        sys.exit(0)
    with safe_open(Path(tmp) / "out" / "model.safetensors", "pt") as f:
        saved = f.get_slice(NAME).get_shape()
print(f"{NAME}: the model holds {held}, the save wrote {saved} with no error")
sys.exit(1 if saved != held else 0)
