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
from pathlib import Path
from typing import Any

import torch

from offload_conformance.harness.results import SaveCost

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


@contextlib.contextmanager
def measured(model: torch.nn.Module) -> Iterator[list[SaveCost]]:
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
            SaveCost(
                offloaded,
                largest,
                counter[0],
                kib(rss_kib),
                kib(peak_kib),
                kib(anon_kib),
                kib(max(peak_anon[0], last or 0)) if anon_kib is not None else None,
            )
        )
