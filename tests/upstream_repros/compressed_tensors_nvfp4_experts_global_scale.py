"""Repro (silent-wrong values): an NVFP4 (NVFP4A16, `nvfp4-pack-quantized`) MoE checkpoint written by llm-compressor
loads back with its routed experts dequantized without their `weight_global_scale`: the fused `gate_up_proj` /
`down_proj` come out multiplied by it (GLM-5 / glm_moe_dsa fixture: largest magnitude 2688 = 6 x 448 where the
source's is 0.5). Attention and the shared expert stay compressed and are not affected.

Cause: transformers' MoE expert dequantization (integrations/compressed_tensors.py, the packed branch of
`DecompressExperts` / `CompressedTensorsDequantize`) builds a module holding only `weight_packed`, `weight_scale` and
`weight_shape` and decompresses that, so NVFP4's per-tensor global scale is never applied. On transformers 5.17.0 +
compressed-tensors 0.19.0 the converter's sources do not even include it (`update_weight_conversions`): every
expert's `weight_global_scale` is also reported unexpected. On transformers 5.24.0 + compressed-tensors 0.20.0 the
key is taken (`serialized_names`) and the values are the same, wrong.

`python THIS [DIR]`: with llmcompressor installed, quantizes this repo's tiny GLM-5 fixture data-free
(`oneshot`, NVFP4A16, head ignored) and saves it compressed into DIR (or a temporary directory); then loads it back.
Without llmcompressor, loads DIR (written by a run with it). Exit 1 while the bug is present.
"""

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

os.environ["HF_HUB_OFFLINE"] = "1"
out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
if importlib.util.find_spec("llmcompressor") is not None:
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier

    from offload_conformance.fixtures import by_name, generate

    model = AutoModelForCausalLM.from_pretrained(generate(by_name("glm5")), dtype=torch.bfloat16)
    oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme="NVFP4A16", ignore=["lm_head"]))
    model.save_pretrained(out, save_compressed=True)
reloaded, info = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16, output_loading_info=True)
unexpected = sorted(k for k in info["unexpected_keys"] if k.endswith("weight_global_scale"))
print(f"unexpected weight_global_scale keys: {len(unexpected)} (e.g. {unexpected[:1]})")
print(f"missing keys: {sorted(info['missing_keys'])[:3]}")
# The fixture's weights are drawn in [-0.5, 0.5): NVFP4 moves each by at most a sixth of its group's maximum.
largest = reloaded.model.layers[1].mlp.experts.gate_up_proj.float().abs().max().item()
print(f"largest |dequantized routed expert weight|: {largest:.4g} (source: 0.5)")
sys.exit(1 if unexpected or info["missing_keys"] or largest > 1.0 else 0)
