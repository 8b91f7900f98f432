"""Streaming safetensors writer whose bytes equal ``safetensors.torch.save_file``.

``save_file`` needs every tensor in memory at once. Its file layout, however, depends only on
names, dtypes and shapes, so the header and every tensor's byte range can be computed up front
(:func:`header_bytes`); :class:`StreamingWriter` then writes the header and accepts tensors one
at a time, in any order, each going straight to its offset.

Layout rules (safetensors 0.8.0, Rust ``tensor::prepare``; each rule checked by experiment
against ``save_file``, see ``tests/test_writer.py``):

* Tensors are sorted by the *declaration rank* of the Rust ``Dtype`` enum, descending, then by
  name as UTF-8 bytes ascending. The rank is not the element size: BF16 sorts before F16, F32
  before U32 before I32, U64 before I64 before F64 before C64, and F4 sits between U8 and BOOL.
  The data offsets are the running sum of byte sizes in that order, starting at 0.
* The header is compact serde_json: ``{"__metadata__":{...},"name":{"dtype":"F32","shape":[..],
  "data_offsets":[b,e]},...}`` with ``__metadata__`` first (omitted when metadata is None, kept
  as ``{}`` when metadata is ``{}``), non-ASCII written raw, only ``"``, ``\\`` and control
  characters escaped; the same as ``json.dumps(ensure_ascii=False, separators=(",", ":"))``.
* The JSON is padded with ASCII spaces to a multiple of 8; the 8-byte prefix is its padded
  length as a little-endian u64.
* ``float4_e2m1fn_x2`` (two F4 values per byte) is recorded as ``F4`` with the last dimension
  doubled; a 0-d F4 tensor is rejected by ``save_file``, and so here.

Upstream quirks reproduced on purpose (the contract is byte identity):

* ``save_file`` keeps ``metadata`` in a Rust ``HashMap`` with a random hasher, so with two or
  more metadata keys their order in the header differs from call to call. This writer emits
  them in the dict's iteration order, which is one of the orders ``save_file`` can produce.
* With no tensors and ``metadata == {}``, serde_json is given a map length hint of 0 and
  writes ``{},"__metadata__":{}}``, which safetensors itself cannot load. A tensor named
  ``__metadata__`` likewise yields a duplicate key. Both are written exactly as ``save_file``
  writes them.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import torch

from offload_conformance.reference_impl.atomic import fsync_dir
from offload_conformance.reference_impl.direct import DirectStream, open_direct
from offload_conformance.reference_impl.transfer import copy_range
from offload_conformance.reference_impl.writeback import Writeback

__all__ = [
    "DTYPES_BY_CODE",
    "SUPPORTED_DTYPES",
    "FileRange",
    "Part",
    "StreamingWriter",
    "TensorPlan",
    "dtype_code",
    "header_bytes",
    "tensor_bytes",
]

# (torch dtype, safetensors code) in the declaration order of the Rust `Dtype` enum; the list
# index is the sort rank. Only dtypes that `safetensors.torch.save_file` accepts are listed.
_RANKED: list[tuple[str, str]] = [
    ("bool", "BOOL"),
    ("float4_e2m1fn_x2", "F4"),
    ("uint8", "U8"),
    ("int8", "I8"),
    ("float8_e5m2", "F8_E5M2"),
    ("float8_e4m3fn", "F8_E4M3"),
    ("float8_e8m0fnu", "F8_E8M0"),
    ("float8_e4m3fnuz", "F8_E4M3FNUZ"),
    ("float8_e5m2fnuz", "F8_E5M2FNUZ"),
    ("int16", "I16"),
    ("uint16", "U16"),
    ("float16", "F16"),
    ("bfloat16", "BF16"),
    ("int32", "I32"),
    ("uint32", "U32"),
    ("float32", "F32"),
    ("complex64", "C64"),
    ("float64", "F64"),
    ("int64", "I64"),
    ("uint64", "U64"),
]

_CODE: dict[torch.dtype, str] = {}
_RANK: dict[torch.dtype, int] = {}
for _rank, (_attr, _code) in enumerate(_RANKED):
    _dt = getattr(torch, _attr, None)  # older torch builds lack some float8/uint dtypes
    if isinstance(_dt, torch.dtype):
        _CODE[_dt] = _code
        _RANK[_dt] = _rank

SUPPORTED_DTYPES: tuple[torch.dtype, ...] = tuple(_CODE)
# The reverse: header code -> torch dtype (F4 is a packed pair, not a dtype of its own).
DTYPES_BY_CODE: dict[str, torch.dtype] = {code: dtype for dtype, code in _CODE.items() if code != "F4"}
_F4 = getattr(torch, "float4_e2m1fn_x2", None)


def dtype_code(dtype: torch.dtype) -> str:
    """The safetensors header code for a torch dtype (``torch.bfloat16`` -> ``"BF16"``)."""
    try:
        return _CODE[dtype]
    except KeyError:
        raise ValueError(f"dtype {dtype} is not supported by safetensors.torch.save_file") from None


@dataclass(frozen=True, slots=True)  # slots: one per tensor or piece; no __dict__ each
class TensorPlan:
    """A tensor as known before its data is read: name, torch dtype and torch shape."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))  # accept torch.Size / list too


