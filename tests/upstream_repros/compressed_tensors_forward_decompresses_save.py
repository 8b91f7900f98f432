"""Repro: one forward pass on a compressed-tensors FP8 model loaded in memory changes what `save_pretrained` writes:
the weights come out decompressed to bf16 (config `quantization_status: decompressed`) instead of the FP8 checkpoint
that was loaded, which is what the same save writes without the forward. A calibration or evaluation pass before the
save silently doubles the checkpoint and drops its quantization.

Measured on transformers 5.24.0 + compressed-tensors 0.20.0 and transformers 5.25.0 + compressed-tensors 0.20.1
(CPU): the forward decompresses the model's Linear weights in place; train()/eval() alone change nothing. The same
model offloaded to disk keeps its FP8 weights through a forward pass (the harness's `+train-eval` cells).

Needs torch, transformers, accelerate, compressed-tensors; the tiny checkpoint is written here (per-channel
float8_e4m3fn weights and scales). Exit 1 while the bug is present.
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


def saved(ckpt: Path, out: Path, forward: bool) -> tuple[dict[str, str], object]:
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    if forward:
        with torch.no_grad():
            model(input_ids=torch.tensor([[3, 10, 17]]))
    model.save_pretrained(out)
    with safe_open(out / "model.safetensors", "pt") as f:
        names = list(f.keys())  # a safe_open handle is not iterable
        dtypes = {name: str(f.get_slice(name).get_dtype()) for name in names}
    return dtypes, json.loads((out / "config.json").read_text())["quantization_config"].get("quantization_status")


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

    plain, plain_status = saved(ckpt, Path(tmp, "plain"), forward=False)
    after, after_status = saved(ckpt, Path(tmp, "after-forward"), forward=True)
    changed = sorted(n for n in plain if after.get(n) != plain[n])
    print(f"without a forward: status {plain_status}; after one forward pass: status {after_status}")
    if changed or plain.keys() != after.keys() or plain_status != after_status:
        name = changed[0] if changed else "(names)"
        print(f"{len(changed)} tensors changed dtype, e.g. {name}: {plain.get(name)} -> {after.get(name)}")
        sys.exit(1)
    print("a forward pass leaves the save unchanged")
