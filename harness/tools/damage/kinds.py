"""Damage to a model's offload storage, drawn by hypothesis and applied between load and save.

File damage is applied to the workspace's files (restored before every case); index damage to the model's
in-memory offload index, in the forked child that saves (harness.tools.damage.cases). accelerate's index has no
byte offsets: a tensor's offsets are in its safetensors header, damaged by the header-* kinds.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from offload_conformance.harness.tools.damage.storage import Loaded, indexes


class Kind(StrEnum):
    TRUNCATE = "truncate"
    EXTEND = "extend"
    FLIP_HEADER = "flip-header"  # a byte of the 8-byte length or of the JSON header
    FLIP_DATA = "flip-data"  # a byte of tensor data (the data of an accelerate .dat file)
    HEADER_DTYPE = "header-dtype"  # a tensor's dtype in the header
    HEADER_SHAPE = "header-shape"
    HEADER_OFFSETS = "header-offsets"  # a tensor's data_offsets shifted, or swapped with another's
    HEADER_NAME = "header-name"  # a tensor renamed, or two tensors' names swapped
    DELETE = "delete"
    SWAP = "swap"  # two files' contents exchanged
    SYMLINK = "symlink"  # the file replaced by a symlink (to another file, a copy of itself, nowhere)
    DIRECTORY = "directory"  # the file replaced by an empty directory
    UNREADABLE = "unreadable"  # chmod 000 (the save then runs as an unprivileged user: root reads anything)
    INDEX_DTYPE = "index-dtype"
    INDEX_SHAPE = "index-shape"
    INDEX_NAME = "index-name"  # an entry's weight_name
    INDEX_FILE = "index-file"  # an entry's safetensors_file
    INDEX_DROP = "index-drop"  # the entry removed


HEADER_KINDS = (Kind.FLIP_HEADER, Kind.HEADER_DTYPE, Kind.HEADER_SHAPE, Kind.HEADER_OFFSETS, Kind.HEADER_NAME)
INDEX_KINDS = (Kind.INDEX_DTYPE, Kind.INDEX_SHAPE, Kind.INDEX_NAME, Kind.INDEX_FILE, Kind.INDEX_DROP)
DTYPES = ("BF16", "F16", "F32", "F64", "I8", "U8", "I16", "I32", "I64", "BOOL", "F8_E4M3")
INDEX_DTYPES = ("bfloat16", "float16", "float32", "float64", "int8", "int32", "uint8", "bool")
NOBODY = 65534


@dataclass(frozen=True)
class Damage:
    kind: Kind
    file: str  # the damaged file, relative to the workspace (for index kinds: the file the entry reads)
    key: str = ""  # the damaged index entry (index kinds), or the damaged tensor of a header
    detail: tuple[Any, ...] = ()  # what exactly: positions, bytes, the other file, the new value

    @property
    def unprivileged(self) -> bool:
        """Saved as an unprivileged user: a chmod 000 file is readable by root."""
        return self.kind is Kind.UNREADABLE

    def names(self, loaded: Loaded) -> frozenset[str]:
        """What an error about this damage can name: the file (or the other file), the index entry or tensor."""
        names = {Path(self.file).name, *(Path(d).name for d in self.detail if isinstance(d, str) and "/" in d)}
        if self.key:
            names.add(self.key)
        path = loaded.workspace / self.file
        if self.kind not in INDEX_KINDS and path.suffix == ".safetensors":
            names |= set(_header(loaded.workspace / "pristine" / self.file)[1]) - {"__metadata__"}
        return frozenset(names)

    def to_json(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "file": self.file, "key": self.key, "detail": list(self.detail)}


def _header(path: Path) -> tuple[int, dict[str, Any]]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8 : 8 + n])


def _with_header(path: Path, header: dict[str, Any]) -> None:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def _tensors(header: dict[str, Any]) -> list[str]:
    return sorted(k for k in header if k != "__metadata__")


def _size(e: dict[str, Any]) -> int:
    return e["data_offsets"][1] - e["data_offsets"][0]


@st.composite
def damages(draw: st.DrawFn, loaded: Loaded) -> Damage:
    pristine = loaded.workspace / "pristine"
    entries = [(key, entry) for index in indexes(loaded.model) for key, entry in sorted(index.items())]
    is_safetensors = [f for f in loaded.files if f.endswith(".safetensors")]
    # accelerate's .dat files have no header
    file_kinds = [k for k in Kind if k not in INDEX_KINDS and (is_safetensors or k not in HEADER_KINDS)]
    kind = draw(st.sampled_from([*file_kinds, *INDEX_KINDS]))
    if kind in INDEX_KINDS:
        key, entry = draw(st.sampled_from(entries))
        file = entry.get("safetensors_file") or f"{OFFLOAD_DAT}{key}.dat"
        rel = _relative(loaded, file)
        return Damage(kind, rel, key, _index_detail(draw, kind, key, entry, entries, loaded))
    pool = is_safetensors if kind in HEADER_KINDS else loaded.files
    file = draw(st.sampled_from(pool))
    size = (pristine / file).stat().st_size
    header_end = 8 + _header(pristine / file)[0] if file.endswith(".safetensors") else 0
    others = [f for f in loaded.files if f != file]
    match kind:
        case Kind.TRUNCATE:
            return Damage(kind, file, detail=(draw(st.integers(0, max(size - 1, 0))),))
        case Kind.EXTEND:
            return Damage(kind, file, detail=(draw(st.integers(1, 64)), draw(st.integers(0, 255))))
        case Kind.FLIP_HEADER | Kind.FLIP_DATA:
            lo, hi = (0, header_end) if kind is Kind.FLIP_HEADER else (header_end, size)
            if hi <= lo:  # a .dat has no header; an empty tensor no data
                lo, hi = 0, size
            return Damage(kind, file, detail=(draw(st.integers(lo, max(hi - 1, lo))), draw(st.integers(1, 255))))
        case Kind.HEADER_DTYPE | Kind.HEADER_SHAPE | Kind.HEADER_OFFSETS | Kind.HEADER_NAME:
            return _header_damage(draw, kind, file, _header(pristine / file)[1])
        case Kind.SWAP:
            return Damage(kind, file, detail=(draw(st.sampled_from(others)),) if others else ())
        case Kind.SYMLINK:
            to = draw(st.sampled_from(["other", "copy-outside", "copy-inside", "dangling"][0 if others else 1 :]))
            return Damage(kind, file, detail=(to, draw(st.sampled_from(others))) if to == "other" else (to,))
    return Damage(kind, file)


OFFLOAD_DAT = "\0dat:"  # placeholder: a .dat entry's file is save_folder/key.dat (resolved in _relative)


def _relative(loaded: Loaded, file: str) -> str:
    if file.startswith(OFFLOAD_DAT):
        return f"offload/{file.removeprefix(OFFLOAD_DAT)}"
    return str(Path(file).resolve().relative_to(loaded.workspace.resolve()))


def _header_damage(draw: st.DrawFn, kind: Kind, file: str, header: dict[str, Any]) -> Damage:
    names = _tensors(header)
    name = draw(st.sampled_from(names))
    entry = header[name]
    match kind:
        case Kind.HEADER_DTYPE:
            return Damage(kind, file, name, (draw(st.sampled_from([d for d in DTYPES if d != entry["dtype"]])),))
        case Kind.HEADER_SHAPE:
            shape = list(entry["shape"])
            options = [shape[::-1], [_prod(shape)], [*shape, 1], [d + 1 for d in shape] or [1]]
            return Damage(kind, file, name, (draw(st.sampled_from([o for o in options if o != shape] or [[2]])),))
        case Kind.HEADER_OFFSETS:
            same = [n for n in names if n != name and _size(header[n]) == _size(entry)]
            if same and draw(st.booleans()):
                return Damage(kind, file, name, ("swap", draw(st.sampled_from(same))))
            return Damage(kind, file, name, ("shift", draw(st.integers(-64, 64).filter(bool))))
        case _:
            same = [n for n in names if n != name and header[n]["shape"] == entry["shape"]]
            if same and draw(st.booleans()):
                return Damage(kind, file, name, ("swap", draw(st.sampled_from(same))))
            return Damage(kind, file, name, ("rename", draw(st.sampled_from([f"{name}x", name[:-1], "x"]))))


def _prod(shape: list[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def _index_detail(
    draw: st.DrawFn, kind: Kind, key: str, entry: dict[str, Any], entries: list[tuple[str, Any]], loaded: Loaded
) -> tuple[Any, ...]:
    match kind:
        case Kind.INDEX_DTYPE:
            return (draw(st.sampled_from([d for d in INDEX_DTYPES if d != entry.get("dtype")])),)
        case Kind.INDEX_SHAPE:
            shape = list(entry.get("shape") or [1])
            return (draw(st.sampled_from([shape[::-1], [_prod(shape)], [*shape, 1], [d + 1 for d in shape]])),)
        case Kind.INDEX_NAME:
            others = [k for k, e in entries if k != key and e.get("safetensors_file") == entry.get("safetensors_file")]
            return (draw(st.sampled_from([*others[:8], f"{key}x", "x"])),)
        case Kind.INDEX_FILE:
            files = [str(loaded.workspace / f) for f in loaded.files]
            here = entry.get("safetensors_file", "")
            choices = [f for f in files if Path(f).resolve() != Path(here).resolve()] + [
                str(loaded.workspace / "offload" / "no-such.safetensors"),
                os.path.relpath(loaded.workspace / "source" / "config.json"),
            ]
            return (draw(st.sampled_from(choices)),)
    return ()


def apply_files(damage: Damage, loaded: Loaded) -> None:
    """Damage the workspace's files (after loaded.restore())."""
    if damage.kind in INDEX_KINDS:
        return
    path = loaded.workspace / damage.file
    d = damage.detail
    match damage.kind:
        case Kind.TRUNCATE:
            os.truncate(path, d[0])
        case Kind.EXTEND:
            with open(path, "ab") as f:
                f.write(bytes([d[1]]) * d[0])
        case Kind.FLIP_HEADER | Kind.FLIP_DATA:
            data = bytearray(path.read_bytes())
            if data:
                data[d[0]] ^= d[1]
            path.write_bytes(bytes(data))
        case Kind.HEADER_DTYPE | Kind.HEADER_SHAPE | Kind.HEADER_OFFSETS | Kind.HEADER_NAME:
            _, header = _header(path)
            _edit_header(damage, header)
            _with_header(path, header)
        case Kind.DELETE:
            path.unlink()
        case Kind.SWAP:
            if d:
                other = loaded.workspace / d[0]
                a, b = path.read_bytes(), other.read_bytes()
                path.write_bytes(b)
                other.write_bytes(a)
        case Kind.SYMLINK:
            _symlink(path, d, loaded)
        case Kind.DIRECTORY:
            path.unlink()
            path.mkdir()
        case Kind.UNREADABLE:
            path.chmod(0)


