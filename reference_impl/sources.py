"""The bytes of a group's in-memory tensors, as the writer takes them: file ranges or memory.

An offloaded tensor that accelerate keeps in a file (reference_impl.storage) is a range of that
file: the writer copies from it in the kernel, and nothing of it enters this process. Any other
tensor (in RAM, on the CPU, or in a storage only accelerate knows) is read once through its
weights_map and written from memory. Each source is resolved once, so a fused tensor split into
many checkpoint tensors is still read once.
"""

from __future__ import annotations

import os
from collections import Counter, OrderedDict
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import torch
from torch import nn

from offload_conformance.reference_impl.offload import OffloadError, read_offloaded
from offload_conformance.reference_impl.storage import FileSpan, Locator
from offload_conformance.reference_impl.views import Piece
from offload_conformance.reference_impl.writer import FileRange, Part, tensor_bytes

# Source files kept open across groups: a checkpoint shard the offload index points into serves many.
_OPEN_FILES = 64


class Sources:
    """Resolves Pieces of a model's state to Parts; a context manager that closes the files it opened."""

    def __init__(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        self._model = model
        self._state = state
        self._locator = Locator()
        self._fds: OrderedDict[Path, int] = OrderedDict()

    def _fd(self, path: Path) -> int:
        if path in self._fds:
            self._fds.move_to_end(path)
        else:
            self._fds[path] = os.open(path, os.O_RDONLY)
        return self._fds[path]

    def _trim(self) -> None:
        """Close the least recently used files beyond _OPEN_FILES. Only between checkpoint tensors:
        a descriptor handed out in a Part must stay open (and unreused) until that Part is written."""
        while len(self._fds) > _OPEN_FILES:
            os.close(self._fds.popitem(last=False)[1])

    def _resolve(self, name: str) -> tuple[FileSpan | memoryview, torch.Tensor | None]:
        """Where the source's bytes are, and the tensor that must stay alive while they are used."""
        tensor = self._state[name]
        if tensor.device.type == "meta":
            span = self._locator.span(self._model, name, tensor)
            if span is not None:
                return span, None
            tensor = read_offloaded(self._model, name)
        return tensor_bytes(tensor), tensor

    def in_order(self, views: list[tuple[str, tuple[Piece, ...]]]) -> Iterator[tuple[str, list[Part]]]:
        """Each checkpoint tensor of `views`, in that order, as the Parts its bytes are made of (to be
        written before the next is asked for). Each source is resolved once, and let go after the last
        checkpoint tensor that uses it."""
        left = Counter(p.source for _, pieces in views for p in pieces)
        resolved: dict[str, tuple[FileSpan | memoryview, torch.Tensor | None]] = {}
        for name, pieces in views:
            parts: list[Part] = []
            for p in pieces:
                if p.source not in resolved:
                    resolved[p.source] = self._resolve(p.source)
                where = resolved[p.source][0]
                if isinstance(where, FileSpan):
                    if p.offset + p.nbytes > where.nbytes:
                        raise OffloadError(f"offloaded {p.source}: a range past its end was asked for")
                    parts.append(FileRange(self._fd(where.path), where.offset + p.offset, p.nbytes))
                else:
                    parts.append(where[p.offset : p.offset + p.nbytes])
            yield name, parts
            self._trim()
            for p in pieces:
                left[p.source] -= 1
                if not left[p.source]:
                    del resolved[p.source]

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
