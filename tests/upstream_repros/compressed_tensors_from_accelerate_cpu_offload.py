"""Repro: compressed-tensors' `from_accelerate` cannot convert a model offloaded with accelerate's own `cpu_offload`.
0.19.0: `NotImplementedError: Cannot copy out of meta tensor; no data!` (in `dispatch_with_map` -> `offload_module`);
0.20.0: `RuntimeError: Parameter/buffer `model.embed_tokens.weight` is on the meta device and has no corresponding
entry in accelerate's offload map, meaning it was never populated with data during `from_pretrained` ...`.

Cause (compressed-tensors 0.19.0 and 0.20.0): `remove_accelerate_from_module` unwraps the hook's
`PrefixedDataset` to the weights map and, when that is a dict, looks the tensor up by its *local* name
(`local_name in dataset`). `to_accelerate` builds such dicts per module, keyed by local names; accelerate's
`cpu_offload` gives every module a prefix over one dict of the whole state dict, keyed by *full* names. The lookup
misses, and the meta tensor is taken as "not offloaded, likely a buffer" (0.20.0 refuses it there with the
misleading message above; 0.19.0 dispatches it and copies out of meta).
`disk_offload` (an OffloadedWeightsLoader, looked up by full name) converts fine. llm-compressor's `oneshot` does not
even call `from_accelerate` on such a model (no hf_device_map; see llmcompressor_oneshot_accelerate_offload.py), so this
is the next failure once that is fixed or worked around.

Needs torch, transformers, accelerate, compressed-tensors. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile

import torch
from accelerate import cpu_offload
from compressed_tensors.offload import from_accelerate
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
    cpu_offload(model, execution_device=torch.device("cpu"))
    try:
        from_accelerate(model)
    except (NotImplementedError, RuntimeError) as e:
        print(f"from_accelerate raised {type(e).__name__}: {str(e)[:120]}")
        sys.exit(1)
    weight = model.model.layers[0].self_attn.q_proj.weight
    print(f"from_accelerate converted the cpu_offload-ed model (q_proj.weight on {weight.device})")
    sys.exit(0)