def _edit_header(damage: Damage, header: dict[str, Any]) -> None:
    name, d = damage.key, damage.detail
    match damage.kind:
        case Kind.HEADER_DTYPE:
            header[name]["dtype"] = d[0]
        case Kind.HEADER_SHAPE:
            header[name]["shape"] = d[0]
        case Kind.HEADER_OFFSETS if d[0] == "swap":
            header[name]["data_offsets"], header[d[1]]["data_offsets"] = (
                header[d[1]]["data_offsets"],
                header[name]["data_offsets"],
            )
        case Kind.HEADER_OFFSETS:
            header[name]["data_offsets"] = [max(o + d[1], 0) for o in header[name]["data_offsets"]]
        case Kind.HEADER_NAME if d[0] == "swap":
            header[name], header[d[1]] = header[d[1]], header[name]
        case Kind.HEADER_NAME:
            header[d[1]] = header.pop(name)


def _symlink(path: Path, d: tuple[Any, ...], loaded: Loaded) -> None:
    to = d[0]
    if to == "other":
        target: Path = loaded.workspace / d[1]
    elif to == "dangling":
        target = path.parent / "no-such-file"
    else:
        where = loaded.workspace / "outside" if to == "copy-outside" else path.parent
        where.mkdir(exist_ok=True)
        target = where / f"copy-of-{path.name}"
        shutil.copyfile(path, target)
    path.unlink()
    path.symlink_to(target)


def apply_index(damage: Damage, model: Any) -> None:
    """Damage the model's in-memory offload index (in the child that saves)."""
    if damage.kind not in INDEX_KINDS:
        return
    index = next(i for i in indexes(model) if damage.key in i)
    entry = index[damage.key]
    match damage.kind:
        case Kind.INDEX_DTYPE:
            entry["dtype"] = damage.detail[0]
        case Kind.INDEX_SHAPE:
            entry["shape"] = damage.detail[0]
        case Kind.INDEX_NAME:
            entry["weight_name"] = damage.detail[0]
        case Kind.INDEX_FILE:
            entry["safetensors_file"] = damage.detail[0]
        case Kind.INDEX_DROP:
            del index[damage.key]
