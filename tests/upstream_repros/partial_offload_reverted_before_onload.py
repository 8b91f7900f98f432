"""Standalone repro: save_pretrained on a partially disk-offloaded Qwen3-MoE raises
`AttributeError: Qwen3MoeExperts has no attribute `0`` (transformers#47018, with #46902).

The checkpoint stores experts one by one (`mlp.experts.0.gate_proj.weight`, ...); the model holds them
fused (`mlp.experts.gate_up_proj`). When the decoder layers are offloaded to disk, save_pretrained
reverted the weight conversions (fused -> per-expert names) before onloading the offloaded tensors, then
looked the reverted per-expert names up on the model, which has no `experts.0`. Bad on 5.13.1; fixed in
5.14.0 (revert per shard after onloading; passes on 5.14.1).

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