@dataclass(frozen=True, slots=True)  # slots: one per tensor or piece; no __dict__ each
class FileRange:
    """`nbytes` bytes of the open file `fd` from byte `offset`: copied in the kernel, never read into memory."""

    fd: int
    offset: int
    nbytes: int


# A run of a tensor's bytes: in a file, or in memory.
Part = FileRange | memoryview


def _nbytes(dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    numel = 1
    for dim in shape:
        numel *= dim
    return numel * dtype.itemsize


def _header_shape(p: TensorPlan) -> list[int]:
    shape = list(p.shape)
    if p.dtype == _F4:
        if not shape:
            raise ValueError(f"tensor {p.name!r}: a 0-d float4_e2m1fn_x2 tensor cannot be saved by safetensors")
        shape[-1] *= 2  # header records F4 elements, torch counts packed pairs
    return shape


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _validate(plan: list[TensorPlan], metadata: dict[str, str] | None) -> None:
    seen: set[str] = set()
    for p in plan:
        if not isinstance(p.name, str):
            raise ValueError(f"tensor name {p.name!r} is not a str")
        if p.name in seen:
            raise ValueError(f"tensor {p.name!r} appears more than once in the plan")
        seen.add(p.name)
        dtype_code(p.dtype)
        if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in p.shape):
            raise ValueError(f"tensor {p.name!r}: shape {p.shape!r} must be a tuple of non-negative ints")
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"metadata entry {k!r}: {v!r} is not str -> str")


def header_bytes(plan: list[TensorPlan], metadata: dict[str, str] | None) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The bytes ``save_file`` writes before the tensor data, and each tensor's data offsets.

    Returns ``(prefix, offsets)``: ``prefix`` is the 8-byte little-endian header length plus
    the space-padded JSON header; ``offsets[name] = (begin, end)`` is relative to the end of
    ``prefix``, as in the header's ``data_offsets``.
    """
    _validate(plan, metadata)
    # Written into one buffer as it is laid out, each entry encoded on its own: a list of every entry, their
    # join and its encoding held the header three times over, and a sort key per tensor (a tuple and the
    # name's bytes) more (tracemalloc: 700 KiB at 1073 tensors). UTF-8 keeps code point order, so names sort
    # as str, one dtype at a time.
    by_rank: dict[int, list[TensorPlan]] = {}
    for p in plan:
        by_rank.setdefault(_RANK[p.dtype], []).append(p)
    # serde_json writes "{}" up front when the map's length hint is 0, then any entries after
    # it. safetensors' hint is len(tensors) + len(metadata), so it is 0 for no tensors and
    # metadata == {} even though "__metadata__" is then written (see module docstring).
    empty_hint = not plan and not metadata
    raw = bytearray(b"{}" if empty_hint else b"{")
    entries = 0

    def entry(text: str) -> None:
        nonlocal entries
        if entries or empty_hint:
            raw.extend(b",")
        raw.extend(text.encode("utf-8"))
        entries += 1

    if metadata is not None:
        entry(_json("__metadata__") + ":" + _json(metadata))
    offsets: dict[str, tuple[int, int]] = {}
    offset = 0
    for rank in sorted(by_rank, reverse=True):
        for p in sorted(by_rank.pop(rank), key=_name):
            end = offset + _nbytes(p.dtype, p.shape)
            offsets[p.name] = (offset, end)
            info = {"dtype": dtype_code(p.dtype), "shape": _header_shape(p), "data_offsets": [offset, end]}
            entry(_json(p.name) + ":" + _json(info))
            offset = end
    if not empty_hint or entries:
        raw.extend(b"}")
    raw.extend(b" " * (-len(raw) % 8))
    return struct.pack("<Q", len(raw)) + raw, offsets


def _name(p: TensorPlan) -> str:
    return p.name


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes as save_file writes them (little-endian, C order), zero-copy if possible."""
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.to("cpu")
    flat = t.contiguous().reshape(-1).view(torch.uint8).numpy()
    if sys.byteorder == "big":  # pragma: no cover - safetensors byteswaps per element (per part for complex)
        width = t.dtype.itemsize // 2 if t.dtype.is_complex else t.dtype.itemsize
        if width > 1:
            flat = flat.view(f"u{width}").byteswap().view("u1")
    return memoryview(flat).cast("B")


