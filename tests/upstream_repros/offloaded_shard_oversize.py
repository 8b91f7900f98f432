"""Standalone repro: an offloaded save with a small max_shard_size writes shards larger than max_shard_size
that hold several tensors, which the in-memory save never does (its planner gives a tensor larger than the
limit a shard of its own, and fills every other shard up to the limit).

Offloaded, transformers plans shards on the *fused* in-memory tensors (one [experts, 2 * inter, hidden]
`gate_up_proj` per layer): a fused tensor over the limit gets a shard of its own, then is reverted into
per-expert tensors inside that shard, so the shard holds many tensors and more than max_shard_size bytes.
Needs only torch, transformers, accelerate. Exit 1 while the bug is present.
"""

import json
import os
import sys
import tempfile

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, Qwen3MoeConfig

os.environ["HF_HUB_OFFLINE"] = "1"
LIMIT = 24_000  # "24KB"
config = Qwen3MoeConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    moe_intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    num_experts=4,
    num_experts_per_tok=2,
    max_position_embeddings=256,
)
torch.manual_seed(0)


def oversize(directory: str) -> list[str]:
    """Shards holding several tensors and more than LIMIT bytes of tensor data."""
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(directory, name), "pt") as f:
                sizes = [f.get_slice(k).get_shape() for k in f.keys()]  # noqa: SIM118
                nbytes = sum(2 * torch.Size(s).numel() for s in sizes)  # bf16
            if nbytes > LIMIT and len(sizes) > 1:
                out.append(f"{name}: {nbytes} bytes in {len(sizes)} tensors")
    return out


with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "src")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(src)
    results = {}
    for label, kwargs in (
        ("in-memory", {}),
        ("offloaded", {"device_map": "auto", "max_memory": {"cpu": 1}, "offload_folder": os.path.join(tmp, "off")}),
    ):
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16, **kwargs)
        out = os.path.join(tmp, label)
        model.save_pretrained(out, max_shard_size="24KB")
        with open(os.path.join(out, "model.safetensors.index.json")) as f:
            json.load(f)
        results[label] = oversize(out)
        print(f"{label}: {len(results[label])} oversize shards {results[label][:2]}")
    sys.exit(1 if results["offloaded"] and not results["in-memory"] else 0)
