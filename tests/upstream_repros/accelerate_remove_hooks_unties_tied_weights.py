"""Standalone repro: accelerate's documented undo of its own offloading, `remove_hook_from_submodules`, unties a
model's tied weights. After `cpu_offload` or `disk_offload` of a model whose lm_head is tied to its input embedding,
each hook's detach_hook puts its module's weights back with set_module_tensor_to_device, every name with a new
tensor of its own: lm_head.weight is no longer the embedding's parameter. The model that comes back is not the one
offloaded (training it moves one copy, not both), and transformers' save of it writes lm_head.weight as a tensor of
its own where the model before the offload saved it once (disk_offload; after cpu_offload the two copies are still
equal and the declared tie drops one).

Found by the harness's `+remove-hooks` step on qwen3_moe_tied (accelerate-cpu / accelerate-disk). Present on
accelerate 1.16.0 (transformers 5.25.0) and 1.15.0 (5.24.0). Exit 1 while the bug is present.
Needs torch, transformers, accelerate; the tiny checkpoint is written by this repo's fixtures package.
"""

import os
import sys
import tempfile

import torch
from accelerate import cpu_offload, disk_offload
from accelerate.hooks import remove_hook_from_submodules
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

os.environ["HF_HUB_OFFLINE"] = "1"
src = generate(by_name("qwen3_moe_tied"))
untied = []
for offload in ("cpu_offload", "disk_offload"):
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied as loaded
    with tempfile.TemporaryDirectory() as tmp:
        if offload == "cpu_offload":
            cpu_offload(model, execution_device=torch.device("cpu"))
        else:
            disk_offload(model, tmp, execution_device=torch.device("cpu"))
        remove_hook_from_submodules(model)
        tied = model.lm_head.weight is model.model.embed_tokens.weight
        print(f"{offload} + remove_hook_from_submodules: lm_head.weight is embed_tokens.weight: {tied}")
        if not tied:
            untied.append(offload)
sys.exit(1 if untied else 0)