class StreamingWriter:
    """Write a safetensors file one tensor at a time, byte-identical to ``save_file``.

    The header goes to a temporary file beside ``path`` on construction; :meth:`write` puts each
    tensor's bytes at its planned offset; :meth:`close` checks every planned tensor was written,
    fsyncs and renames the file into place. On any failure (an exception inside the ``with``
    block, or :meth:`close` finding tensors missing) the temporary file is removed and ``path``
    is left as it was.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        plan: list[TensorPlan],
        metadata: dict[str, str] | None = None,
        *,
        sync_dir: bool = True,
        direct_chunk: int | None = None,
    ):
        """`sync_dir=False`: the caller fsyncs the directory itself once all its files are in (one
        directory fsync per save, not one per shard: each is a journal commit).

        `direct_chunk`: write the file front to back past the page cache (reference_impl.direct,
        two buffers of this many bytes) where the filesystem allows it; tensors must then come in
        file order. Elsewhere, or without it, each tensor goes to its offset in any order."""
        self.path = Path(path)
        self._sync_dir = sync_dir
        self._direct: DirectStream | None = None
        self._direct_fd: int | None = None
        self._plan = {p.name: p for p in plan}
        prefix, offsets = header_bytes(list(plan), metadata)
        self._base = len(prefix)
        self._offsets = offsets
        self._positions: dict[str, int] | None = None
        self._written: set[str] = set()
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        # O_EXCL on a fresh name, mode 0o600: save_file 0.8.0 also writes a sibling tempfile
        # (Rust `tempfile`, 0o600) and renames it over `path`, so the final modes agree too.
        self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._writeback = Writeback(self._fd)
        try:
            self._size = self._base + max((end for _, end in offsets.values()), default=0)
            os.ftruncate(self._fd, self._size)  # a file the disk cannot hold fails here, before any copy
            if direct_chunk is not None:
                self._direct_fd = open_direct(self._tmp)
            if self._direct_fd is not None and direct_chunk is not None:
                self._direct = DirectStream(self._direct_fd, direct_chunk)
                self._order = iter(offsets)  # header_bytes lays the tensors out in this order
                self._direct.append(memoryview(prefix))
            else:
                self._pwrite(memoryview(prefix), 0)
        except BaseException:
            self.abort()
            raise

    @property
    def direct(self) -> bool:
        """Whether this file is written past the page cache, front to back."""
        return self._direct is not None

    def _append(self, name: str, parts: list[Part]) -> None:
        assert self._direct is not None
        expected = next(self._order, None)
        if name != expected:
            raise ValueError(f"tensor {name!r} written out of file order to {self.path} (next is {expected!r})")
        for part in parts:
            if isinstance(part, FileRange):
                self._direct.append_file(part.fd, part.offset, part.nbytes)
            else:
                self._direct.append(part)

    @property
    def closed(self) -> bool:
        return self._fd is None

    @property
    def missing(self) -> list[str]:
        """Planned tensors not yet written, in plan order."""
        return [name for name in self._plan if name not in self._written]

    @property
    def complete(self) -> bool:
        """Every planned tensor is written."""
        return len(self._written) == len(self._plan)

    def position(self, name: str) -> int:
        """The planned tensor `name`'s place in the file: 0 for the first tensor, 1 for the next..."""
        if self._positions is None:
            self._positions = {n: i for i, n in enumerate(self._offsets)}
        return self._positions[name]

    def _pwrite(self, data: memoryview, pos: int) -> None:
        assert self._fd is not None
        while data:
            n = os.pwrite(self._fd, data, pos)
            data, pos = data[n:], pos + n

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write one planned tensor at its offset. Any order; each name exactly once."""
        if self._fd is None:
            raise ValueError(f"cannot write tensor {name!r}: writer for {self.path} is closed")
        plan = self._plan.get(name)
        if plan is None:
            raise ValueError(f"tensor {name!r} is not in the plan for {self.path}")
        if name in self._written:
            raise ValueError(f"tensor {name!r} was already written to {self.path}")
        if tensor.dtype != plan.dtype:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}, the plan says {plan.dtype}")
        if tuple(tensor.shape) != plan.shape:
            raise ValueError(f"tensor {name!r} has shape {tuple(tensor.shape)}, the plan says {plan.shape}")
        begin, end = self._offsets[name]
        data = tensor_bytes(tensor) if end > begin else memoryview(b"")
        if len(data) != end - begin:  # pragma: no cover - guarded by the dtype/shape checks
            raise ValueError(f"tensor {name!r} has {len(data)} bytes, expected {end - begin}")
        if self._direct is not None:
            self._append(name, [data])
        elif end > begin:
            self._pwrite(data, self._base + begin)
            self._writeback.wrote(self._base + begin, end - begin)
        self._written.add(name)

    def write_parts(self, name: str, parts: list[Part]) -> None:
        """Write one planned tensor from its bytes in order, given as runs in files or in memory (any
        order across tensors; each name exactly once). The caller vouches that the bytes are those of
        a tensor of the planned dtype and shape; their total length is checked."""
        if self._fd is None:
            raise ValueError(f"cannot write tensor {name!r}: writer for {self.path} is closed")
        if name not in self._plan:
            raise ValueError(f"tensor {name!r} is not in the plan for {self.path}")
        if name in self._written:
            raise ValueError(f"tensor {name!r} was already written to {self.path}")
        begin, end = self._offsets[name]
        total = sum(p.nbytes for p in parts)
        if total != end - begin:
            raise ValueError(f"tensor {name!r} has {total} bytes, expected {end - begin}")
        if self._direct is not None:
            self._append(name, parts)
            self._written.add(name)
            return
        pos = self._base + begin
        for part in parts:
            if isinstance(part, FileRange):
                copy_range(part.fd, part.offset, self._fd, pos, part.nbytes)
            else:
                self._pwrite(part, pos)
            pos += part.nbytes
        self._writeback.wrote(self._base + begin, total)
        self._written.add(name)

    def close(self) -> None:
        """Check completeness, fsync and move the file into place. Idempotent."""
        if self._fd is None:
            return
        missing = self.missing
        if missing:
            self.abort()
            raise ValueError(f"{self.path}: {len(missing)} planned tensor(s) never written: {missing}")
        try:
            if self._direct is not None:
                self._direct.finish()
                os.ftruncate(self._fd, self._size)  # the last direct block was padded
                self._close_direct()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        if self._sync_dir:
            fsync_dir(self.path.parent)

    def _close_direct(self) -> None:
        if self._direct is not None:
            self._direct.close()
        if self._direct_fd is not None:
            fd, self._direct_fd = self._direct_fd, None
            os.close(fd)

    def abort(self) -> None:
        """Discard the temporary file; ``path`` is left untouched. Idempotent."""
        self._close_direct()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
