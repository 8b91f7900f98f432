"""Where an offloaded tensor's bytes are: a byte range of a file in offload storage, when they are.

accelerate keeps an offloaded tensor behind the hook's weights_map in one of three places: a
safetensors file (transformers' device_map offload: a file of the offload folder, or a shard of the
original checkpoint the index points into), a raw `<key>.dat` (accelerate's disk_offload), or a dict
in RAM (cpu_offload). In the first two the tensor's bytes, as the in-memory tensor holds them, are one
contiguous range of a file: the save copies what it needs of that range into its checkpoint inside
the kernel and never builds the tensor. preflight has checked every such file, header, dtype and
shape first, so the ranges here are trusted.
"""

from __future__ import annotations

import json
import struct
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from offload_conformance.reference_impl.offload import hooked_maps, unwrap
from offload_conformance.reference_impl.writer import DTYPES_BY_CODE


@dataclass(frozen=True, slots=True)  # slots: one per tensor or piece; no __dict__ each
class FileSpan:
    """A tensor's bytes: `nbytes` bytes of `path` from byte `offset`."""

    path: Path
    offset: int
    nbytes: int


K = TypeVar("K")
V = TypeVar("V")

# Files whose headers are kept: a checkpoint shard the offload index points into serves many tensors in
# a row, while transformers' offload folder holds one tensor per file. Keeping every header instead
# made the save's bookkeeping grow with the model (tracemalloc: ~2 KiB per offload file).
HEADERS_KEPT = 16


class Recent(Generic[K, V]):
    """The `size` most recently used values of a function of one key (an LRU cache)."""

    def __init__(self, compute: Callable[[K], V], size: int = HEADERS_KEPT) -> None:
        self._compute = compute
        self._size = size
        self._values: OrderedDict[K, V] = OrderedDict()

    def __call__(self, key: K) -> V:
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        value = self._compute(key)
        self._values[key] = value
        while len(self._values) > self._size:
            self._values.popitem(last=False)
        return value


def _offsets(pairs: list[tuple[str, Any]]) -> Any:
    """A JSON object of the header as it is parsed: a tensor's entry becomes (begin, end, dtype code)."""
    entry = dict(pairs)
    offsets = entry.get("data_offsets")
    if isinstance(offsets, list) and isinstance(entry.get("dtype"), str):  # not a tensor named data_offsets
        return (*offsets, sys.intern(entry["dtype"]))  # a dozen dtype codes, not one string per tensor
    return entry


def _read_header(path: Path) -> tuple[int, dict[str, tuple[int, int, str]]]:
    """Where the file's tensor data starts, and each tensor's data offsets and dtype (nothing else is kept). Each
    tensor's entry is reduced to its offsets while the JSON is parsed: a checkpoint file the offload index
    points into can hold the whole model, and the whole parsed header, nested dicts and lists, was ~0.5 KiB
    per tensor."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header: dict[str, Any] = json.loads(f.read(n), object_pairs_hook=_offsets)
    header.pop("__metadata__", None)
    return 8 + n, header


class Locator:
    """FileSpans of offloaded tensors; the headers of the last few files read are kept."""

    def __init__(self) -> None:
        self._header: Recent[str, tuple[int, dict[str, tuple[int, int, str]]]] = Recent(lambda p: _read_header(Path(p)))

    def span(self, model: nn.Module, name: str, tensor: torch.Tensor) -> FileSpan | None:
        """Where the offloaded tensor `name` (a meta tensor of `model`) is on disk; None when it is not
        in a file (held in RAM, or a storage this module does not know): then it is read through
        accelerate's weights_map."""
        nbytes = tensor.numel() * tensor.element_size()
        for weights_map, key in hooked_maps(model, name):
            store, key = unwrap(weights_map, key)
            if key in getattr(store, "state_dict", {}) or isinstance(store, dict):
                return None
            index = getattr(store, "index", None)
            if not isinstance(index, dict) or key not in index:
                continue
            entry = index[key]
            if "safetensors_file" in entry:
                # accelerate opens the path as given: relative to the working directory.
                path = entry["safetensors_file"]
                start, header = self._header(path)
                begin, end, dtype = header[entry.get("weight_name", key)]
                if end - begin != nbytes or DTYPES_BY_CODE.get(dtype) != tensor.dtype:
                    # Stored in another dtype (the entry's dtype casts on read): equal sizes are not equal bytes.
                    return None
                return FileSpan(Path(path), start + begin, end - begin)
            folder = getattr(store, "save_folder", None)
            if entry.get("dtype", "") not in ("", str(tensor.dtype).removeprefix("torch.")):
                return None  # stored in another dtype, cast on read (offload.cast_on_read): read through accelerate
            return FileSpan(Path(folder) / f"{key}.dat", 0, nbytes) if folder else None
        return None
