"""Standalone repro: accelerate's disk_offload crashes on float8 weights with
`TypeError: Got unsupported ScalarType Float8_e4m3fn` (accelerate#4151).

accelerate.utils.offload.offload_weight writes each tensor through numpy (`weight.cpu().numpy()`), with
a workaround for bfloat16 only; numpy has no float8, so offloading an FP8 checkpoint (here a
compressed-tensors FP8 Llama, as llm-compressor writes it) with accelerate's own disk_offload fails.
transformers' device_map disk offload writes safetensors itself and is not affected. Bad on accelerate
1.14.0; fixed in 1.15.0 (float8 stored as int8 and viewed back), both with transformers 5.24.0.

Needs torch, transformers, accelerate, compressed-tensors; the tiny checkpoint is written by this
repo's fixtures package. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile

import torch
from accelerate import disk_offload
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

os.environ["HF_HUB_OFFLINE"] = "1"
src = generate(by_name("llama_fp8"))
with tempfile.TemporaryDirectory() as tmp:
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    fp8 = {k: v.clone() for k, v in model.state_dict().items() if v.dtype == torch.float8_e4m3fn}
    print(f"{len(fp8)} float8 tensors in the loaded model")
    try:
        disk_offload(model, os.path.join(tmp, "offload"), execution_device=torch.device("cpu"))
    except Exception as e:
        print(f"disk_offload raised {type(e).__name__}: {e}")
        sys.exit(1)
    # What the hooks give back for each offloaded float8 tensor must be the tensor itself.
    wrong = []
    for name, value in fp8.items():
        module_name, _, attr = name.rpartition(".")
        back = model.get_submodule(module_name)._hf_hook.weights_map[attr]
        if back.dtype != value.dtype or not torch.equal(back.view(torch.uint8), value.view(torch.uint8)):
            wrong.append(name)
    print(f"{len(wrong)} float8 tensors read back wrong from the offload folder, e.g. {wrong[:2]}")
    sys.exit(1 if wrong or not fp8 else 0)
