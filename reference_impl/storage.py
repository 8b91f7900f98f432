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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from offload_conformance.reference_impl.offload import hooked_maps, unwrap


@dataclass(frozen=True)
class FileSpan:
    """A tensor's bytes: `nbytes` bytes of `path` from byte `offset`."""

    path: Path
    offset: int
    nbytes: int


class Locator:
    """FileSpans of offloaded tensors; each safetensors header is read once (a checkpoint shard holds many)."""

    def __init__(self) -> None:
        self._headers: dict[Path, tuple[int, dict[str, Any]]] = {}

    def _header(self, path: Path) -> tuple[int, dict[str, Any]]:
        if path not in self._headers:
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                self._headers[path] = (8 + n, json.loads(f.read(n)))
        return self._headers[path]

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
                path = Path(entry["safetensors_file"])
                start, header = self._header(path)
                begin, end = header[entry.get("weight_name", key)]["data_offsets"]
                return FileSpan(path, start + begin, end - begin) if end - begin == nbytes else None
            folder = getattr(store, "save_folder", None)
            return FileSpan(Path(folder) / f"{key}.dat", 0, nbytes) if folder else None
        return None
