"""Check every offloaded tensor's storage before a byte of the new checkpoint is written.

An offload folder can be damaged after the model was loaded: files deleted or truncated, a
header corrupted, an index entry pointing elsewhere. Each problem becomes one OffloadError
naming the tensor and the file, raised while the target is still untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from offload_conformance.reference_impl.offload import OffloadError, hooked_maps
from offload_conformance.reference_impl.writer import DTYPES_BY_CODE
from safetensors import SafetensorError, safe_open
from torch import nn


def _unwrap(weights_map: Mapping[str, Any], key: str) -> tuple[Any, str]:
    """(the storage behind accelerate's PrefixedDataset wrappers, the key it stores under)."""
    while hasattr(weights_map, "dataset") and hasattr(weights_map, "prefix"):
        key = f"{weights_map.prefix}{key}"
        weights_map = weights_map.dataset
    return weights_map, key


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _check_safetensors(name: str, entry: dict[str, Any], expected: torch.Tensor, roots: list[Path]) -> None:
    # accelerate opens the entry's path as given, so a relative one is relative to the working
    # directory (transformers writes `os.path.join(offload_folder, name)`), not to the folder.
    path = Path(entry["safetensors_file"])
    resolved = path.resolve()
    if not _within(resolved, roots):
        raise OffloadError(f"offloaded {name}: index points outside the offload folder, to {entry['safetensors_file']}")
    if not resolved.is_file():
        raise OffloadError(f"offloaded {name}: file {path} is missing")
    if entry.get("dtype") and entry["dtype"] != str(expected.dtype).removeprefix("torch."):
        raise OffloadError(f"offloaded {name}: index says dtype {entry['dtype']}, the model holds {expected.dtype}")
    weight = entry.get("weight_name", name)
    try:
        with safe_open(resolved, framework="pt") as f:
            if weight not in f.keys():  # noqa: SIM118 - safe_open is not a Mapping
                raise OffloadError(f"offloaded {name}: {path} holds no tensor {weight!r}")
            piece = f.get_slice(weight)
            dtype, shape = piece.get_dtype(), tuple(piece.get_shape())
    except SafetensorError as e:
        raise OffloadError(f"offloaded {name}: {path} is not a valid safetensors file ({e})") from None
    # An entry with a dtype is cast to it on read (accelerate's OffloadedWeightsLoader): transformers 5.15-5.17 point
    # entries straight into a source checkpoint that stores the tensor in another dtype (fp32 router weights).
    cast = bool(entry.get("dtype"))
    if (not cast and DTYPES_BY_CODE.get(dtype) != expected.dtype) or shape != tuple(expected.shape):
        raise OffloadError(
            f"offloaded {name}: {path} holds {dtype}{list(shape)}, the model holds"
            f" {expected.dtype}{list(expected.shape)}"
        )


def _check_dat(name: str, key: str, entry: dict[str, Any], expected: torch.Tensor, folder: Path) -> None:
    # accelerate's disk_offload: one raw numpy memmap per tensor, `<key>.dat` in the folder.
    path = (folder / f"{key}.dat").resolve()
    if not _within(path, [folder.resolve()]):
        raise OffloadError(f"offloaded {name}: index key {key!r} points outside the offload folder")
    if not path.is_file():
        raise OffloadError(f"offloaded {name}: file {path} is missing")
    shape = tuple(entry.get("shape", ()))
    if shape != tuple(expected.shape) and not (shape == (1,) and expected.dim() == 0):
        raise OffloadError(f"offloaded {name}: index says shape {list(shape)}, the model holds {list(expected.shape)}")
    want = max(expected.numel(), 1) * expected.element_size()
    if path.stat().st_size != want:
        raise OffloadError(f"offloaded {name}: {path} has {path.stat().st_size} bytes, {want} expected (truncated?)")


def _checked(name: str, tensor: torch.Tensor, weights_map: Mapping[str, Any], key: str, source: Path) -> bool:
    """Whether this weights map holds `name` (checking its storage if so)."""
    store, key = _unwrap(weights_map, key)
    if key in getattr(store, "state_dict", {}) or (isinstance(store, dict) and key in store):
        return True  # held in RAM (cpu_offload)
    index = getattr(store, "index", None)
    if not isinstance(index, dict) or key not in index:
        return False
    folder = Path(store.save_folder) if getattr(store, "save_folder", None) else None
    if "safetensors_file" in index[key]:
        roots = [p.resolve() for p in (folder, source) if p is not None and p.exists()]
        _check_safetensors(name, index[key], tensor, roots)
    elif folder is not None:
        _check_dat(name, key, index[key], tensor, folder)
    return True


def preflight(model: nn.Module) -> None:
    source = Path(getattr(model, "name_or_path", "") or ".")
    for name, tensor in model.state_dict().items():
        if tensor.device.type == "meta" and not any(
            _checked(name, tensor, weights_map, key, source) for weights_map, key in hooked_maps(model, name)
        ):
            raise OffloadError(f"offloaded {name}: no offload storage holds it (empty or replaced offload folder?)")
