"""Standalone repro (wrong dtype): a bf16 GPT-OSS checkpoint loaded with `dtype=torch.bfloat16` has its norms in fp32,
and save_pretrained writes them as F32 (transformers#43683).

GptOssPreTrainedModel lists `_keep_in_fp32_modules = ["post_attention_layernorm", "input_layernorm", "norm"]`, an
exception meant for fp16 loads only (fp16 overflows there; bf16 does not). The v5 loading refactor (#41580) built the
model's `dtype_plan` from `_keep_in_fp32_modules` whatever the requested dtype, so a bf16 load upcast these norms to
fp32 and the save kept them so: the checkpoint's BF16 norms come back F32. Bad on 5.0.0; fixed in 5.1.0 (the plan is
only applied when dtype == float16).

Needs only torch, transformers, safetensors; the tiny bf16 checkpoint (its names are the Hub's: gpt_oss has no
renaming) is written here with safetensors, not by the release under test. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, GptOssConfig, GptOssForCausalLM

config = GptOssConfig(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=16,
    num_local_experts=4,
    num_experts_per_tok=2,
    sliding_window=8,
)
torch.manual_seed(0)
with torch.no_grad():
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in GptOssForCausalLM(config).state_dict().items()}
norms = sorted(k for k in state if k.endswith("norm.weight"))
with tempfile.TemporaryDirectory() as tmp:
    ckpt, out = Path(tmp, "ckpt"), Path(tmp, "out")
    config.save_pretrained(ckpt)
    save_file(state, ckpt / "model.safetensors", metadata={"format": "pt"})
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16)
    loaded = model.state_dict()
    print("loaded with dtype=torch.bfloat16:", {k: str(loaded[k].dtype) for k in norms[:2]}, "...")
    model.save_pretrained(out)
    saved = {}
    for f in out.glob("*.safetensors"):
        with safe_open(f, "pt") as h:
            saved |= {k: h.get_slice(k).get_dtype() for k in h.keys()}  # noqa: SIM118 - safe_open is not a Mapping
bad = [k for k in norms if saved.get(k) != "BF16"]
print(
    f"{len(bad)} of {len(norms)} norms (BF16 in the checkpoint) saved as {sorted({saved.get(k) for k in bad})}: {bad}"
)
sys.exit(1 if bad else 0)
