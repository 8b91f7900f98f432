"""Which quantized models the reference saves, and a one-line refusal for the others.

A quantized model whose quantizer keeps the checkpoint's own tensors (compressed-tensors loaded
compressed: `weight_packed`, `weight_scale`, ...; fine-grained FP8 kept as float8 + `*_scale_inv`) is
saved like any other: its state dict already holds the checkpoint's bytes, and transformers' revert
knows the quantized names. Refused, as upstream's save would refuse or could not be right:
- a quantizer that is not serializable (upstream raises too);
- a quantizer that rewrites the state dict on save (`get_state_dict_and_metadata`: torchao, mxfp4):
  the reference streams the model's own tensors and cannot reproduce that rewrite;
- weights dequantized on load (compressed-tensors MoE experts, FP8 without an accelerator): the quantized
  values were thrown away, so no save can give them back; writing bf16 instead would be a silent lie.
"""

from __future__ import annotations

from transformers import PreTrainedModel
from transformers.quantizers.base import HfQuantizer


class QuantizedSaveError(RuntimeError):
    """A quantized model the reference will not save; the message says why in one line."""


def _dequantizing_ops(model: PreTrainedModel) -> list[str]:
    conversions = getattr(model, "_weight_conversions", None) or []
    return sorted(
        {
            type(op).__name__
            for c in conversions
            for op in getattr(c, "operations", [])
            if "Dequantize" in type(op).__name__
        }
    )


def check(model: PreTrainedModel) -> None:
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    config = quantizer.quantization_config
    method = getattr(config.quant_method, "value", config.quant_method)
    if not quantizer.is_serializable():
        raise QuantizedSaveError(f"the model is quantized with {method}, which transformers cannot serialize")
    if type(quantizer).get_state_dict_and_metadata is not HfQuantizer.get_state_dict_and_metadata:
        raise QuantizedSaveError(f"{method} rewrites the state dict on save; the reference streams the model's own")
    ops = _dequantizing_ops(model)
    if getattr(config, "dequantize", False) or ops:
        how = f" ({', '.join(ops)} in the load's weight conversions)" if ops else " (quantization_config.dequantize)"
        raise QuantizedSaveError(
            f"the {method} weights were dequantized on load{how}: the quantized values are gone, nothing can save them"
        )
