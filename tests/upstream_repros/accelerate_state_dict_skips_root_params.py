"""Standalone repro (silent data loss): accelerate's get_state_dict_offloaded_model skips the root
module's own parameters, so a model offloaded with accelerate's disk_offload / cpu_offload and saved
with save_pretrained(state_dict=get_state_dict_offloaded_model(model)) lacks them.

accelerate.utils.modeling.get_state_dict_offloaded_model walks named_modules() and does
`if name == "": continue`, so tensors owned by the root module itself are never collected. CLIPModel
owns `logit_scale` at its root; the saved checkpoint has no `logit_scale` and no error is raised.
Found by reading accelerate's code; still open on accelerate 1.15.0 (transformers 5.24.0).

Needs torch, transformers, accelerate; the tiny checkpoint is written by this repo's fixtures package.
Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from accelerate import disk_offload
from accelerate.utils.modeling import get_state_dict_offloaded_model
from safetensors import safe_open
from transformers import AutoModel

from offload_conformance.fixtures import generate
from offload_conformance.fixtures.spec import GeneratedSpec

os.environ["HF_HUB_OFFLINE"] = "1"
src = generate(GeneratedSpec("clip", "AutoModel"))
with tempfile.TemporaryDirectory() as tmp:
    model = AutoModel.from_pretrained(src, dtype=torch.bfloat16)
    root_own = sorted(name for name, _ in model.named_parameters(recurse=False))
    disk_offload(model, os.path.join(tmp, "offload"), execution_device=torch.device("cpu"))
    out = Path(tmp) / "out"
    model.save_pretrained(out, state_dict=get_state_dict_offloaded_model(model))
    saved = set()
    for f in out.glob("*.safetensors"):
        with safe_open(f, "pt") as h:
            saved |= set(h.keys())
    missing = [name for name in root_own if name not in saved]
    print(f"root-owned parameters {root_own}; missing from the save: {missing}")
    sys.exit(1 if missing or not root_own else 0)
