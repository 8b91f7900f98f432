"""Which checkpoint tensors are plain byte ranges of in-memory tensors, worked out by transformers' own revert.

The revert of a group runs on `meta` tensors wrapped in a tracing subclass that lets through only pure
data movement (views, `contiguous`, concatenation, introspection). `contiguous()` is made a no-op, so a
slice stays a view of its source, and `cat`/`stack` remember their parts. A checkpoint tensor whose
result is a contiguous view of one source, or a concatenation along its leading dimension of such
views, is a list of byte ranges of the sources: the save copies those ranges straight into the shard
file (no tensor is ever built). Anything else (a copy, arithmetic, a cast, a transpose) leaves the
group to transformers' revert on real tensors. The trace also carries each tensor's provenance (the inputs
every torch call was given), so one traced revert of the whole state says which in-memory tensors each
checkpoint tensor comes from, byte range or not: the save's groups.

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

# In-place torch calls: their first argument takes on the provenance of the others.
_IN_PLACE_DUNDERS = frozenset(
    f"__i{op}__" for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "matmul")
) | {"__setitem__"}


def _provenance(x: Any) -> frozenset[str]:
    """The inputs of the revert that the tensors in `x` (a tensor, or lists / tuples / dicts of them) come from."""
    if isinstance(x, torch.Tensor):
        return getattr(x, "_prov", frozenset())
    if isinstance(x, (list, tuple)):
        return frozenset().union(*(_provenance(v) for v in x))
    if isinstance(x, dict):
        return _provenance(list(x.values()))
    return frozenset()


def _mark(x: Any, prov: frozenset[str]) -> None:
    if isinstance(x, torch.Tensor):
        x._prov = _provenance(x) | prov  # type: ignore[attr-defined]
    elif isinstance(x, (list, tuple)):
        for v in x:
            _mark(v, prov)


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
        # Every result (and the target of an in-place call) comes from every tensor the call was given.
        prov = _provenance(args) | _provenance(kwargs)
        if prov:
            _mark(out, prov)
            if args and (name in _IN_PLACE_DUNDERS or (name.endswith("_") and not name.endswith("__"))):
                _mark(args[0], prov)
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


@dataclass(frozen=True)
class Trace:
    """A traced revert: each checkpoint tensor (meta), its byte ranges of the inputs (None where it is not
    a plain byte range, and everywhere when the revert is not pure data movement), and the inputs it was
    computed from (empty when the trace lost them, e.g. a tensor built by a factory and filled in a way
    the trace does not see)."""

    out: dict[str, torch.Tensor]
    pieces: dict[str, tuple[Piece, ...] | None]
    sources: dict[str, frozenset[str]]

    @property
    def views(self) -> dict[str, tuple[Piece, ...]] | None:
        """Every checkpoint tensor's byte ranges, or None when some checkpoint tensor is not byte ranges."""
        if any(p is None for p in self.pieces.values()):
            return None
        return dict(self.pieces)  # type: ignore[arg-type]


def trace(model: nn.Module, state: dict[str, torch.Tensor]) -> Trace:
    """transformers' revert of `state` (meta tensors), traced (see Trace)."""
    inputs = {name: traced(t) for name, t in state.items()}
    for name, t in inputs.items():
        t._prov = frozenset((name,))  # type: ignore[attr-defined]
    sources = {t.untyped_storage()._cdata: name for name, t in inputs.items()}
    impure: list[str] = []
    token = _impure.set(impure)
    try:
        out = revert_weight_conversion(model, inputs)
    finally:
        _impure.reset(token)
    with torch._C.DisableTorchFunctionSubclass():  # reading the results needs no watching
        plain = {name: torch.empty(t.shape, dtype=t.dtype, device="meta") for name, t in out.items()}
        pieces: dict[str, tuple[Piece, ...] | None] = {}
        for name, t in out.items():
            found = None if impure else _pieces(t, sources)
            if found is not None and sum(p.nbytes for p in found) == t.numel() * t.element_size():
                pieces[name] = tuple(p for p in found if p.nbytes)
            else:
                pieces[name] = None
        provenance = {name: _provenance(t) for name, t in out.items()}
    return Trace(plain, pieces, provenance)


def revert_traced(
    model: nn.Module, state: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[Piece, ...]] | None]:
    """transformers' revert of `state` (meta tensors): the checkpoint tensors (meta), and for each of
    them the byte ranges of `state` it consists of, or None when the revert is not pure data movement."""
    t = trace(model, state)
    return t.out, t.views
