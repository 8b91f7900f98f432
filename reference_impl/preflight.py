"""Check every offloaded tensor's storage before a byte of the new checkpoint is written.

An offload folder can be damaged after the model was loaded: files deleted or truncated, a
header corrupted, an index entry pointing elsewhere. Each problem becomes one OffloadError
naming the tensor and the file, raised while the target is still untouched.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from offload_conformance.reference_impl.offload import OffloadError, cast_on_read, hooked_maps, owner_of, unwrap
from offload_conformance.reference_impl.storage import Recent
from offload_conformance.reference_impl.writer import DTYPES_BY_CODE


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _dtype_and_shape(s: Any) -> tuple[str, tuple[int, ...]]:
    return sys.intern(s.get_dtype()), tuple(s.get_shape())  # a dozen dtype codes, not one string per tensor


def _tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...]]] | SafetensorError:
    try:
        with safe_open(path, framework="pt") as f:
            # One slice at a time: a dict of every tensor's slice first held them all (~0.2 KiB each).
            return {k: _dtype_and_shape(f.get_slice(k)) for k in f.keys()}  # noqa: SIM118 - not a Mapping
    except SafetensorError as e:
        return e


class _Files:
    """What preflight learns per file, for the last few files: a checkpoint shard the offload index points
    into holds many tensors in a row, and opening it per tensor costs more than the whole rest of a save's
    bookkeeping; transformers' offload folder holds one tensor per file, which is not worth keeping."""

    def __init__(self) -> None:
        self.resolve: Recent[Path, Path] = Recent(Path.resolve)
        self._tensors: Recent[Path, dict[str, tuple[str, tuple[int, ...]]] | SafetensorError] = Recent(_tensors)

    def tensors(self, path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Every tensor of a safetensors file: name -> (dtype code, shape). Raises SafetensorError."""
        found = self._tensors(path)
        if isinstance(found, SafetensorError):
            raise found
        return found


def _check_safetensors(
    name: str, entry: dict[str, Any], expected: torch.Tensor, roots: list[Path], files: _Files
) -> None:
    # accelerate opens the entry's path as given, so a relative one is relative to the working
    # directory (transformers writes `os.path.join(offload_folder, name)`), not to the folder.
    path = Path(entry["safetensors_file"])
    resolved = files.resolve(path)
    if not _within(resolved, roots):
        raise OffloadError(f"offloaded {name}: index points outside the offload folder, to {entry['safetensors_file']}")
    if not resolved.is_file():
        raise OffloadError(f"offloaded {name}: file {path} is missing")
    _readable(name, path)
    if entry.get("dtype") and entry["dtype"] != str(expected.dtype).removeprefix("torch."):
        raise OffloadError(f"offloaded {name}: index says dtype {entry['dtype']}, the model holds {expected.dtype}")
    weight = entry.get("weight_name", name)
    try:
        tensors = files.tensors(resolved)
    except SafetensorError as e:
        raise OffloadError(f"offloaded {name}: {path} is not a valid safetensors file ({e})") from None
    if weight not in tensors:
        raise OffloadError(f"offloaded {name}: {path} holds no tensor {weight!r}")
    dtype, shape = tensors[weight]
    # An entry with a dtype is cast to it on read (accelerate's OffloadedWeightsLoader): transformers 5.15-5.17 point
    # entries straight into a source checkpoint that stores the tensor in another dtype (fp32 router weights). Only a
    # float stored for a float (or an int for an int) is such a checkpoint: int16 bytes cast to bf16 are a damaged one.
    stored = DTYPES_BY_CODE.get(dtype)
    cast = bool(entry.get("dtype")) and stored is not None and stored.is_floating_point == expected.is_floating_point()
    if (not cast and stored != expected.dtype) or shape != tuple(expected.shape):
        raise OffloadError(
            f"offloaded {name}: {path} holds {dtype}{list(shape)}, the model holds"
            f" {expected.dtype}{list(expected.shape)}"
        )


def _readable(name: str, path: Path) -> None:
    # os.access, not the mode bits: root reads a chmod 000 file, and the save may run as anyone.
    if not os.access(path, os.R_OK):
        raise OffloadError(f"offloaded {name}: {path} cannot be read (permission denied)")


def _tied(model: nn.Module, a: str, b: str) -> bool:
    ties: dict[str, str] = dict(getattr(model, "all_tied_weights_keys", None) or {})
    if ties.get(a, a) == ties.get(b, b):
        return True
    try:
        return owner_of(model, a) is owner_of(model, b)
    except (AttributeError, KeyError):
        return False


def _check_alias(name: str, key: str, index: dict[str, Any], model: nn.Module, files: _Files) -> None:
    """An entry whose weight_name is another entry's own tensor in the same file reads that tensor's bytes: two
    untied tensors of the model with one storage. (weight_name differing from the key is legitimate where the
    checkpoint names a tensor otherwise; only a name the index itself stores elsewhere as-is is a collision.)
    Checked per entry against the index, with nothing kept per tensor."""
    weight = index[key].get("weight_name", key)
    other = index.get(weight) if weight != key else None
    if not isinstance(other, dict) or other.get("weight_name", weight) != weight or "safetensors_file" not in other:
        return
    path = index[key]["safetensors_file"]
    if files.resolve(Path(other["safetensors_file"])) == files.resolve(Path(path)) and not _tied(model, key, weight):
        raise OffloadError(f"offloaded {name}: index reads {weight!r} of {path}, which is {weight}'s own storage")


def _check_dat(name: str, key: str, entry: dict[str, Any], expected: torch.Tensor, folder: Path) -> None:
    # accelerate's disk_offload: one raw numpy memmap per tensor, `<key>.dat` in the folder.
    file = folder / f"{key}.dat"
    path = file.resolve()
    # Messages name the file as accelerate opens it: a symlink's target alone does not say which file is damaged.
    if not _within(path, [folder.resolve()]):
        raise OffloadError(f"offloaded {name}: {file} points outside the offload folder, to {path}")
    if not path.is_file():
        raise OffloadError(
            f"offloaded {name}: file {file} is missing" + (f" (it links to {path})" if file.is_symlink() else "")
        )
    _readable(name, path)
    # accelerate maps the raw bytes as the entry's dtype: another one reads other values (the bytes' size may match),
    # unless its hooks cast what it reads (a checkpoint loaded in another dtype; the file's size checks the width).
    stored = getattr(torch, entry.get("dtype") or "", expected.dtype)
    if not isinstance(stored, torch.dtype) or (stored != expected.dtype and not cast_on_read(stored, expected.dtype)):
        raise OffloadError(f"offloaded {name}: index says dtype {entry['dtype']}, the model holds {expected.dtype}")
    shape = tuple(entry.get("shape", ()))
    if shape != tuple(expected.shape) and not (shape == (1,) and expected.dim() == 0):
        raise OffloadError(f"offloaded {name}: index says shape {list(shape)}, the model holds {list(expected.shape)}")
    # A 0-d tensor is stored as one element; an empty one as one byte (numpy cannot map an empty file).
    want = max(expected.numel() * stored.itemsize, 1 if expected.dim() else stored.itemsize)
    if path.stat().st_size != want:
        raise OffloadError(f"offloaded {name}: {path} has {path.stat().st_size} bytes, {want} expected (truncated?)")


def _checked(
    model: nn.Module,
    name: str,
    tensor: torch.Tensor,
    weights_map: Mapping[str, Any],
    key: str,
    source: Path,
    files: _Files,
) -> bool:
    """Whether this weights map holds `name` (checking its storage if so)."""
    store, key = unwrap(weights_map, key)
    if key in getattr(store, "state_dict", {}) or (isinstance(store, dict) and key in store):
        return True  # held in RAM (cpu_offload)
    index = getattr(store, "index", None)
    if not isinstance(index, dict) or key not in index:
        return False
    folder = Path(store.save_folder) if getattr(store, "save_folder", None) else None
    if "safetensors_file" in index[key]:
        roots = [files.resolve(p) for p in (folder, source) if p is not None and p.exists()]
        _check_safetensors(name, index[key], tensor, roots, files)
        _check_alias(name, key, index, model, files)
    elif folder is not None:
        _check_dat(name, key, index[key], tensor, folder)
    return True


def preflight(model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> None:
    """Check the storage of every offloaded tensor of `state` (default: the whole state dict)."""
    source = Path(getattr(model, "name_or_path", "") or ".")
    files = _Files()
    for name, tensor in (model.state_dict() if state is None else state).items():
        if tensor.device.type != "meta":
            continue
        if not any(_checked(model, name, tensor, m, key, source, files) for m, key in hooked_maps(model, name)):
            raise OffloadError(f"offloaded {name}: no offload storage holds it (empty or replaced offload folder?)")
