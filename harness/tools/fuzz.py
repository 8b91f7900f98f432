"""Hypothesis-generated cells: random valid specs, modes and shard sizes through the runner.

A failing cell is shrunk to a small spec and printed as a one-line command reproducing it.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload_conformance.fixtures.strategies import SHARD_SIZES, specs
from offload_conformance.harness.outcomes import Grade
from offload_conformance.harness.plan.cells import DEFAULT_SHARDS, Cell, save_options, shard_size
from offload_conformance.harness.plan.modes import Mode
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.results import CellResult
from offload_conformance.harness.run.runner import run_cells


class CellFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Finding:
    cell: Cell
    result: CellResult

    def command(self) -> str:
        shard = shard_size(self.cell.save_options)
        spec = json.dumps(self.cell.fixture.to_json(), sort_keys=True, separators=(",", ":"))
        return shlex.join(
            [
                "offload-conformance",
                "run",
                "--spec",
                spec,
                "--mode",
                self.cell.mode.name,
                "--impl",
                self.cell.impl,
                "--max-shard-size",
                shard,
            ]
        )


def fuzz(
    impl: str, modes: list[Mode], examples: int, out: Path, require: Grade, timeout: float, seed: int | None = None
) -> Finding | None:
    last: list[Finding] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(spec=specs(), mode=st.sampled_from(modes), shard=st.sampled_from((DEFAULT_SHARDS, *SHARD_SIZES[1:])))
    def check(spec: object, mode: Mode, shard: str) -> None:
        cell = Cell(spec, mode, impl, save_options(shard))  # type: ignore[arg-type]
        (result,) = run_cells([cell], out, Settings(require, timeout, jobs=2)).cells
        print(f"  {result.outcome:5} {cell.mode.name} shards={shard} {cell.fixture.name}", file=sys.stderr, flush=True)
        if result.outcome.is_failure:
            last.append(Finding(cell, result))
            raise CellFailed(result.detail)

    try:
        check()
    except CellFailed:
        return last[-1]  # hypothesis replays the shrunk example last
    return None
