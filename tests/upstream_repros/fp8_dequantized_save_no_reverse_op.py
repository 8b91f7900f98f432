"""Standalone repro: save_pretrained of a fine-grained FP8 model loaded dequantized raises `NotImplementedError`
from ConversionOps.reverse_op (transformers#44983).

A fine-grained FP8 checkpoint (quant_method "fp8": float8_e4m3fn weights with per-block `weight_scale_inv`) is
dequantized on load when `quantization_config.dequantize` is true, which transformers also sets by itself on a
machine without a GPU or XPU. The load merges each `weight` / `weight_scale_inv` pair into one dequantized `weight`
through a WeightConverter whose op, Fp8Dequantize, had no reverse op, so the save, which reverts every
conversion, raised. Bad on 5.4.0; fixed in 5.5.0 (a pass-through reverse op `_IdentityOp` for dequantize
operations: the save writes the dequantized weights).

Needs only torch, transformers, accelerate, safetensors (5.4.0-5.6.x also import triton when loading FP8); the tiny
FP8 Llama (its config says dequantize: true, so the load does not depend on the machine) is written here with
safetensors. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
import traceback
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

BLOCK = 16
config = LlamaConfig(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=16,
)
torch.manual_seed(0)
with torch.no_grad():
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in LlamaForCausalLM(config).state_dict().items()}
quantized = sorted(k for k, v in state.items() if k.startswith("model.layers.") and v.ndim == 2)
for name in quantized:  # block-wise float8_e4m3fn with one fp32 inverse scale per BLOCK x BLOCK block
    w = state[name].float()
    rows, cols = w.shape
    blocks = w.reshape(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK)
    scale = blocks.abs().amax(dim=(1, 3)).clamp(min=1e-12) / torch.finfo(torch.float8_e4m3fn).max
    q = (blocks / scale[:, None, :, None]).reshape(rows, cols).to(torch.float8_e4m3fn)
    state[name], state[name.removesuffix("weight") + "weight_scale_inv"] = q, scale.contiguous()
config.quantization_config = {
    "quant_method": "fp8",
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "weight_block_size": [BLOCK, BLOCK],
    "modules_to_not_convert": ["lm_head"],
    "dequantize": True,
}
with tempfile.TemporaryDirectory() as tmp:
    ckpt, out = Path(tmp, "ckpt"), Path(tmp, "out")
    config.save_pretrained(ckpt)
    save_file(state, ckpt / "model.safetensors", metadata={"format": "pt"})
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16)
    loaded = {k: v.clone() for k, v in model.state_dict().items()}
    print(f"{len(quantized)} FP8 weights loaded as {sorted({str(loaded[k].dtype) for k in quantized})}")
    try:
        model.save_pretrained(out)
    except Exception as e:
        where = traceback.extract_tb(e.__traceback__)[-1]
        print(
            f"save_pretrained raised {type(e).__name__}: {e} ({Path(where.filename).name}:{where.lineno}, {where.name})"
        )
        sys.exit(1)
    saved = {k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}
wrong = sorted(k for k in loaded if k not in saved or not torch.equal(saved[k], loaded[k]))
print(f"saved {len(saved)} tensors; {len(wrong)} of the loaded model's missing or different, e.g. {wrong[:2]}")
sys.exit(1 if wrong else 0)
