"""Standalone repro (silent dtype change): a model loaded with accelerate's big-model loading in another dtype
than its checkpoint's (`load_checkpoint_and_dispatch(..., dtype=torch.float32)` on a bf16 checkpoint) and offloaded
to disk is saved by transformers' save_pretrained with its offloaded weights in the checkpoint's dtype (bf16), not
the model's (float32): the saved file mixes dtypes and disagrees with config.json, where the same model loaded in
memory saves float32 throughout.

accelerate's load_checkpoint_in_model casts a weight it keeps in memory to `dtype`, but writes an offloaded one to
offload_folder as the checkpoint holds it (bf16) and only re-types the meta placeholder; its hooks cast on every
read (set_module_tensor_to_device casts a value to the parameter's dtype), so the forward pass is right. transformers'
save reads the offloaded weight from the hook's weights_map and writes it uncast. The forward pass gives the logits
of the same checkpoint loaded in memory in float32, and accelerate's in-memory load (device_map={"": "cpu"}) with
the same dtype saves float32 throughout. Present on transformers 5.25.0 + accelerate 1.16.0 (21 of 21 tensors
saved bf16); on 5.24.0 + accelerate 1.15.0 this load fails earlier (accelerate_dispatch_disk_only_map.py). Found
reading the surviving mutants of set_module_tensor_to_device's `dtype` branch: no cell loaded with a dtype cast.

Needs torch, transformers, accelerate; the tiny checkpoint is written by this repo's fixtures package.
Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from accelerate import init_empty_weights, load_checkpoint_and_dispatch
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM

from offload_conformance.fixtures import DEFAULT_FIXTURES, generate

os.environ["HF_HUB_OFFLINE"] = "1"
src = generate(next(f for f in DEFAULT_FIXTURES if f.name == "llama"))  # a bf16 checkpoint, no weight conversion
with tempfile.TemporaryDirectory() as tmp:
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src), dtype=torch.float32)
    model.tie_weights()
    model = load_checkpoint_and_dispatch(
        model, str(src), device_map={"": "disk"}, offload_folder=os.path.join(tmp, "offload"), dtype=torch.float32
    )
    declared = {p.dtype for p in model.parameters()}
    out = Path(tmp) / "out"
    model.save_pretrained(out)
    saved: dict[str, str] = {}
    for f in out.glob("*.safetensors"):
        with safe_open(f, "pt") as h:
            saved |= {k: str(h.get_slice(k).get_dtype()) for k in h.keys()}  # noqa: SIM118 (a safe_open handle)
    uncast = sorted(k for k, d in saved.items() if d != "F32")
    print(f"the model's parameters: {declared}; saved tensors not F32: {len(uncast)} of {len(saved)} {uncast[:3]}")
    sys.exit(1 if uncast or not saved else 0)
