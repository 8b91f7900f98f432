"""Standalone repro (silent corruption under a damaged offload index): save_pretrained on a disk-offloaded model
writes a tensor in the dtype its offload index entry says, not the dtype the model holds, with no error.

accelerate's OffloadedWeightsLoader casts what it reads to the entry's `dtype`; an entry changed after the load
(another process rewriting an offload index, a stale index of an earlier load) makes the save write a bf16
parameter as float16. Found by `offload-conformance fuzz --damage` (kind index-dtype; docs/reliability.md); the
reference refuses it ("index says dtype float16, the model holds torch.bfloat16").

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

NAME = "model.layers.1.self_attn.o_proj.weight"
os.environ["HF_HUB_OFFLINE"] = "1"
with tempfile.TemporaryDirectory() as tmp:
    model = AutoModelForCausalLM.from_pretrained(
        generate(by_name("llama")),
        dtype=torch.bfloat16,
        device_map="auto",
        max_memory={"cpu": 1},
        offload_folder=os.path.join(tmp, "off"),
    )
    hook = next(m._hf_hook for m in model.modules() if getattr(getattr(m, "_hf_hook", None), "weights_map", None))
    hook.weights_map.dataset.index[NAME]["dtype"] = "float16"  # the damage: one index entry's dtype
    try:
        model.save_pretrained(Path(tmp) / "out")
    except Exception as e:
        print(f"refused: {type(e).__name__}: {str(e).splitlines()[0]}")
        sys.exit(0)
    with safe_open(Path(tmp) / "out" / "model.safetensors", "pt") as f:
        saved = f.get_slice(NAME).get_dtype()
print(f"{NAME}: the model holds bfloat16, the save wrote {saved} with no error")
sys.exit(1 if saved != "BF16" else 0)
