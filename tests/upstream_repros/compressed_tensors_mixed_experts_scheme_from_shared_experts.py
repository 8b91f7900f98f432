"""Repro: a mixed compressed-tensors MoE checkpoint written by llm-compressor, NVFP4 routed experts and FP8 blocks
on attention and the shared expert (the NVFP4-FP8 recipe of DeepSeek-V4 / GLM-5), does not load back:
transformers 5.17.0 + compressed-tensors 0.19.0 raise `RuntimeError: We encountered some issues during automatic
conversion of the weights` ("Concatenate on tensors destined for model.layers.N.mlp.experts.gate_up_proj. Ckpt
contains: 0"); transformers 5.24.0 + compressed-tensors 0.20.0 raise `AttributeError: GlmMoeDsaForCausalLM has no
attribute `mlp``.

Cause on 5.17.0 (integrations/compressed_tensors.py, `get_experts_scheme`): the routed experts' scheme is the first
config group with a `re:` target containing the substring "experts". The FP8 group's target for the shared expert
(`re:.*mlp\\.(shared_experts\\.)?(gate|up|down)_proj$`) contains it and comes first, so the experts are taken for FP8:
the converter looks for plain `.weight` keys, the checkpoint has NVFP4's `weight_packed`, and the merge gets none.
The control below spells the shared-expert target without "experts" (same modules quantized the same way) and loads
on both releases (its experts' values are then wrong: compressed_tensors_nvfp4_experts_global_scale.py), so the
5.24.0 error comes from the same choice of the experts' scheme.

`python THIS [DIR]`: with llmcompressor installed, quantizes this repo's tiny GLM-5 fixture data-free into DIR/mixed
and DIR/control (or a temporary directory); then loads both back. Without llmcompressor, loads what DIR holds.
Exit 1 while the bug is present (the recipe's checkpoint does not load).
"""

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

os.environ["HF_HUB_OFFLINE"] = "1"
EXPERTS = r"re:.*mlp\.experts\.\d+\.(gate|up|down)_proj$"
ATTENTION = r"re:.*self_attn\.(q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)$"
RECIPES = {
    "mixed": [ATTENTION, r"re:.*mlp\.(shared_experts\.)?(gate|up|down)_proj$"],
    "control": [ATTENTION, r"re:.*mlp\.(shared_\w+\.)?(gate|up|down)_proj$"],
}
root = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
if importlib.util.find_spec("llmcompressor") is not None:
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier

    from offload_conformance.fixtures import by_name, generate

    for name, fp8_targets in RECIPES.items():
        model = AutoModelForCausalLM.from_pretrained(generate(by_name("glm5")), dtype=torch.bfloat16)
        scheme = {"NVFP4A16": [EXPERTS], "FP8_BLOCK": fp8_targets}
        oneshot(model=model, recipe=QuantizationModifier(scheme=scheme, ignore=["lm_head", r"re:.*mlp\.gate$"]))
        model.save_pretrained(root / name, save_compressed=True)
loaded = {}
for name in RECIPES:
    try:
        AutoModelForCausalLM.from_pretrained(root / name, dtype=torch.bfloat16)
        loaded[name] = True
        print(f"{name}: loads")
    except Exception as e:
        loaded[name] = False
        print(f"{name}: from_pretrained raises {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}")
sys.exit(0 if loaded["mixed"] else 1)
