"""Reading offloaded tensors back through accelerate's hooks.

An offloaded parameter or buffer is a `meta` tensor in the module; its data lives in the
`weights_map` of the nearest accelerate hook at or above that module (transformers'
device_map path and accelerate's cpu_offload/disk_offload both put it there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn


class OffloadError(RuntimeError):
    """An offloaded tensor that cannot be read back."""


def cast_on_read(stored: torch.dtype, held: torch.dtype) -> bool:
    """Whether offload storage in `stored` for a tensor the model holds in `held` is one accelerate's hooks cast on
    every read (set_module_tensor_to_device casts a value to the parameter's dtype): load_checkpoint_in_model(dtype=)
    offloads a weight as its checkpoint stores it. Only a float of another width: an entry rewritten to a dtype of the
    same width (bfloat16 for float16) reads other values from the same bytes, and nothing tells the two apart."""
    return stored.is_floating_point and held.is_floating_point and stored.itemsize != held.itemsize


def weights_maps(module: nn.Module) -> list[Mapping[str, torch.Tensor]]:
    hook = getattr(module, "_hf_hook", None)
    if hook is None:
        return []
    hooks = getattr(hook, "hooks", None) or [hook]  # SequentialHook wraps several
    return [h.weights_map for h in hooks if getattr(h, "weights_map", None) is not None]


def hooked_maps(model: nn.Module, name: str) -> Iterator[tuple[Mapping[str, torch.Tensor], str]]:
    """(weights_map, key within it) of every accelerate hook that could hold the tensor `name`,
    innermost module first."""
    parts = name.split(".")
    # Walked through `_modules` rather than get_submodule: getattr with a fresh string per call leaves
    # one string per (module type, name) in CPython's type attribute cache, bookkeeping that grows with
    # the model (measured with tracemalloc: ~100 KiB at 259 tensors).
    chain = [model]
    for part in parts[:-1]:
        child = chain[-1]._modules.get(part)
        if child is None:  # not a submodule path (a buffer of a non-module attribute): as get_submodule fails
            raise AttributeError(f"{type(chain[-1]).__name__} has no submodule {part!r} (looking up {name})")
        chain.append(child)
    for depth in range(len(parts) - 1, -1, -1):
        for weights_map in weights_maps(chain[depth]):
            yield weights_map, ".".join(parts[depth:])


def unwrap(weights_map: Mapping[str, Any], key: str) -> tuple[Any, str]:
    """(the storage behind accelerate's PrefixedDataset wrappers, the key it stores `key` under)."""
    while hasattr(weights_map, "dataset") and hasattr(weights_map, "prefix"):
        key = f"{weights_map.prefix}{key}"
        weights_map = weights_map.dataset
    return weights_map, key


def read_offloaded(model: nn.Module, name: str) -> torch.Tensor:
    """The tensor `name` (a state_dict key of `model`) read from offload storage."""
    for weights_map, key in hooked_maps(model, name):
        # Look it up by reading it: `key in weights_map` would load the tensor a second time
        # (Mapping.__contains__ is implemented with __getitem__).
        try:
            value = weights_map[key]
        except KeyError:
            continue
        except Exception as e:  # a damaged offload folder: one line naming the tensor
            raise OffloadError(f"reading offloaded {name} failed: {type(e).__name__}: {e}") from None
        held = owner_of(model, name).dtype
        return value.to(held) if isinstance(value, torch.Tensor) and cast_on_read(value.dtype, held) else value
    raise OffloadError(f"{name} is on the meta device but no accelerate hook holds its data")


def owner_of(model: nn.Module, name: str) -> torch.Tensor:
    """The parameter or buffer object registered under `name` (shared by tied names)."""
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name)
    if attr in module._parameters:
        return module._parameters[attr]  # type: ignore[return-value]
    return module._buffers[attr]  # type: ignore[return-value]


Reader = Callable[[nn.Module, str], torch.Tensor]


def materialized_state_dict(
    model: nn.Module, read: Reader = read_offloaded, state: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """model.state_dict() (or a copy of `state`, whose meta tensors are placeholders of the model's offloaded
    tensors of their names) with every meta tensor read back from offload storage.

    Names that share one parameter object (tied weights) get one shared tensor, so the
    storage-based tie detection of the in-memory save path sees them as tied. accelerate's
    disk_offload gives each tied name a meta parameter of its own, so declared ties
    (transformers' {target: source} map) are followed too.
    """
    state = model.state_dict() if state is None else dict(state)
    tied: dict[str, str] = dict(getattr(model, "all_tied_weights_keys", None) or {})
    loaded: dict[int, torch.Tensor] = {}
    for name, tensor in state.items():
        if tensor.device.type != "meta":
            continue
        source = tied.get(name, name)
        key = id(owner_of(model, source if source in state else name))
        if key not in loaded:
            loaded[key] = read(model, name)
        state[name] = loaded[key]
    return state
