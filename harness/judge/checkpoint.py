"""A saved checkpoint directory, read for comparison.

The safetensors header is parsed here on purpose instead of through `safetensors.safe_open`:
the comparator must judge files independently of the library that wrote them, see data
offsets (layout and order differences), and describe a corrupt file instead of failing on it.
The format is: 8-byte little-endian header length, a JSON header, then the data buffer.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from huggingface_hub.constants import SAFETENSORS_INDEX_FILE

from offload_conformance.fixtures.manifest import sha256_file

INDEX_NAME = SAFETENSORS_INDEX_FILE
# The index of a save with a `variant` is model.safetensors.index.<variant>.json.
_INDEX = re.compile(r"model\.safetensors\.index(\.[A-Za-z0-9_-]+)?\.json")


def is_index(name: str) -> bool:
    return _INDEX.fullmatch(name) is not None


MAX_HEADER = 100 * 1024 * 1024
# Header dtype codes -> torch dtypes, to measure how far two tensors' values are apart. Written out
# here rather than taken from a writer: the judge must not share code with what it judges.
TORCH_DTYPES: dict[str, torch.dtype] = {
    code: getattr(torch, name)
    for code, name in {
        "F64": "float64",
        "F32": "float32",
        "F16": "float16",
        "BF16": "bfloat16",
        "F8_E4M3": "float8_e4m3fn",
        "F8_E5M2": "float8_e5m2",
        "I64": "int64",
        "I32": "int32",
        "I16": "int16",
        "I8": "int8",
        "U64": "uint64",
        "U32": "uint32",
        "U16": "uint16",
        "U8": "uint8",
        "BOOL": "bool",
    }.items()
    if hasattr(torch, name)
}


class UnreadableFile(Exception):
    pass


@dataclass(frozen=True)
class TensorEntry:
    name: str
    file: str
    dtype: str  # safetensors spelling: BF16, F8_E4M3, ...
    shape: tuple[int, ...]
    begin: int
    end: int
    sha256: str


@dataclass(frozen=True)
class SafetensorsFile:
    name: str
    metadata: dict[str, str] | None
    tensors: tuple[TensorEntry, ...]  # in header (data offset) order


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    files: dict[str, str]  # file name -> sha256, every regular file
    weights: dict[str, SafetensorsFile]
    unreadable: dict[str, str]  # file name -> reason
    index: dict[str, object] | None
    index_error: str | None
    index_name: str = INDEX_NAME  # the index file's name (a variant's has its own)

    @property
    def tensors(self) -> dict[str, TensorEntry]:
        """Each name's entry; a name in several files resolves to the first file by name."""
        out: dict[str, TensorEntry] = {}
        for f in self.weights.values():  # sorted by file name
            for t in f.tensors:
                out.setdefault(t.name, t)
        return out

    @property
    def duplicates(self) -> dict[str, list[str]]:
        """Tensor names stored in more than one file (e.g. beside a stale shard)."""
        where: dict[str, list[str]] = {}
        for f in self.weights.values():
            for t in f.tensors:
                where.setdefault(t.name, []).append(f.name)
        return {n: files for n, files in where.items() if len(files) > 1}

    def read(self, entry: TensorEntry) -> bytes:
        with open(self.path / entry.file, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            f.seek(8 + n + entry.begin)
            return f.read(entry.end - entry.begin)


def read_safetensors(path: Path, digests: bool | Callable[[TensorEntry], bool] = True) -> SafetensorsFile:
    """The file's header and tensors; `digests=False` reads the header only (sha256 left empty), a predicate hashes
    only the entries (given without their sha256) it selects."""
    want = digests if callable(digests) else (lambda _entry: digests)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UnreadableFile(f"{path.name}: shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, MAX_HEADER):
            raise UnreadableFile(f"{path.name}: header length {n} exceeds the file ({size} bytes)")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise UnreadableFile(f"{path.name}: header is not JSON ({e})") from None
        if not isinstance(header, dict):
            raise UnreadableFile(f"{path.name}: header is not a JSON object")
        metadata = header.pop("__metadata__", None)
        data_len = size - 8 - n
        entries = []
        for name, info in header.items():
            try:
                begin, end = (int(x) for x in info["data_offsets"])
                dtype, shape = str(info["dtype"]), tuple(int(x) for x in info["shape"])
            except (KeyError, TypeError, ValueError):
                raise UnreadableFile(f"{path.name}: malformed header entry for {name!r}") from None
            if not 0 <= begin <= end <= data_len:
                raise UnreadableFile(
                    f"{path.name}: {name} offsets [{begin}, {end}) outside the data ({data_len} bytes)"
                )
            entry = TensorEntry(name, path.name, dtype, shape, begin, end, "")
            if want(entry):
                f.seek(8 + n + begin)
                entry = replace(entry, sha256=hashlib.sha256(f.read(end - begin)).hexdigest())
            entries.append(entry)
    entries.sort(key=lambda e: (e.begin, e.end, e.name))
    for e0, e1 in itertools.pairwise(entries):
        if e1.begin < e0.end:
            raise UnreadableFile(f"{path.name}: tensors {e0.name} and {e1.name} overlap")
    return SafetensorsFile(name=path.name, metadata=metadata, tensors=tuple(entries))


def _members(path: Path, weights_only: bool, ignore: frozenset[str] = frozenset()) -> list[Path]:
    # A save that never created its directory is an empty checkpoint: every tensor is missing.
    return [
        p
        for p in (sorted(path.iterdir()) if path.is_dir() else [])
        if p.is_file()
        and p.name not in ignore
        and not (weights_only and p.suffix != ".safetensors" and not is_index(p.name))
    ]


def file_digests(path: Path, weights_only: bool = False, ignore: frozenset[str] = frozenset()) -> dict[str, str]:
    """sha256 of every file (but those named in `ignore`): all a byte-identical comparison needs."""
    return {p.name: sha256_file(p) for p in _members(path, weights_only, ignore)}


def read_checkpoint(
    path: Path, weights_only: bool = False, files: dict[str, str] | None = None, ignore: frozenset[str] = frozenset()
) -> Checkpoint:
    """Every file parsed; `files` are its digests when the caller has them already."""
    files = files if files is not None else file_digests(path, weights_only, ignore)
    weights, unreadable = {}, {}
    index, index_error, index_name = None, None, INDEX_NAME
    for p in _members(path, weights_only, ignore):
        if p.suffix == ".safetensors":
            try:
                weights[p.name] = read_safetensors(p)
            except UnreadableFile as e:
                unreadable[p.name] = str(e)
        elif is_index(p.name):
            index_name = p.name
            try:
                index = json.loads(p.read_text())
            except ValueError as e:
                index_error = f"{p.name} is not JSON ({e})"
    return Checkpoint(path, files, weights, unreadable, index, index_error, index_name)
