"""Which checkpoint tensors are plain byte ranges of in-memory tensors, worked out by transformers' own revert.

The revert of a group runs on `meta` tensors wrapped in a tracing subclass that lets through only pure
data movement (views, `contiguous`, concatenation, introspection). `contiguous()` is made a no-op, so a
slice stays a view of its source, and `cat`/`stack` remember their parts. A checkpoint tensor whose
result is a contiguous view of one source, or a concatenation along its leading dimension of such
views, is a list of byte ranges of the sources: the save copies those ranges straight into the shard
file (no tensor is ever built). Anything else (a copy, arithmetic, a cast, a transpose) leaves the
group to transformers' revert on real tensors.

Which conversions take which path, with transformers 5.x's reverse ops:

* byte ranges (no anonymous memory): renames (`WeightRenaming`, `PrefixChange`, a converter's target
  renamed), MoE experts split per expert (`Chunk` along the gate/up dimension then `SplitModulelist`:
  the qwen2_moe, mixtral, deepseek and deepseek_v4 families), `SplitModulelist` alone (`down_proj`),
  `Split` / `Chunk` along a leading dimension, and many-to-one `Concatenate` / `MergeModulelist` on a
  leading dimension (HRM-Text's `gqkv_proj` and `gate_up_proj`, the reverse of a `Chunk(dim=0)`).
* transformers' revert, group by group: `Transpose`, `Interleave`, `PermuteForRope`, `Conv3dToLinear`
  and the like (the bytes move, not just the ranges), concatenation along a later dimension, and any
  conversion that computes values.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.core_model_loading import revert_weight_conversion


@dataclass(frozen=True, slots=True)  # slots: one per tensor or piece; no __dict__ each
class Piece:
    """`nbytes` bytes of the in-memory tensor `source`, from byte `offset` of its (contiguous) data."""

    source: str
    offset: int
    nbytes: int


# Torch calls a pure data-movement revert makes. Anything else marks the trace impure. Views keep
# their source's storage; `cat`/`stack` are recorded; properties (`shape`, `dtype`) are `__get__`.
_PURE = frozenset(
    {
        "__get__",
        "__getitem__",
        "__iter__",
        "__len__",
        "__repr__",
        "__format__",
        "cat",
        "chunk",
        "concat",
        "concatenate",
        "contiguous",
        "detach",
        "dim",
        "element_size",
        "flatten",
        "is_contiguous",
        "movedim",
        "narrow",
        "numel",
        "permute",
        "reshape",
        "select",
        "size",
        "split",
        "squeeze",
        "stack",
        "storage_offset",
        "stride",
        "tensor_split",
        "transpose",
        "unbind",
        "unflatten",
        "unsqueeze",
        "untyped_storage",
        "view",
    }
)
_JOINS = {"cat", "concat", "concatenate", "stack"}

_impure: ContextVar[list[str] | None] = ContextVar("_impure", default=None)


class _Traced(torch.Tensor):
    """A meta tensor whose revert is watched: see the module docstring."""

    _joined: tuple[tuple[torch.Tensor, ...], int, bool]

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name not in _PURE:
            impure = _impure.get()
            if impure is not None:
                impure.append(name or repr(func))
        if name == "contiguous":
            return args[0]  # keep the view: its bytes are the same whether or not they are copied
        out = super().__torch_function__(func, types, args, kwargs)
        if name in _JOINS and isinstance(out, torch.Tensor):
            parts = tuple(args[0])
            dim = kwargs.get("dim", kwargs.get("axis", args[1] if len(args) > 1 else 0))
            out._joined = (parts, dim % out.dim(), name == "stack")
        return out


def traced(t: torch.Tensor) -> torch.Tensor:
    """A fresh meta tensor of `t`'s dtype and shape with a storage of its own, traced."""
    return torch.empty(t.shape, dtype=t.dtype, device="meta").as_subclass(_Traced)


def _pieces(t: torch.Tensor, sources: dict[int, str]) -> list[Piece] | None:
    joined = getattr(t, "_joined", None)
    if joined is not None:
        parts, dim, _ = joined
        # A join is a byte concatenation of its parts when nothing comes before the joined dimension.
        if math.prod(t.shape[:dim]) != 1:
            return None
        pieces: list[Piece] = []
        for part in parts:
            more = _pieces(part, sources)
            if more is None:
                return None
            pieces += more
        return pieces
    source = sources.get(t.untyped_storage()._cdata)
    if source is None or not t.is_contiguous() or t.is_conj() or t.is_neg():
        return None
    size = t.element_size()
    return [Piece(source, t.storage_offset() * size, t.numel() * size)]


def revert_traced(
    model: nn.Module, state: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[Piece, ...]] | None]:
    """transformers' revert of `state` (meta tensors): the checkpoint tensors (meta), and for each of
    them the byte ranges of `state` it consists of, or None when the revert is not pure data movement."""
    inputs = {name: traced(t) for name, t in state.items()}
    sources = {t.untyped_storage()._cdata: name for name, t in inputs.items()}
    impure: list[str] = []
    token = _impure.set(impure)
    try:
        out = revert_weight_conversion(model, inputs)
    finally:
        _impure.reset(token)
    with torch._C.DisableTorchFunctionSubclass():  # reading the results needs no watching
        plain = {name: torch.empty(t.shape, dtype=t.dtype, device="meta") for name, t in out.items()}
        if impure:
            return plain, None
        views: dict[str, tuple[Piece, ...]] = {}
        for name, t in out.items():
            pieces = _pieces(t, sources)
            if pieces is None or sum(p.nbytes for p in pieces) != t.numel() * t.element_size():
                return plain, None
            views[name] = tuple(p for p in pieces if p.nbytes)
    return plain, views
