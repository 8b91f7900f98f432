"""Standalone repro (silent corruption): save_pretrained on a disk-offloaded model writes its non-float
offloaded tensors cast to the model's float dtype (transformers#46849).

The disk-offload index recorded every offloaded tensor's dtype as the model dtype (`str(dtype)`), not
the tensor's own, so onloading for the save cast int and float8 tensors to bf16. Shown on a
compressed-tensors W4A16 Llama with its decoder layers on disk: `weight_packed` (int32) and
`weight_shape` (int64) come back as BF16 with no error. Bad on 5.12.1; fixed in 5.13.0, but this save raises
other errors on 5.13.1 (AttributeError 'NoneType' ... 'convert') and 5.14.1 ('could not revert some
weight conversions'), so the fixed release named is 5.15.1.

Needs torch, transformers, accelerate, compressed-tensors; the tiny checkpoint is written by this
repo's fixtures package. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate


def dtypes(folder: Path) -> dict[str, str]:
    out = {}
    for f in folder.glob("*.safetensors"):
        with safe_open(f, "pt") as h:
            out |= {k: h.get_slice(k).get_dtype() for k in h.keys()}  # noqa: SIM118
    return out


os.environ["HF_HUB_OFFLINE"] = "1"
src = generate(by_name("llama_w4a16"))
with tempfile.TemporaryDirectory() as tmp:
    layers = {f"model.layers.{i}": "disk" for i in range(2)}  # decoder layers on disk, the rest in RAM
    device_map = {
        "model.embed_tokens": "cpu",
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
        "lm_head": "cpu",
        **layers,
    }
    model = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map=device_map, offload_folder=os.path.join(tmp, "off")
    )
    out = Path(tmp) / "out"
    model.save_pretrained(out)
    source, saved = dtypes(src), dtypes(out)
cast = sorted(f"{k}: {saved.get(k)}, expected {v}" for k, v in source.items() if saved.get(k) != v)
print(f"{len(cast)} of {len(source)} tensors saved with another dtype (or missing), e.g. {cast[:2]}")
sys.exit(1 if cast else 0)
