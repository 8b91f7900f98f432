"""Repro: llm-compressor's `oneshot` on a model offloaded with accelerate's own `disk_offload` (or `cpu_offload`)
fails while initializing quantization: `AttributeError: 'functools.partial' object has no attribute '__func__'`
in compressed-tensors' `set_forward_quantized` (dense Llama); on an MoE the expert linearization fails first with
`NotImplementedError: Cannot copy out of meta tensor; no data!`.

Cause (llm-compressor 0.14.0.1): `entrypoints/utils.py: pre_process` converts accelerate offloading to
compressed-tensors' own (`from_accelerate`) only `if hasattr(model, "hf_device_map")`; accelerate's helpers leave no
hf_device_map, so their hooks stay: every Linear's `forward` is still accelerate's `functools.partial` and its weight
a meta tensor. After `disk_offload`, calling `compressed_tensors.offload.from_accelerate(model)` before `oneshot`
works around it: the compressed save then equals the in-memory flow's byte for byte (tiny Llama and Qwen3-MoE, FP8).
After `cpu_offload`, `from_accelerate` itself fails (compressed_tensors_from_accelerate_cpu_offload.py).

Needs torch, transformers (<= 5.17 for llm-compressor 0.14), accelerate, llmcompressor. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile

import torch
from accelerate import disk_offload
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier
from transformers import AutoModelForCausalLM, LlamaConfig

os.environ["HF_HUB_OFFLINE"] = "1"
config = LlamaConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "src")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    disk_offload(model, os.path.join(tmp, "off"), execution_device=torch.device("cpu"))
    print(f"hf_device_map: {getattr(model, 'hf_device_map', None)}")
    try:
        oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme="FP8_DYNAMIC", ignore=["lm_head"]))
    except (AttributeError, NotImplementedError) as e:
        print(f"oneshot raised {type(e).__name__}: {e}")
        sys.exit(1)
    print("oneshot quantized the disk_offload-ed model")
    sys.exit(0)
