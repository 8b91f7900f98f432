"""Repro: a DeepSeek-V4 checkpoint quantized by llm-compressor (any scheme that quantizes routed experts; NVFP4A16
here) does not load back: `from_pretrained` leaves every fused `mlp.experts.gate_up_proj` / `down_proj` missing
(randomly initialised) and reports the per-expert compressed tensors unexpected.

Cause: `oneshot` linearizes the fused experts into per-expert Linears `mlp.experts.E.{gate,up,down}_proj`
(llm-compressor 0.14.0.1, "post-load linearization": DeepSeek-V4 has no load converter of its own), and the save
reverts only transformers' *renamings* on them: `mlp` -> `ffn`, and `gate_proj` -> `wgate` (the reverse of the
compressor's `.wgate.` -> `.gate_proj.` rule), giving `model.layers.N.ffn.experts.E.{wgate,up_proj,down_proj}.*`.
The Hub names the deepseek_v4 MoE converter reads on load are `experts.E.w1/w3/w2`, so nothing fuses them. A bf16
save of the same model (experts fused, reverted by the converter) writes `w1/w2/w3` and loads back whole. Bad on
llm-compressor 0.14.0.1 + transformers 5.17.0 + compressed-tensors 0.19.0; loading the same checkpoint with
transformers 5.24.0 + compressed-tensors 0.20.0 fails the same way.

`python THIS [DIR]`: with llmcompressor installed, quantizes this repo's tiny DeepSeek-V4 fixture (Hub naming) and
saves it compressed into DIR (or a temporary directory); then loads it back. Without llmcompressor, loads DIR.
Exit 1 while the bug is present.
"""

import importlib.util
import json
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

    model = AutoModelForCausalLM.from_pretrained(generate(by_name("deepseek_v4")), dtype=torch.bfloat16)
    oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme="NVFP4A16", ignore=["lm_head"]))
    model.save_pretrained(out, save_compressed=True)
checkpoint = out / "model.safetensors"
from safetensors import safe_open  # noqa: E402

with safe_open(str(checkpoint), "pt") as f:
    print(
        "saved expert 0 of layer 1:",
        sorted({k.rsplit(".", 1)[0] for k in f if ".experts.0." in k and "layers.1." in k}),
    )
_, info = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16, output_loading_info=True)
missing = [k for k in info["missing_keys"] if ".experts." in k]
print(f"missing after load: {len(missing)} (e.g. {sorted(missing)[:2]})")
print(f"unexpected: {len(info['unexpected_keys'])}")
print(json.dumps({"ok": not missing and not info["unexpected_keys"]}))
sys.exit(1 if missing or info["unexpected_keys"] else 0)
