"""Repro: `save_pretrained(state_dict=...)` ignores the state dict it is given when the model has a quantizer
(`hf_quantizer`): the save writes the model's own `state_dict()` instead, silently. transformers' save replaces the
argument with `hf_quantizer.get_state_dict_and_metadata(model)`, which for the base quantizer is `(None, {})`, and
None means "the model's own". Wrappers that pass the state dict they built (accelerate's
`get_state_dict_offloaded_model` for an offloaded model, llm-compressor's save wrapper) therefore save a quantized
model's meta tensors or stale values; for an offloaded compressed-tensors model the save raises
"Cannot copy out of meta tensor".

Measured on transformers 5.24.0 + compressed-tensors 0.20.1 and transformers 5.25.0 + compressed-tensors 0.20.1
(CPU). The same call on the unquantized model honours the state dict (printed as the control).

Needs torch, transformers, accelerate, compressed-tensors; the tiny checkpoint is written here (per-channel
float8_e4m3fn weights and scales, head in bf16). Exit 1 while the bug is present.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaConfig

os.environ["HF_HUB_OFFLINE"] = "1"
FP8 = {
    "quant_method": "compressed-tensors",
    "format": "float-quantized",
    "quantization_status": "compressed",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "channel"},
            "input_activations": None,
            "output_activations": None,
            "format": "float-quantized",
        }
    },
    "ignore": ["lm_head"],
}
config = LlamaConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=128,
)


def saved_norm(ckpt: Path, out: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(what the save wrote for model.norm.weight, what the state dict passed to it held)."""
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    given = {k: v.clone() for k, v in model.state_dict().items()}
    given["model.norm.weight"] = torch.full_like(given["model.norm.weight"], 0.5)
    model.save_pretrained(out, state_dict=given)
    with safe_open(out / "model.safetensors", "pt") as f:
        return f.get_tensor("model.norm.weight"), given["model.norm.weight"]


torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    src, ckpt = Path(tmp, "dense"), Path(tmp, "fp8")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(src)
    tensors = {}
    for name, t in load_file(src / "model.safetensors").items():
        if t.ndim == 2 and name.endswith("proj.weight"):
            scale = (t.abs().amax(dim=1, keepdim=True).float() / 448.0).to(t.dtype)
            tensors[name] = (t.float() / scale.float()).to(torch.float8_e4m3fn)
            tensors[name.removesuffix("weight") + "weight_scale"] = scale
        else:
            tensors[name] = t
    ckpt.mkdir()
    save_file(tensors, ckpt / "model.safetensors", metadata={"format": "pt"})
    cfg = json.loads((src / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**cfg, "quantization_config": FP8}))

    written, asked = saved_norm(src, Path(tmp, "dense-saved"))
    print(f"unquantized model: the save wrote the state dict given: {torch.equal(written, asked)}")
    written, asked = saved_norm(ckpt, Path(tmp, "fp8-saved"))
    if not torch.equal(written, asked):
        print(
            "quantized model: the save ignored the state dict given: model.norm.weight written "
            f"{written.flatten()[:3].tolist()}..., given {asked.flatten()[:3].tolist()}..."
        )
        sys.exit(1)
    print("quantized model: the save wrote the state dict given")
