"""Load fine-grained FP8 checkpoints (`quant_method: "fp8"`) on a CPU-only machine *without* dequantizing them.

transformers 5.24.0, `quantizers/quantizer_finegrained_fp8.py`, `FineGrainedFP8HfQuantizer.validate_environment`:
when neither CUDA nor XPU is available it logs "Using FP8 quantized models requires a GPU or XPU, we will default
to dequantizing ..." and sets `quantization_config.dequantize = True` for a pre-quantized checkpoint
(`FineGrainedFP8Config(dequantize=False)` cannot prevent it: the method overwrites the flag). With dequantize set,
`replace_with_fp8_linear` leaves the model dense and `Fp8Dequantize` turns every `weight` + `weight_scale_inv`
into a bf16 `weight`, so a save writes a different checkpoint.

Loading and saving need no FP8 kernel (the weights are copied as float8 / float32 bytes; `FP8Linear` and
`FP8Experts` own `weight_scale_inv` parameters), only the forward does. `keep_fp8_quantized()` therefore replaces
that one method, for the duration of the `with` block (validate_environment runs inside `from_pretrained`), by
one that, on a machine with neither CUDA nor XPU and for a pre-quantized checkpoint, only performs the method's
other CPU-relevant check (accelerate installed) and leaves `dequantize` as the caller set it. On a machine with
CUDA or XPU, for on-the-fly quantization, or with `dequantize=True` requested, the original method runs unchanged.

Equivalent, blunter alternative (what UPSTREAM-NOTES records): patch the module global
`transformers.quantizers.quantizer_finegrained_fp8.is_torch_xpu_available` to return True. That name is used
only by validate_environment in 5.24.0, so the effect is the same, but it also makes a `device_map=None` load log
"... have a CUDA or XPU device available" on a machine that has neither.

A forward pass of a model loaded this way fails on CPU (the FP8 matmul needs the `kernels` package and an
accelerator); use it to load / save / inspect checkpoints, not to run them.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from offload_conformance.harness.outcomes import Fp8OnCpu


@contextmanager
def keep_fp8_quantized() -> Iterator[None]:
    """Within the block, FP8 checkpoints loaded on a CPU-only machine keep float8 weights and `*_scale_inv`."""
    from transformers.quantizers import quantizer_finegrained_fp8 as fp8

    cls = fp8.FineGrainedFP8HfQuantizer
    original = cls.__dict__.get("validate_environment")
    if original is None:  # the structure this relies on changed: fail loudly rather than silently dequantize
        raise RuntimeError("transformers' FineGrainedFP8HfQuantizer has no validate_environment of its own")

    @functools.wraps(original)
    def validate_environment(self: Any, *args: Any, **kwargs: Any) -> None:
        has_accelerator = torch.cuda.is_available() or fp8.is_torch_xpu_available()
        if has_accelerator or not self.pre_quantized or self.quantization_config.dequantize:
            return original(self, *args, **kwargs)
        if not fp8.is_accelerate_available():
            raise ImportError("Loading an FP8 quantized model requires accelerate (`pip install accelerate`)")

    cls.validate_environment = validate_environment
    try:
        yield
    finally:
        cls.validate_environment = original


def fp8_loading(option: str, fixture: Path) -> contextlib.AbstractContextManager[None]:
    """`--fp8-on-cpu keep`: a fine-grained FP8 checkpoint stays float8 on this CPU-only machine."""
    config = json.loads((fixture / "config.json").read_text())
    if option != "keep" or config.get("quantization_config", {}).get("quant_method") != "fp8":
        return contextlib.nullcontext()
    return keep_fp8_quantized()  # a no-op where a GPU or XPU is present: the quantizer keeps FP8 there


def fp8_parameters(model: torch.nn.Module) -> int:
    """How many float8_e4m3fn parameters the model holds (0 after a dequantizing load)."""
    return sum(p.dtype == torch.float8_e4m3fn for p in model.parameters())


def dequantized_on_load(spec: object, option: Fp8OnCpu) -> bool:
    """Whether a fixture's weights are dequantized on purpose when loaded here: fine-grained FP8 with `dequantize`."""
    from offload_conformance.fixtures.quantization.fp8_block import FP8

    return option is Fp8OnCpu.DEQUANTIZE and getattr(spec, "quantization", "none") == FP8.name
