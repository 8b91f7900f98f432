"""What a save costs: bytes read back from offload storage, and peak memory.

Reads are counted where every offloaded tensor comes back from: accelerate's `PrefixedDataset`,
the `weights_map` of the hooks that transformers' device_map path and accelerate's own
cpu_offload/disk_offload attach. Peak RSS uses the kernel's high-water mark, reset right before
the save (writing 5 to /proc/self/clear_refs), so the load's own peak does not count.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from reference_impl.offload import owner_of

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


@dataclass(frozen=True)
class Cost:
    offloaded_bytes: int  # distinct offloaded tensors (meta in the model)
    largest_tensor_bytes: int  # the largest tensor the model holds, offloaded or not
    bytes_read: int
    rss_before: int | None  # bytes
    peak_rss: int | None  # bytes, during the save (the kernel's high-water mark: exact)
    # Anonymous memory only (RssAnon, sampled every few ms: a spike shorter than that can be missed).
    # RSS also counts file-backed pages of mmap-read offload files, which the kernel can reclaim.
    anon_before: int | None = None
    peak_anon: int | None = None

    @property
    def read_amplification(self) -> float | None:
        return self.bytes_read / self.offloaded_bytes if self.offloaded_bytes else None

    @property
    def extra_rss(self) -> int | None:
        return None if self.peak_rss is None or self.rss_before is None else self.peak_rss - self.rss_before

    @property
    def extra_anon(self) -> int | None:
        return None if self.peak_anon is None or self.anon_before is None else self.peak_anon - self.anon_before

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "read_amplification": self.read_amplification,
            "extra_rss": self.extra_rss,
            "extra_anon": self.extra_anon,
        }


def model_sizes(model: torch.nn.Module) -> tuple[int, int]:
    """(bytes of distinct offloaded tensors, bytes of the largest tensor)."""
    seen: set[int] = set()
    offloaded = largest = 0
    # A declared tie (lm_head -> embed_tokens) is one tensor even where accelerate's disk_offload
    # gave its two names separate meta parameters.
    tied: dict[str, str] = dict(getattr(model, "all_tied_weights_keys", None) or {})
    state = model.state_dict(keep_vars=True)
    for name, t in state.items():
        owner = owner_of(model, tied[name] if tied.get(name) in state else name)
        if id(owner) in seen:
            continue
        seen.add(id(owner))
        nbytes = t.numel() * t.element_size()
        largest = max(largest, nbytes)
        if t.device.type == "meta":
            offloaded += nbytes
    return offloaded, largest


@contextlib.contextmanager
def measured(model: torch.nn.Module) -> Iterator[list[Cost]]:
    """Count offload reads and peak RSS while the body runs; the Cost is appended on exit."""
    from accelerate.utils.offload import PrefixedDataset

    offloaded, largest = model_sizes(model)
    counter = [0]
    real_getitem = PrefixedDataset.__getitem__

    def counting_getitem(self: Any, key: str) -> Any:
        value = real_getitem(self, key)
        if isinstance(value, torch.Tensor):
            counter[0] += value.numel() * value.element_size()
        return value

    out: list[Cost] = []
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
    sampler.start()
    try:
        yield out
    finally:
        done.set()
        sampler.join()
        PrefixedDataset.__getitem__ = real_getitem  # type: ignore[method-assign]
        peak_kib = _status_kib("VmHWM") if can_peak else None
        last = _status_kib("RssAnon")
        kib = lambda v: v * 1024 if v is not None else None  # noqa: E731
        out.append(
            Cost(
                offloaded,
                largest,
                counter[0],
                kib(rss_kib),
                kib(peak_kib),
                kib(anon_kib),
                kib(max(peak_anon[0], last or 0)) if anon_kib is not None else None,
            )
        )
