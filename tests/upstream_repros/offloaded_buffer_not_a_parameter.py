"""Standalone repro: save_pretrained on a model whose persistent buffers are offloaded to disk raises
`AttributeError: `e_score_correction_bias` is not an nn.Parameter` (transformers#46902, fixed by #47018).

DeepSeek-V3's router holds `e_score_correction_bias` as a persistent buffer, which the checkpoint
stores. With the decoder layers on disk and offload_buffers=True, save_pretrained onloaded every
offloaded tensor with `model.get_parameter(name)`, which rejects buffers. Bad on 5.13.1; the
AttributeError is gone from 5.14.0, but 5.14.x-5.23.x save offloaded fp32 tensors as bf16 (another bug):
5.24.0 is the first release that writes the buffer back exactly.

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
src = generate(by_name("deepseek_v3"))
with tempfile.TemporaryDirectory() as tmp:
    layers = {f"model.layers.{i}": "disk" for i in range(3)}  # decoder layers on disk, the rest in RAM
    device_map = {
        "model.embed_tokens": "cpu",
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
        "lm_head": "cpu",
        **layers,
    }
    model = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map=device_map, offload_folder=os.path.join(tmp, "off"), offload_buffers=True
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
