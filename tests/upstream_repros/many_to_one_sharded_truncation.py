"""Repro (silent data loss): an offloaded save whose shards split the parts of a many-to-one
reverse conversion writes truncated fused tensors with no error.

HRM-Text checkpoints fuse `attn.gqkv_proj.weight` (gate, q, k, v) and `mlp.gate_up_proj.weight`,
split on load (Chunk). Offloaded, save_pretrained reverts conversions shard by shard; when the
parts land in different shards, `Concatenate` skips the absent ones, so each shard gets a partial
tensor under the full name, and the index names one of them. The guard meant for this case
(`RuntimeError: We could not revert some weight conversions ...`) never fires.

Needs torch, transformers; the tiny checkpoint is written by this repo's fixtures package.
Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

os.environ["HF_HUB_OFFLINE"] = "1"
NAME = "model.H_module.layers.0.attn.gqkv_proj.weight"
with tempfile.TemporaryDirectory() as tmp:
    src = generate(by_name("hrm_text"), root=Path(tmp))
    model = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "offload")
    )
    out = Path(tmp) / "out"
    model.save_pretrained(out, max_shard_size="24KB")
    shapes = []
    for f in sorted(out.glob("*.safetensors")):
        with safe_open(f, "pt") as h:
            if NAME in h.keys():  # noqa: SIM118
                shapes.append((f.name, h.get_slice(NAME).get_shape()))
    print(f"{NAME} (expected [256, 64]) written as: {shapes}")
    sys.exit(1 if any(shape != [256, 64] for _, shape in shapes) else 0)
