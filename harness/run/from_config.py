"""The `from-config` mode's model: built by the Auto class's `from_config`, holding a loaded model's tensors.

transformers' save reverts the weight conversions the load recorded (`model._weight_conversions`: only the rules
that matched a checkpoint key). A model the conversion engine never loaded (built with `from_config`, then trained
or given weights by `load_state_dict`) has none recorded, and the save reverts the model type's whole mapping. Where
the two differ (a rule no checkpoint ever had: transformers#48075) the from-config model saves other names than the
in-memory loaded model it was copied from. (Its names are the converted ones, as a loaded model's: a model whose names
are the checkpoint's, as remote code's are, is the custom-code mode's, harness.run.custom_code.)
The copy is exact: same class, same config, every parameter and buffer assigned (dtypes kept, ties kept), so on a
correct transformers the two saves are byte-identical.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


class FromConfigUnsupported(Exception):
    """The fixture cannot be rebuilt outside the conversion engine here (e.g. its weights are quantized on load)."""


def from_config_twin(auto: Any, loaded: Any, dtype: torch.dtype) -> Any:
    """A model built by `auto.from_config` with `loaded`'s config, holding `loaded`'s parameters and buffers."""
    if getattr(loaded.config, "quantization_config", None) is not None:
        # from_config applies no quantizer: the model would hold other tensors than the quantized load.
        raise FromConfigUnsupported("a quantized model is not rebuilt by from_config (no quantizer runs)")
    twin = auto.from_config(copy.deepcopy(loaded.config), dtype=dtype)
    if getattr(twin, "_weight_conversions", None) is not None:
        raise FromConfigUnsupported("from_config recorded weight conversions: nothing distinguishes it from a load")
    # The loaded model's own Parameter objects, assigned: dtypes the load chose (fp32 routers) and ties stay.
    twin.load_state_dict(loaded.state_dict(keep_vars=True), strict=True, assign=True)
    # Non-persistent buffers are not in a state_dict: the ones from_config computed are the model's own.
    for name, module in loaded.named_modules():  # the load read them from the fixture (sub-models' too: csm's decoder)
        if getattr(module, "generation_config", None) is not None:
            twin.get_submodule(name).generation_config = copy.deepcopy(module.generation_config)
    twin.eval()
    return twin
