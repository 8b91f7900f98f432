"""Standalone repro: save_pretrained on a model offloaded entirely to disk raises
`NotImplementedError: Cannot copy out of meta tensor; no data!` (transformers#47333, #47332, #47336).

With device_map "auto" and no room in RAM (max_memory {"cpu": 1}) the whole model goes to disk and
hf_device_map is {"": "disk"}. save_pretrained decided whether the model is offloaded with
`len(set(self.hf_device_map.values())) > 1`, false for a single device, so it never onloaded the
weights and handed meta tensors to safetensors. Bad on 5.14.1; fixed in 5.15.0 (passes on 5.15.1).

Needs torch, transformers, accelerate; the tiny checkpoint is written by this repo's fixtures package.
Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

os.environ["HF_HUB_OFFLINE"] = "1"
src = generate(by_name("qwen3_moe"))
with tempfile.TemporaryDirectory() as tmp:
    model = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    print(f"hf_device_map: {model.hf_device_map}")
    out = Path(tmp) / "out"
    try:
        model.save_pretrained(out)
    except Exception as e:
        print(f"save_pretrained raised {type(e).__name__}: {e}")
        sys.exit(1)
    source = {k: v for f in src.glob("*.safetensors") for k, v in load_file(f).items()}
    saved = {k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}
    wrong = sorted(k for k in source if k not in saved or not torch.equal(saved[k], source[k]))
    print(f"saved {len(saved)} tensors; {len(wrong)} of the source's missing or different, e.g. {wrong[:2]}")
    sys.exit(1 if wrong else 0)
