"""What a save costs: bytes read back from offload storage, and peak memory.

Reads are counted on the two routes an offloaded tensor's bytes come back by: accelerate's
`PrefixedDataset`, the `weights_map` of the hooks that transformers' device_map path and accelerate's
own cpu_offload/disk_offload attach (every tensor it returns); and os-level reads of the files that
storage keeps them in (`os.read`, `pread`, `readv`, `preadv`, `copy_file_range`, `sendfile`: only
bytes of the tensor data region, not a safetensors header), for an IUT that copies file ranges
itself. Pages an IUT maps and reads itself, or reads through a buffered file object, are not seen.
Peak RSS uses the kernel's high-water mark, reset right before the save (writing 5 to
/proc/self/clear_refs), so the load's own peak does not count.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from offload_conformance.harness.results import SaveCost
from offload_conformance.harness.run.lifecycle import weights_maps

_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _owner(model: torch.nn.Module, name: str) -> torch.Tensor:
    """The parameter or buffer object registered under `name` (one object for tied names).
    Written here, not taken from reference_impl: the measurement must not share code with an IUT."""
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name)
    return module._parameters[attr] if attr in module._parameters else module._buffers[attr]  # type: ignore[return-value]


def model_sizes(model: torch.nn.Module) -> tuple[int, int]:
    """(bytes of distinct offloaded tensors, bytes of the largest tensor)."""
    seen: set[int] = set()
    offloaded = largest = 0
    # A declared tie (lm_head -> embed_tokens) is one tensor even where accelerate's disk_offload
    # gave its two names separate meta parameters.
    tied: dict[str, str] = dict(getattr(model, "all_tied_weights_keys", None) or {})
    state = model.state_dict(keep_vars=True)
    for name, t in state.items():
        owner = _owner(model, tied[name] if tied.get(name) in state else name)
        if id(owner) in seen:
            continue
        seen.add(id(owner))
        nbytes = t.numel() * t.element_size()
        largest = max(largest, nbytes)
        if t.device.type == "meta":
            offloaded += nbytes
    return offloaded, largest


def _unwrap(weights_map: Any) -> Any:
    while hasattr(weights_map, "dataset") and hasattr(weights_map, "prefix"):
        weights_map = weights_map.dataset
    return weights_map


def _data_start(safetensors_file: Path) -> int:
    with open(safetensors_file, "rb") as f:
        return 8 + struct.unpack("<Q", f.read(8))[0]


def offload_files(model: torch.nn.Module) -> dict[tuple[int, int], int]:
    """Every file of offload storage, as (st_dev, st_ino) -> the byte where its tensor data starts.
    Written here, not taken from reference_impl (see _owner)."""
    stores: dict[int, Any] = {}
    for maps in weights_maps(model).values():
        for weights_map in maps:
            store = _unwrap(weights_map)
            stores[id(store)] = store
    starts: dict[Path, int] = {}
    for store in stores.values():
        index = getattr(store, "index", None)
        folder = Path(getattr(store, "save_folder", None) or ".")
        for key, entry in index.items() if isinstance(index, dict) else ():
            file = entry.get("safetensors_file")
            path = Path(file) if file else folder / f"{key}.dat"  # accelerate's disk_offload: raw bytes
            if path not in starts:
                try:
                    starts[path] = _data_start(path) if file else 0
                except (OSError, struct.error):
                    continue
    files: dict[tuple[int, int], int] = {}
    for path, start in starts.items():
        with contextlib.suppress(OSError):
            st = path.stat()
            files[(st.st_dev, st.st_ino)] = start
    return files


class FileReads:
    """Counts tensor-data bytes read from offload files through os-level calls, while installed."""

    def __init__(self, files: dict[tuple[int, int], int]) -> None:
        self.files = files
        self.bytes = 0
        self._lock = threading.Lock()
        self._real: dict[str, Callable[..., Any]] = {}

    def _data_start(self, fd: int) -> int | None:
        try:
            st = os.fstat(fd)
        except (OSError, TypeError):
            return None
        return self.files.get((st.st_dev, st.st_ino))

    def _counted(self, name: str, fd_of: Callable[..., int], pos_of: Callable[..., int | None]) -> Callable[..., Any]:
        real = getattr(os, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            fd = fd_of(*args, **kwargs)
            start = self._data_start(fd)
            if start is None:
                return real(*args, **kwargs)
            pos = pos_of(*args, **kwargs)
            if pos is None:  # reads at the file's position
                pos = os.lseek(fd, 0, os.SEEK_CUR)
            result = real(*args, **kwargs)
            n = len(result) if isinstance(result, bytes) else result
            with self._lock:
                self.bytes += max(0, pos + n - max(pos, start))
            return result

        return call

    def install(self) -> None:
        wrappers = {
            "read": self._counted("read", lambda fd, *a, **k: fd, lambda *a, **k: None),
            "readv": self._counted("readv", lambda fd, *a, **k: fd, lambda *a, **k: None),
            "pread": self._counted("pread", lambda fd, *a, **k: fd, lambda fd, n, offset, *a, **k: offset),
            "preadv": self._counted("preadv", lambda fd, *a, **k: fd, lambda fd, bufs, offset, *a, **k: offset),
            "copy_file_range": self._counted(
                "copy_file_range",
                lambda src, *a, **k: src,
                lambda src, dst, count, offset_src=None, *a, **k: offset_src,
            ),
            "sendfile": self._counted(
                "sendfile", lambda out_fd, in_fd, *a, **k: in_fd, lambda out_fd, in_fd, offset, *a, **k: offset
            ),
        }
        for name, wrapper in wrappers.items():
            if hasattr(os, name):
                self._real[name] = getattr(os, name)
                setattr(os, name, wrapper)

    def uninstall(self) -> None:
        for name, real in self._real.items():
            setattr(os, name, real)
        self._real.clear()


@contextlib.contextmanager
def measured(model: torch.nn.Module) -> Iterator[list[SaveCost]]:
    """Count offload reads and peak RSS while the body runs; the Cost is appended on exit."""
    from accelerate.utils.offload import PrefixedDataset

    offloaded, largest = model_sizes(model)
    file_reads = FileReads(offload_files(model))  # before the baseline: the save must not pay for it
    counter = [0]
    real_getitem = PrefixedDataset.__getitem__

    def counting_getitem(self: Any, key: str) -> Any:
        value = real_getitem(self, key)
        if isinstance(value, torch.Tensor):
            counter[0] += value.numel() * value.element_size()
        return value

    out: list[SaveCost] = []
    rss_kib = _status_kib("VmRSS")
    anon_kib = _status_kib("RssAnon")
    peak_anon = [anon_kib or 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            now = _status_kib("RssAnon")
            if now is not None and now > peak_anon[0]:
                peak_anon[0] = now

    sampler = threading.Thread(target=sample, daemon=True)
    can_peak = _reset_peak()
    PrefixedDataset.__getitem__ = counting_getitem  # type: ignore[method-assign]
    file_reads.install()
    sampler.start()
    try:
        yield out
    finally:
        done.set()
        sampler.join()
        file_reads.uninstall()
        PrefixedDataset.__getitem__ = real_getitem  # type: ignore[method-assign]
        peak_kib = _status_kib("VmHWM") if can_peak else None
        last = _status_kib("RssAnon")
        kib = lambda v: v * 1024 if v is not None else None  # noqa: E731
        out.append(
            SaveCost(
                offloaded,
                largest,
                counter[0] + file_reads.bytes,
                kib(rss_kib),
                kib(peak_kib),
                kib(anon_kib),
                kib(max(peak_anon[0], last or 0)) if anon_kib is not None else None,
            )
        )
