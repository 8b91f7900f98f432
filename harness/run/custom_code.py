"""The `custom-code` mode's model: a class defined outside transformers holding the checkpoint's own tensors.

A `trust_remote_code` model (nomic-embed, jina-embeddings-v3) is a class of its own, and its in-memory names are the
checkpoint's: its remote code never ran transformers' conversion engine. Its `model_type` may still be one transformers
has a conversion mapping for; a save that reverts that mapping on names never converted (transformers#46650: the
unanchored `encoder.layers` -> `layers` reverted gives `encoder.encoder.layers`) corrupts the checkpoint. The model
here is the smallest such class: a `PreTrainedModel` subclass, defined in this module (so transformers counts it as
custom code), named and configured like the in-memory loaded model (same config, same class name, so the same
config.json), whose modules are the checkpoint's names, holding the fixture's tensors. A correct save gives that
checkpoint back, i.e. the in-memory save (its baseline), byte for byte.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import nn
from transformers.core_model_loading import dot_natural_key


class CustomCodeUnsupported(Exception):
    """The fixture cannot be held by a custom-code twin here (its weights are quantized on load)."""


def checkpoint_tensors(checkpoint: Path) -> dict[str, Any]:
    """Every tensor of the checkpoint's files, in natural name order (`layers.2` before `layers.10`): the order a
    model's own modules would hold them in, and the order a save plans its shards by."""
    out: dict[str, Any] = {}
    for shard in sorted(checkpoint.glob("*.safetensors")):
        out.update(load_file(shard))
    return {name: out[name] for name in sorted(out, key=dot_natural_key)}


def _place(root: nn.Module, name: str, tensor: Any, buffer: bool = False) -> None:
    """`tensor` as the parameter (or persistent buffer) `name` (dotted) of `root`, with plain modules along the path."""
    *path, leaf = name.split(".")
    module = root
    for part in path:
        child = module._modules.get(part)
        if child is None:
            child = nn.Module()
            module.add_module(part, child)
        module = child
    if buffer:
        module.register_buffer(leaf, tensor)
    else:
        module.register_parameter(leaf, nn.Parameter(tensor, requires_grad=False))


def custom_code_twin(loaded: Any, checkpoint: Path) -> Any:
    """A model of a custom-code class named as `loaded`'s, with `loaded`'s config, holding `checkpoint`'s tensors."""
    from transformers import GenerationMixin, PreTrainedModel

    if getattr(loaded.config, "quantization_config", None) is not None:
        raise CustomCodeUnsupported("a quantized checkpoint is not held as plain tensors by custom code")
    bases = (PreTrainedModel, GenerationMixin) if loaded.can_generate() else (PreTrainedModel,)
    attributes = {"__module__": __name__, "config_class": type(loaded.config), "base_model_prefix": ""}
    # What the loaded class declares (and found) it supports: the attention and experts backends its config asks for
    # are checked on init.
    # (As declared, inherited ones included, the nearest definition winning.)
    attributes |= {
        k: v
        for klass in reversed(type(loaded).__mro__)
        for k, v in vars(klass).items()
        if k.startswith(("_supports_", "_can_set_"))
    }
    # Its dtype (what the save writes into config.json) is the loaded model's: transformers takes a model's first
    # floating parameter, and the checkpoint's name order here is not the order remote code defines its modules in.
    attributes["dtype"] = property(lambda self, dtype=loaded.dtype: dtype)
    cls = type(type(loaded).__name__, bases, attributes)
    twin = cls(copy.deepcopy(loaded.config))
    twin.post_init()  # what transformers sets up on every model; before the tensors, so no init pass can touch them
    # A buffer of the loaded model stays one (an index counts parameters): where its name is the checkpoint's.
    buffers = {name for name, _ in loaded.named_buffers()}
    for name, tensor in checkpoint_tensors(checkpoint).items():
        _place(twin, name, tensor, buffer=name in buffers)
    if getattr(loaded, "generation_config", None) is not None:
        twin.generation_config = copy.deepcopy(loaded.generation_config)
    return twin.eval()
