"""Optional cost budgets for a cell, planned with it (`--max-read-amplification`, `--max-extra-rss`): exceeding one
fails it with a cost class, which the judge asks `Budget.violations` for."""

from __future__ import annotations

import re
from dataclasses import dataclass

from huggingface_hub.serialization._base import parse_size_to_int

from offload_conformance.harness.outcomes import FailureClass
from offload_conformance.harness.results import Difference, SaveCost


class BudgetError(ValueError):
    pass


@dataclass(frozen=True)
class Budget:
    max_read_amplification: float | None = None
    # Extra RSS of the save over the RSS just before it: bytes, or a multiple of the largest tensor.
    max_extra_rss_bytes: int | None = None
    max_extra_rss_tensors: float | None = None

    @classmethod
    def parse(cls, read_amplification: float | None, extra_rss: str | None) -> Budget:
        if read_amplification is not None and read_amplification <= 0:
            raise BudgetError("--max-read-amplification must be > 0")
        if extra_rss is None:
            return cls(read_amplification)
        match = re.fullmatch(r"(\d+(?:\.\d+)?)x-largest-tensor", extra_rss)
        if match:
            return cls(read_amplification, max_extra_rss_tensors=float(match.group(1)))
        try:
            return cls(read_amplification, max_extra_rss_bytes=parse_size_to_int(extra_rss))
        except ValueError:
            raise BudgetError(
                f"--max-extra-rss {extra_rss!r}: expected a size (500MB) or NUMx-largest-tensor"
            ) from None

    def violations(self, cost: SaveCost | None) -> list[Difference]:
        """A difference of a cost class for every budget the cost exceeds."""
        if cost is None:
            return []
        out = []
        amp = cost.read_amplification
        if self.max_read_amplification is not None and amp is not None and amp > self.max_read_amplification:
            out.append(
                Difference(
                    FailureClass.READ_AMPLIFICATION,
                    f"read {cost.bytes_read} bytes from offload storage for"
                    f" {cost.offloaded_bytes} offloaded: amplification {amp:.2f} >"
                    f" {self.max_read_amplification:g}",
                )
            )
        extra = cost.extra_rss
        limit = self.max_extra_rss_bytes
        if self.max_extra_rss_tensors is not None:
            limit = int(self.max_extra_rss_tensors * cost.largest_tensor_bytes)
        if limit is not None and extra is not None and extra > limit:
            out.append(
                Difference(
                    FailureClass.MEMORY_BUDGET,
                    f"peak RSS {extra / 2**20:.1f} MiB above the pre-save RSS > {limit / 2**20:.1f} MiB budget",
                )
            )
        return out
