"""Repro: llm-compressor's `oneshot` on a disk-offloaded DeepSeek-V3 (loaded without `offload_buffers=True`)
crashes before quantizing, with a bare `AssertionError` in compressed-tensors'
`offload/convert/from_accelerate.py: remove_accelerate_from_module` (`assert offload.device.type == "meta"`).

`oneshot` first converts accelerate's offloading to compressed-tensors' own (`pre_process` ->
`from_accelerate(model)`); that is all this script calls. The router `gate` module is placed on disk, but its
persistent fp32 buffer `e_score_correction_bias` stays in RAM (buffers go to disk only with offload_buffers=True).
transformers (5.17.0 and 5.24.0) still lists that buffer in the disk hook's OffloadedWeightsLoader index, pointing
into the source checkpoint; `remove_accelerate_from_module` takes every name found in the index for a disk tensor
and asserts it is on the meta device. With `offload_buffers=True` the conversion passes. Qwen3-MoE and Llama,
which have no persistent buffer, pass too.

Needs torch, transformers, accelerate, compressed-tensors (0.19.0 and 0.20.0 tried). Exit 1 while the bug is present.
"""

import os
import sys
import tempfile

import torch
from compressed_tensors.offload import from_accelerate
from transformers import AutoModelForCausalLM, DeepseekV3Config

os.environ["HF_HUB_OFFLINE"] = "1"
config = DeepseekV3Config(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    moe_intermediate_size=32,
    num_hidden_layers=2,
    first_k_dense_replace=1,
    num_attention_heads=4,
    num_key_value_heads=4,
    n_routed_experts=4,
    n_shared_experts=1,
    num_experts_per_tok=2,
    n_group=1,
    topk_group=1,
    q_lora_rank=32,
    kv_lora_rank=16,
    qk_nope_head_dim=16,
    qk_rope_head_dim=16,
    v_head_dim=16,
    max_position_embeddings=256,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "src")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    bias = model.model.layers[1].mlp.gate.e_score_correction_bias
    print(f"hf_device_map {model.hf_device_map}; e_score_correction_bias on {bias.device}")
    try:
        from_accelerate(model)
    except AssertionError:
        print("from_accelerate raised AssertionError (assert offload.device.type == 'meta'): the bug is present")
        sys.exit(1)
    print("from_accelerate converted the offloaded model")
    sys.exit(0)
